"""Decode + save in one node, for long videos: each frame goes into the file as soon as it is final.

The separate decoder and saver nodes pass the whole upscaled clip between them as a ComfyUI IMAGE
(float32: 24 MB per 1080p frame, so a 300-frame clip needs 7.5 GB of RAM before the saver starts).
This node pulls frames one at a time from the default-mode decoder and hands each to the video
writer straight away, so at most one decoder window of output frames is ever held, whatever the
clip length. The result is the same file the two nodes write.
"""
from __future__ import annotations

from typing import Iterator

import torch

from .. import host
from ..pipeline import video_io
from ..pipeline.official import OfficialLatents, official_decode
from ..pipeline.video import VideoLatents, decode_frames
from .common import CATEGORY, LOCAL_DEVICES, devices_problem, image_to_frames, stage_executor
from .decoder import MGLDDecode
from .video import CODECS, SUFFIXES, MGLDSaveVideo, _next_output_path


def _latents_of(latent, frame_count: int):
    """The sampler's clip result inside a LATENT, checked against the LR frames it will be decoded with."""
    result = latent.get("mgld") if isinstance(latent, dict) else None
    if not isinstance(result, (VideoLatents, OfficialLatents)):
        raise ValueError("this LATENT does not come from the MGLD sampler (it lacks the clip layout the decoder needs)")
    if isinstance(result, VideoLatents):
        count = len(result.latents)
    else:
        count = len({index for segment in result.segments for index in segment})
    if count != frame_count:
        raise ValueError(f"the latent holds {count} frames but {frame_count} LR frames were given")
    return result


class MGLDDecodeAndSave:
    DESCRIPTION = ("For long videos: decodes MGLD latents with the temporal CFW video VAE (as MGLD Temporal CFW "
                   "Decode) and writes every frame to the video file as soon as it is final (as MGLD Save Video), "
                   "so the upscaled clip is never held in memory. Same file as Decode followed by Save.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Path of the written file (or folder, for png).",)
    OUTPUT_NODE = True
    FUNCTION = "decode_and_save"

    #: The decoder's inputs, then the saver's (whose frames are the decoded ones). Saved workflows depend on this
    #: order: an input added to the decoder or the saver later is appended at the end here, never inserted.
    DECODER_INPUTS = ("video_vae", "latent", "frames", "fusion_w", "color_fix", "decode_tile")
    SAVER_INPUTS = ("fps", "filename_prefix", "codec", "crf", "pixel_format")

    @classmethod
    def INPUT_TYPES(cls):
        decoder = MGLDDecode.INPUT_TYPES()["required"]
        saver = MGLDSaveVideo.INPUT_TYPES()
        required = {name: decoder[name] for name in cls.DECODER_INPUTS}
        required.update({name: saver["required"][name] for name in cls.SAVER_INPUTS})
        # The decoder's optional settings (e.g. a memory cap) follow, passed on to the decoder as they are.
        return {"required": required, "optional": {"audio": saver["optional"]["audio"], **decoder_options()}}

    @classmethod
    def VALIDATE_INPUTS(cls, devices=LOCAL_DEVICES):
        return devices_problem("MGLD Decode + Save Video", devices)

    def decode_and_save(self, video_vae, latent, frames, fusion_w, color_fix, decode_tile, fps, filename_prefix, codec,
                        crf, pixel_format, audio=None, **options):
        unknown = set(options) - set(decoder_options())
        if unknown:
            raise TypeError(f"MGLDDecodeAndSave got unknown inputs: {', '.join(sorted(unknown))}")
        devices = options.pop("devices", LOCAL_DEVICES)
        frames = image_to_frames(frames)
        result = _latents_of(latent, frames.shape[0])
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
        if isinstance(result, VideoLatents) and decode_tile % 64:
            raise ValueError(f"decode_tile must be a multiple of 64 pixels, got {decode_tile}")
        suffix = SUFFIXES[codec]
        path, subfolder, name = _next_output_path(filename_prefix, suffix)
        hooks = host.hooks()
        if isinstance(result, OfficialLatents) and devices != LOCAL_DEVICES:
            hooks.notice("MGLD Decode + Save Video: official latents are decoded in this process (devices applies to "
                         "the default mode)")
            devices = LOCAL_DEVICES
        with torch.no_grad(), stage_executor("MGLD Decode + Save Video", devices, video_vae) as executor:
            if isinstance(result, OfficialLatents):
                # The official decoder averages whole segments of image tiles: it is not streamed, but its
                # 8-bit output is kept as uint8 (a quarter of an IMAGE).
                source = official_decode(result, frames, video_vae, dec_w=fusion_w, colorfix=color_fix, hooks=hooks)
            else:
                source = _frames_only(decode_frames(result, frames, video_vae, dec_w=fusion_w, colorfix=color_fix,
                                                    tile=decode_tile // 8, hooks=hooks, executor=executor, **options))
            # The writer pulls one decoded frame at a time; Cancel stops it between frames (and between decoder
            # windows), and the temporary file is then removed, so nothing appears under the final name.
            written = video_io.write_video(path, source, fps, audio=video_io.audio_from_comfy(audio), codec=codec,
                                           crf=crf, pixel_format=None if pixel_format == "auto" else pixel_format,
                                           on_frame=lambda count: host.check_interrupt())
        preview = [{"filename": name, "subfolder": subfolder, "type": "output", "format": f"video/{suffix.lstrip('.')}"}]
        return {"ui": {"images": preview if codec != "png" else [], "animated": (True,)}, "result": (written,)}


def decoder_options() -> dict:
    """The decoder node's optional inputs (default-mode decoder settings, named as :func:`decode_frames` names them)."""
    return dict(MGLDDecode.INPUT_TYPES().get("optional", {}))


def _frames_only(decoded: Iterator[tuple[int, torch.Tensor]]) -> Iterator[torch.Tensor]:
    """``(index, frame)`` pairs of the decoder -> frames, in order, without keeping any of them."""
    for _, frame in decoded:
        yield frame
