"""Decode + save in one node, for long videos: each frame goes into the file as soon as it is final.

The separate decoder and saver nodes pass the whole upscaled clip between them as a ComfyUI IMAGE
(float32: 24 MB per 1080p frame, so a 300-frame clip needs 7.5 GB of RAM before the saver starts).
This node pulls frames one at a time from the default-mode decoder and hands each to the video
writer straight away, so at most one decoder window of output frames is ever held, whatever the
clip length. The result is the same file the two nodes write.

With ``multiplier`` above 1 the frames are also interpolated on their way to the file, as MGLD
Interpolate Frames would between the decoder and the saver: one pair of frames at a time, so the
clip m times longer is never held either.
"""
from __future__ import annotations

from typing import Iterator

import torch

from . import host
from ..pipeline import video_io
from ..pipeline.motion.interpolation import MAX_MULTIPLIER, check_multiplier, interpolate_frames, interpolated_fps
from ..pipeline.defaults import CUT_THRESHOLD, RAFT_SHORT_SIDE
from ..pipeline.official import OfficialLatents, official_decode
from ..pipeline.decoding.cfw import decode_frames
from ..pipeline.sampling.loop import VideoLatents
from ..models.placement import compute_device
from .common import DECODING, LOCAL_DEVICES, image_to_frames, stage_executor
from .decoder import MGLDDecode, latents_of, refuse_official_budget
from .interpolation import INTERPOLATION_SETTINGS, MOTION_INPUTS, motion_source
from .validation import check_decode_tile, comfy_verdict
from .video import CODECS, SUFFIXES, MGLDSaveVideo, _next_output_path


class MGLDDecodeAndSave:
    DESCRIPTION = ("For long videos: decodes MGLD latents with the temporal CFW video VAE (as MGLD Temporal CFW "
                   "Decode) and writes every frame to the video file as soon as it is final (as MGLD Save Video), "
                   "so the upscaled clip is never held in memory. Same file as Decode followed by Save.")
    CATEGORY = DECODING
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
        # The decoder's optional settings (e.g. a memory cap) follow, passed on to the decoder as they are, then
        # MGLD Interpolate Frames' settings; ``devices`` last, as on every node that has it.
        decoder = decoder_options()
        devices = decoder.pop("devices")
        return {"required": required, "optional": {"audio": saver["optional"]["audio"], **decoder,
                                                   **interpolation_options(), "devices": devices}}

    @classmethod
    def VALIDATE_INPUTS(cls, fusion_w=None, color_fix=None, decode_tile=None, filename_prefix=None, codec=None,
                        crf=None, pixel_format=None, memory_budget_gb=None, multiplier=None, scene_cut_threshold=None,
                        raft_resolution=None, devices=None):
        return comfy_verdict(cls, fusion_w=fusion_w, color_fix=color_fix, decode_tile=decode_tile,
                             filename_prefix=filename_prefix, codec=codec, crf=crf, pixel_format=pixel_format,
                             memory_budget_gb=memory_budget_gb, multiplier=multiplier,
                             scene_cut_threshold=scene_cut_threshold, raft_resolution=raft_resolution, devices=devices)

    def decode_and_save(self, video_vae, latent, frames, fusion_w, color_fix, decode_tile, fps, filename_prefix, codec,
                        crf, pixel_format, audio=None, multiplier=1, scene_cut_threshold=CUT_THRESHOLD,
                        raft_resolution=RAFT_SHORT_SIDE, flow=None, raft=None, output_path=None, **options):
        """``output_path``: where the headless runner's ``--output`` puts the file (never given by ComfyUI)."""
        unknown = set(options) - set(decoder_options())
        if unknown:
            raise TypeError(f"MGLDDecodeAndSave got unknown inputs: {', '.join(sorted(unknown))}")
        devices = options.pop("devices", LOCAL_DEVICES)
        frames = image_to_frames(frames)
        result = latents_of(latent, frames.shape[0])
        refuse_official_budget(result, options.get("memory_budget_gb", 0.0))
        motion = None
        if check_multiplier(multiplier) > 1:
            out_fps = interpolated_fps(fps, multiplier)
            motion = motion_source(flow, raft, scene_cut_threshold, raft_resolution, frames.shape[0],
                                   "MGLD Decode + Save Video", clip=frames, hooks=host.hooks())
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
        if isinstance(result, VideoLatents):
            check_decode_tile(decode_tile)
        suffix = SUFFIXES[codec]
        path, subfolder, name = _next_output_path(filename_prefix, suffix, output_path)
        hooks = host.hooks()
        if isinstance(result, OfficialLatents) and devices != LOCAL_DEVICES:
            hooks.notice("MGLD Decode + Save Video: official latents are decoded in this process (devices applies to "
                         "the default mode)")
            devices = LOCAL_DEVICES
        raft = raft if motion is not None else None  # RAFT goes to the device only when it is used
        with torch.no_grad(), stage_executor("MGLD Decode + Save Video", devices, video_vae, raft) as executor:
            if isinstance(result, OfficialLatents):
                # The official decoder averages whole segments of image tiles: it is not streamed, but its
                # 8-bit output is kept as uint8 (a quarter of an IMAGE).
                source = official_decode(result, frames, video_vae, dec_w=fusion_w, colorfix=color_fix, hooks=hooks)
            else:
                source = _frames_only(decode_frames(result, frames, video_vae, dec_w=fusion_w, colorfix=color_fix,
                                                    tile=decode_tile // 8, hooks=hooks, executor=executor, **options))
            if motion is not None:  # frames interpolated on their way to the writer, one pair at a time
                device = compute_device(raft) if raft is not None else host.compute_device()
                source = interpolate_frames(source, multiplier, motion, device=device, hooks=hooks,
                                            total=frames.shape[0])
                fps = out_fps
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


def interpolation_options() -> dict:
    """MGLD Interpolate Frames' inputs, named as that node names them (``multiplier`` 1 = no interpolation)."""
    multiplier = ("INT", {"default": 1, "min": 1, "max": MAX_MULTIPLIER,
                          "tooltip": "Frame-rate multiplier m: m-1 frames are interpolated between each two as they are "
                                     "written (as MGLD Interpolate Frames does), the file gets m times the fps. Needs "
                                     "flow or raft connected. 1 = off."})
    return {"multiplier": multiplier, **INTERPOLATION_SETTINGS, **MOTION_INPUTS}


def _frames_only(decoded: Iterator[tuple[int, torch.Tensor]]) -> Iterator[torch.Tensor]:
    """``(index, frame)`` pairs of the decoder -> frames, in order, without keeping any of them."""
    for _, frame in decoded:
        yield frame
