"""The host's VIDEO type without the host: one class standing in for ComfyUI's video values.

Inside ComfyUI, VIDEO values are ComfyUI's own (``VideoFromFile``, ``VideoFromComponents``; see
``nodes/host.py``). Without it (tests, the headless runner) the nodes and the runner's stand-ins for
ComfyUI's core video nodes pass :class:`StandInVideo` values, which offer what those consumers call:
``get_components()`` and ``get_stream_source()``. Above the reader on purpose: a file's frames are
decoded here, while the plain types the reader returns (:mod:`.data`) stay below it.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Callable, Optional

import torch

from .host_audio import audio_to_comfy
from .reader import read_video


@dataclasses.dataclass
class VideoParts:
    """Frames, audio and rate of a video, with the field names of ComfyUI's ``VideoComponents``."""

    images: torch.Tensor  # [N, H, W, 3] float in [0, 1]
    frame_rate: Fraction
    audio: Optional[dict] = None  # the host's {"waveform", "sample_rate"} dictionary


class StandInVideo:
    """A VIDEO value: a file, frames as they are, or frames decoded on first use; exactly one of the three.

    * ``path`` (:meth:`from_file`, ComfyUI's ``VideoFromFile``): consumers may read the file themselves
      (:meth:`get_stream_source` names it), and every :meth:`get_components` decodes it whole; nothing is
      kept between calls, so a VIDEO of a long saved clip holds no frames.
    * ``parts`` (:meth:`from_frames`, ComfyUI's ``VideoFromComponents``): the frames, rate and audio given.
    * ``load``: a function giving the parts, called once when they are first asked for, and kept. The
      headless Load Video decodes this way with MGLD Load LR Video's own checks and notices; such a value
      names no file, so its consumers take its decoded frames.
    """

    def __init__(self, path: Optional[str] = None, parts: Optional[VideoParts] = None,
                 load: Optional[Callable[[], VideoParts]] = None):
        if sum(given is not None for given in (path, parts, load)) != 1:
            raise ValueError("a VIDEO stand-in takes exactly one of a file path, its parts or a function loading them")
        self.path, self._parts, self._load = path, parts, load

    @classmethod
    def from_file(cls, path: str) -> "StandInVideo":
        return cls(path=path)

    @classmethod
    def from_frames(cls, images: torch.Tensor, frame_rate: Fraction, audio: Optional[dict] = None) -> "StandInVideo":
        return cls(parts=VideoParts(images, frame_rate, audio))

    def get_stream_source(self) -> Optional[str]:
        """The file to read the video from, or None when the frames are the video (as for ComfyUI's
        ``VideoFromComponents``, which has no file)."""
        return self.path

    def get_components(self) -> VideoParts:
        if self._parts is None and self._load is not None:
            self._parts, self._load = self._load(), None
        if self._parts is not None:
            return self._parts
        clip = read_video(self.path)
        return VideoParts(clip.frames.float() / 255.0, clip.fps, audio_to_comfy(clip.audio))


#: The names ComfyUI-less callers make the stand-ins by (after ComfyUI's ``VideoFromFile`` and ``VideoFromComponents``).
FileVideo = StandInVideo.from_file
FrameVideo = StandInVideo.from_frames
