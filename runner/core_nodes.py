"""Stand-ins for the ComfyUI core nodes the shipped workflows use, so the headless runner runs them all.

The advanced workflow loads and saves through ComfyUI's own video nodes and shows previews. ComfyUI is
not a dependency, so headless these node types run through equivalents built on this pack's video
nodes, with the inputs, widgets and outputs of ComfyUI's (``comfy_extras/nodes_video.py`` and
``nodes.py``, ComfyUI 0.3.6x), so a workflow saved by the frontend maps onto them unchanged:

* **Load Video** (``file``) -> a VIDEO that is decoded when its components are asked for, by MGLD Load
  LR Video's reader: exact frame rate, the audio under the frames, and a variable-frame-rate file put on
  a constant-rate grid (ComfyUI's own node takes every decoded frame at the file's average rate);
* **Get Video Components** (VIDEO) -> IMAGE, AUDIO, fps;
* **Create Video** (IMAGE, ``fps``, optional AUDIO) -> VIDEO;
* **Save Video** (VIDEO, ``filename_prefix``, ``format``, ``codec``) -> H.264 in .mp4 with AAC audio, what
  ComfyUI's ``auto`` writes, through MGLD Save Video (written under a temporary name, then renamed);
* **Preview Image** -> nothing: headless, there is no canvas to show a preview on.

Their VIDEO values are the pack's one stand-in for ComfyUI's (``pipeline/video_io/standin.py``), which
MGLD Save Video also returns when ComfyUI is absent.
"""
from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

from ..nodes import host
from ..nodes.video import MGLDLoadVideo, MGLDSaveVideo
from ..pipeline.defaults import CRF
from ..pipeline.video_io import StandInVideo, VideoParts


def _rate(fps: float) -> Fraction:
    """A frame rate widget or output as the VIDEO's exact rate (29.97002997... -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def _loaded(path: str) -> VideoParts:
    """A video file as MGLD Load LR Video loads it whole: exact rate, the audio under the frames, a variable
    frame rate put on a constant-rate grid (with its notice), and its memory check before decoding."""
    frames, fps, audio, _ = MGLDLoadVideo().load(path, 0, 0, 1, 0.0)
    return VideoParts(frames, _rate(fps), audio)


class LoadVideo:
    DESCRIPTION = "Headless stand-in for ComfyUI's Load Video: a video file from the input folder (or a path)."
    RETURN_TYPES = ("VIDEO",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"file": (sorted(host.list_input_videos()), {"video_upload": True})}}

    @classmethod
    def IS_CHANGED(cls, file, **_):
        return MGLDLoadVideo.IS_CHANGED(file)

    def load(self, file):
        path = MGLDLoadVideo._resolve(file)
        return (StandInVideo(load=functools.partial(_loaded, path)),)


class GetVideoComponents:
    DESCRIPTION = "Headless stand-in for ComfyUI's Get Video Components: frames, audio and frame rate of a VIDEO."
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("images", "audio", "fps")
    FUNCTION = "components"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO",)}}

    def components(self, video):
        parts = video.get_components()
        return parts.images, parts.audio, float(parts.frame_rate)


class CreateVideo:
    DESCRIPTION = "Headless stand-in for ComfyUI's Create Video: a VIDEO from frames, a frame rate and optional audio."
    RETURN_TYPES = ("VIDEO",)
    FUNCTION = "create"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0})},
                "optional": {"audio": ("AUDIO",)}}

    def create(self, images, fps, audio=None):
        return (StandInVideo.from_frames(images, _rate(fps), audio),)


class SaveVideo:
    """ComfyUI's Save Video has no outputs; the stand-in's result is the written path (for ``--output``),
    which no node can link to."""

    DESCRIPTION = "Headless stand-in for ComfyUI's Save Video: H.264 .mp4 (with AAC audio) in the output folder."
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO",), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                             "format": (["auto", "mp4"], {"default": "auto"}),
                             "codec": (["auto", "h264"], {"default": "auto"})}}

    def save(self, video, filename_prefix, format, codec, output_path=None):
        """``output_path``: the runner's ``--output`` (never given by ComfyUI)."""
        parts = video.get_components()
        return MGLDSaveVideo().save(parts.images, parts.frame_rate, filename_prefix, "h264", CRF, "auto", parts.audio,
                                    output_path=output_path)


class PreviewImage:
    DESCRIPTION = "Headless stand-in for ComfyUI's Preview Image: nothing to show without a canvas."
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}

    def preview(self, images):
        return ()


#: ComfyUI core node type -> its headless stand-in.
CORE_NODES: dict[str, Any] = {cls.__name__: cls for cls in (LoadVideo, GetVideoComponents, CreateVideo, SaveVideo,
                                                             PreviewImage)}
