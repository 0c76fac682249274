"""Data types, errors and constants of video I/O (what callers see)."""
from __future__ import annotations

import dataclasses
import math
import os
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
import torch


if TYPE_CHECKING:
    from .timing import ConstantRateGrid

PathLike = Union[str, "os.PathLike[str]"]

#: Frame rate given to image sequences (which carry no timing) unless ``force_fps`` is set.
DEFAULT_SEQUENCE_FPS = Fraction(24)
#: File types recognised when a folder or glob pattern is read as an image sequence.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: libx265 (as shipped in the PyAV wheels) intermittently corrupts the heap and crashes the process
#: on frames narrower than this, so narrower h265 writes are refused with an error.
MIN_H265_WIDTH = 64
#: Name pattern of the files written for ``codec="png"`` (0-based frame index).
PNG_SEQUENCE_NAME = "frame_{:06d}.png"


class VideoReadError(ValueError):
    """A video or image sequence could not be read; the message names the file and the reason."""


class VideoWriteError(OSError):
    """A video could not be written (folder not writable, encoder or muxer failure)."""


# --------------------------------------------------------------------------------------------------
# Data classes


@dataclasses.dataclass(frozen=True)
class AudioTrack:
    """Audio as float32 samples in [-1, 1], ``waveform`` shaped ``[channels, samples]``."""

    waveform: torch.Tensor
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.waveform.shape[0])

    @property
    def samples(self) -> int:
        return int(self.waveform.shape[1])

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a file's header says. ``frame_count``/``duration`` are None when the container does not
    store them (e.g. Matroska has no frame count); :attr:`estimated_frames` then falls back to
    ``duration * fps``."""

    path: str
    container: str
    codec: str
    width: int
    height: int
    fps: Fraction
    frame_count: Optional[int]
    duration: Optional[float]
    pixel_format: Optional[str]
    has_audio: bool
    audio_codec: Optional[str] = None
    audio_sample_rate: Optional[int] = None
    audio_channels: Optional[int] = None
    is_image_sequence: bool = False

    @property
    def estimated_frames(self) -> Optional[int]:
        if self.frame_count is not None:
            return self.frame_count
        if self.duration is not None:
            return int(round(self.duration * self.fps))
        return None


@dataclasses.dataclass
class VideoClip:
    """Decoded frames plus the audio that plays under them.

    ``frames`` is ``[N, H, W, 3]`` uint8 RGB. ``fps`` is the playback rate of *these* frames: the
    source rate divided by ``every`` (or ``force_fps``). ``audio`` covers the source time span of the
    selected frames (``N * every`` source frame periods from the first selected frame), or is None
    when the source has no audio there. ``decoded_frames`` counts frames pulled from the decoder
    (skipped ones included), which shows that decoding stopped after the last wanted frame.
    ``timing`` says how a variable-frame-rate source was resampled to a constant rate (its
    :meth:`~.timing.ConstantRateGrid.describe` is the loader's notice); None when nothing was.
    """

    frames: torch.Tensor
    fps: Fraction
    audio: Optional[AudioTrack]
    source: VideoInfo
    start: int
    every: int
    decoded_frames: int
    timing: Optional["ConstantRateGrid"] = None

    @property
    def duration(self) -> float:
        return self.frames.shape[0] / self.fps


def to_fraction(fps: Any) -> Fraction:
    """An exact frame rate. Fractions and ints are kept; floats near an integer or an NTSC rate
    (``n * 1000/1001``, e.g. 29.97 or 23.976) snap to it; other floats use the nearest fraction
    with a denominator up to 1001. Strings such as ``"30000/1001"`` are parsed."""
    if isinstance(fps, Fraction):
        value = fps
    elif isinstance(fps, (int, np.integer)) and not isinstance(fps, bool):
        value = Fraction(int(fps))
    elif isinstance(fps, str):
        try:
            value = Fraction(fps.strip())
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"frame rate {fps!r} is not a number or fraction") from None
    else:
        try:
            x = float(fps)
        except (TypeError, ValueError):
            raise ValueError(f"frame rate {fps!r} is not a number") from None
        if not math.isfinite(x) or x <= 0:
            raise ValueError(f"frame rate must be a positive finite number, got {fps!r}")
        nearest = round(x)
        ntsc = round(x * 1.001)
        if nearest > 0 and abs(x - nearest) < 1e-3:
            value = Fraction(nearest)
        elif ntsc > 0 and abs(x - ntsc * 1000 / 1001) < 1e-3:
            value = Fraction(ntsc * 1000, 1001)
        else:
            value = Fraction(x).limit_denominator(1001)
    if value <= 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    return value
