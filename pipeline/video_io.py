"""Video files in and out without a host: decode to ``[N,H,W,3]`` uint8 RGB tensors, encode them back.

Everything goes through PyAV (the ``av`` package, which ComfyUI already depends on):

* :func:`probe_video` reads a file's header (size, exact frame rate, frame count, audio layout);
* :func:`read_video` decodes a frame range (``start``/``count``/``every``) plus the audio that plays
  during that range; :func:`iter_video` streams frames one at a time for clips too long for memory;
* :func:`write_video` encodes frames (a tensor or any iterator of frames) to H.264, H.265, ProRes,
  FFV1 or a numbered PNG folder, muxing audio when given. Writes are atomic: the result appears
  under its final name only once it is complete;
* :func:`audio_to_comfy` / :func:`audio_from_comfy` convert between :class:`AudioTrack` and the
  host's ``{"waveform": [B, C, S], "sample_rate": int}`` dictionaries.

Colour: YUV output is converted with the BT.709 matrix in limited range and tagged as such; reading
converts with whatever matrix/range the file is tagged with (FFmpeg's default when untagged), so a
write/read round trip uses the same matrix in both directions. Both directions use swscale's
accurate-rounding, full-chroma path (see ``_SWS_FLAGS``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import math
import os
import pathlib
import re
import secrets
import shutil
import warnings
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from typing import Any, Callable, Optional, Union

import av
import numpy as np
import torch
from av.video.reformatter import ColorRange, Colorspace

PathLike = Union[str, "os.PathLike[str]"]

#: swscale flags for every RGB <-> YUV conversion (FFmpeg's SWS_* bits, spelled out because older
#: PyAV has no names for the last three): bicubic | full-resolution chroma on output and input |
#: accurate rounding. The default fast path shifts colours by 1-2 levels (too dark) on 4:2:0
#: material; this costs ~50 ms per 1080p frame, negligible next to diffusion sampling.
_SWS_FLAGS = 0x4 | 0x2000 | 0x4000 | 0x40000
#: PyAV >= 17 converts with the matrix/range a frame is tagged with; older versions need both
#: passed explicitly (and ignore them unless source and destination differ).
_PYAV_USES_FRAME_TAGS = int(av.__version__.split(".")[0]) >= 17
#: AVColorSpace tag -> swscale coefficient table (BT.709, FCC, BT.601 x2, SMPTE 240M, BT.2020 x2).
_SWS_TABLES = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}

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
    """

    frames: torch.Tensor
    fps: Fraction
    audio: Optional[AudioTrack]
    source: VideoInfo
    start: int
    every: int
    decoded_frames: int

    @property
    def duration(self) -> float:
        return self.frames.shape[0] / self.fps


# --------------------------------------------------------------------------------------------------
# Small helpers


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


@contextlib.contextmanager
def _ffmpeg_log():
    """Collect FFmpeg's error messages (for our exceptions) instead of letting them reach the console.

    PyAV drops FFmpeg's log by default, which leaves errors such as "moov atom not found" unsaid.
    While this is active, error lines are captured into the yielded list: from every thread when
    logging was off (decoder worker threads log too, and nobody else was listening), else only
    this thread's, leaving the host's own log handling alone."""
    previous = av.logging.get_level()
    if previous is None:
        av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=previous is not None) as logs:
            yield logs
    finally:
        if previous is None:
            av.logging.set_level(None)


def _ffmpeg_said(err: BaseException, logs: list, limit: int = 400) -> str:
    """The exception text plus captured FFmpeg lines it does not already contain, shortened."""
    text = str(err).strip()
    extra = []
    for entry in logs:
        message = str(entry[2]).strip()
        if message and message not in text and message not in extra:
            extra.append(message)
    if extra:
        text += "; ffmpeg: " + "; ".join(extra[-3:])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _natural_key(path: str):
    """Sort key putting ``frame2.png`` before ``frame10.png``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", os.path.basename(path))]


def _image_sequence(path: str) -> Optional[list[str]]:
    """The files of an image sequence when ``path`` is a folder or a glob pattern, else None."""
    if os.path.isdir(path):
        names = [os.path.join(path, n) for n in os.listdir(path)]
        files = [
            p for p in names
            if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p) and not os.path.basename(p).startswith(".")
        ]
        if not files:
            raise VideoReadError(f"folder {path} contains no images ({', '.join(IMAGE_EXTENSIONS)})")
        return sorted(files, key=_natural_key)
    if not os.path.exists(path) and glob.has_magic(path):
        files = [p for p in glob.glob(path) if os.path.isfile(p)]
        if not files:
            raise VideoReadError(f"no files match the pattern {path}")
        return sorted(files, key=_natural_key)
    return None


def _check_range(start: int, count: int, every: int, force_fps: float) -> None:
    for name, value, low in (("start", start, 0), ("count", count, 0), ("every", every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise VideoReadError(f"{name} must be an integer >= {low}, got {value!r}")
    if (isinstance(force_fps, bool) or not isinstance(force_fps, (int, float, Fraction))
            or not math.isfinite(float(force_fps)) or force_fps < 0):
        raise VideoReadError(f"force_fps must be 0 (keep the source rate) or a positive number, got {force_fps!r}")


@dataclasses.dataclass(frozen=True)
class _Selection:
    """Frames ``start, start+every, ...``; at most ``count`` of them (0 = up to the end)."""

    start: int
    count: int
    every: int

    @property
    def last(self) -> Optional[int]:
        return self.start + (self.count - 1) * self.every if self.count else None

    def wants(self, index: int) -> bool:
        if index < self.start or (index - self.start) % self.every:
            return False
        return self.count == 0 or index <= self.last

    def done_after(self, index: int) -> bool:
        return self.count > 0 and index >= self.last


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """8-bit RGB of any decoded frame: grey, palette, alpha (dropped) and high bit depth included.
    YUV is converted with the matrix and range the frame is tagged with (BT.601 when untagged)."""
    fmt = frame.format
    if _PYAV_USES_FRAME_TAGS or fmt.is_rgb or fmt.name.startswith(("gray", "pal", "ya", "mono")):
        return frame.to_ndarray(format="rgb24", interpolation=_SWS_FLAGS)
    table = _SWS_TABLES.get(int(frame.colorspace), 5)
    full = int(frame.color_range) == int(ColorRange.JPEG) or fmt.name.startswith("yuvj")
    return frame.to_ndarray(
        format="rgb24", interpolation=_SWS_FLAGS,
        src_colorspace=table, src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
        # the destination table is unused for RGB output; it only has to differ from the source
        dst_colorspace=1 if table == 5 else 5, dst_color_range=ColorRange.JPEG,
    )


# --------------------------------------------------------------------------------------------------
# Probing


def _open_input(path: str):
    if not os.path.exists(path):
        raise VideoReadError(f"video file not found: {path}")
    if os.path.isdir(path):
        raise VideoReadError(f"{path} is a folder without images")
    with _ffmpeg_log() as logs:
        try:
            container = av.open(path, mode="r")
        except av.FFmpegError as err:
            raise VideoReadError(
                f"cannot read {path} as a video (file is not a video or is damaged): {_ffmpeg_said(err, logs)}"
            ) from None
        except OSError as err:
            raise VideoReadError(f"cannot open {path}: {err}") from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        container.close()
        raise VideoReadError(f"{path} has no video stream (streams: {kinds})")
    return container


def _stream_fps(stream) -> Optional[Fraction]:
    for name in ("guessed_rate", "average_rate", "base_rate"):
        rate = getattr(stream, name, None)
        if rate:
            rate = Fraction(rate)
            if 0 < rate <= 1000:
                return rate
    return None


def _container_info(container, path: str) -> VideoInfo:
    vs = container.streams.video[0]
    cc = vs.codec_context
    fps = _stream_fps(vs) or DEFAULT_SEQUENCE_FPS
    duration = None
    if vs.duration and vs.time_base:
        duration = float(vs.duration * vs.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    audio = container.streams.audio[0] if container.streams.audio else None
    return VideoInfo(
        path=path,
        container=container.format.name,
        codec=cc.name,
        width=int(cc.width),
        height=int(cc.height),
        fps=fps,
        frame_count=int(vs.frames) if vs.frames else None,
        duration=duration,
        pixel_format=cc.pix_fmt,
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
        audio_channels=int(audio.codec_context.channels) if audio is not None else None,
    )


def _decode_image(path: str) -> np.ndarray:
    with _ffmpeg_log() as logs:
        try:
            with av.open(path, mode="r") as container:
                for frame in container.decode(video=0):
                    return _rgb(frame)
        except av.FFmpegError as err:
            raise VideoReadError(f"cannot read image {path}: {_ffmpeg_said(err, logs)}") from None
    raise VideoReadError(f"image {path} decoded to zero frames")


def _sequence_info(path: str, files: list[str], first: Optional[np.ndarray] = None) -> VideoInfo:
    if first is None:
        first = _decode_image(files[0])
    return VideoInfo(
        path=path,
        container="image_sequence",
        codec=os.path.splitext(files[0])[1].lstrip(".").lower(),
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        fps=DEFAULT_SEQUENCE_FPS,
        frame_count=len(files),
        duration=float(len(files) / DEFAULT_SEQUENCE_FPS),
        pixel_format="rgb24",
        has_audio=False,
        is_image_sequence=True,
    )


def probe_video(path: PathLike) -> VideoInfo:
    """Header information of a video file, a single image, a folder of images or a glob pattern."""
    path = os.fspath(path)
    files = _image_sequence(path)
    if files is not None:
        return _sequence_info(path, files)
    container = _open_input(path)
    try:
        return _container_info(container, path)
    finally:
        container.close()


# --------------------------------------------------------------------------------------------------
# Reading


class _AudioCollector:
    """Decoded audio as contiguous float32 chunks, placed on the container's timeline.

    The first decoded frame's timestamp fixes where sample 0 sits; later samples are taken as
    contiguous. Chunks that end before a given time can be dropped to bound memory while
    frames before ``start`` are being skipped."""

    def __init__(self) -> None:
        self.resampler = None
        self.sample_rate = 0
        self.channels = 0
        self.origin: Optional[Fraction] = None  # time of sample 0 (seconds)
        self.dropped = 0  # samples removed from the front
        self.chunks: list[np.ndarray] = []
        self.held = 0  # samples in ``chunks``

    def add(self, frame: av.AudioFrame) -> None:
        if self.resampler is None:
            self.sample_rate = int(frame.sample_rate)
            self.resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=self.sample_rate)
            self.channels = len(frame.layout.channels)
            self.origin = Fraction(frame.pts) * frame.time_base if frame.pts is not None and frame.time_base else Fraction(0)
        for out in self.resampler.resample(frame):
            self._append(out)

    def finish(self) -> None:
        if self.resampler is not None:
            for out in self.resampler.resample(None):
                self._append(out)

    def _append(self, frame: av.AudioFrame) -> None:
        data = np.ascontiguousarray(frame.to_ndarray(), dtype=np.float32).reshape(self.channels, -1)
        if data.shape[1]:
            self.chunks.append(data)
            self.held += data.shape[1]

    def end_time(self) -> Optional[Fraction]:
        if self.origin is None:
            return None
        return self.origin + Fraction(self.dropped + self.held, self.sample_rate)

    def drop_before(self, t: Fraction) -> None:
        if self.origin is None:
            return
        keep_from = t - Fraction(1, 10)  # a little slack for timestamp jitter
        while self.chunks:
            n = self.chunks[0].shape[1]
            if self.origin + Fraction(self.dropped + n, self.sample_rate) >= keep_from:
                break
            self.chunks.pop(0)
            self.dropped += n
            self.held -= n

    def extract(self, t0: Fraction, t1: Fraction) -> Optional[AudioTrack]:
        """Samples for ``[t0, t1)``; silence is prepended if the audio starts after ``t0`` (keeps
        sync), nothing is appended if it ends before ``t1``."""
        if self.origin is None or not self.held:
            return None
        sr = self.sample_rate
        a = math.floor((t0 - self.origin) * sr + Fraction(1, 2)) - self.dropped
        b = math.floor((t1 - self.origin) * sr + Fraction(1, 2)) - self.dropped
        data = np.concatenate(self.chunks, axis=1) if len(self.chunks) > 1 else self.chunks[0]
        lead = max(0, -a)
        body = data[:, max(a, 0) : max(min(b, data.shape[1]), 0)]
        if lead and body.shape[1]:
            body = np.concatenate([np.zeros((self.channels, min(lead, b - a)), np.float32), body], axis=1)
        if body.shape[1] == 0:
            return None
        return AudioTrack(torch.from_numpy(np.ascontiguousarray(body)), sr)


@dataclasses.dataclass
class _Progress:
    decoded: int = 0
    first_time: Optional[Fraction] = None
    selected: int = 0
    decode_error: Optional[str] = None
    frames_in_file: Optional[int] = None  # known once the end was reached


def _decode_container(container, sel: _Selection, audio: Optional[_AudioCollector], progress: _Progress, src_fps: Fraction):
    """Yield the selected frames as RGB arrays; stop demuxing once the last wanted frame is out and
    (when audio is collected) the audio reaches the end of the selected span."""
    vs = container.streams.video[0]
    vs.thread_type = "AUTO"
    streams = [vs]
    astream = None
    if audio is not None and container.streams.audio:
        astream = container.streams.audio[0]
        streams.append(astream)
    start_time = Fraction(vs.start_time) * vs.time_base if vs.start_time is not None and vs.time_base else Fraction(0)
    index = 0
    video_done = False
    span_end: Optional[Fraction] = None

    def decode(stream, packet):
        try:
            return stream.decode(packet)
        except av.FFmpegError as err:  # a damaged packet: keep going, report if nothing decodes
            if progress.decode_error is None:
                progress.decode_error = str(err)
            return []

    for packet in container.demux(*streams):
        if packet.stream.index == vs.index:
            if video_done:
                continue
            for frame in decode(vs, packet):
                progress.decoded += 1
                if frame.pts is not None and frame.time_base:
                    t = Fraction(frame.pts) * frame.time_base
                else:
                    t = start_time + Fraction(index) / src_fps
                if sel.wants(index):
                    if progress.first_time is None:
                        progress.first_time = t
                    progress.selected += 1
                    yield _rgb(frame)
                elif index < sel.start and audio is not None:
                    audio.drop_before(t)
                if sel.done_after(index):
                    video_done = True
                    span_end = progress.first_time + Fraction(progress.selected * sel.every) / src_fps
                    index += 1
                    break
                index += 1
            if video_done and (astream is None or _audio_covers(audio, span_end)):
                return
        elif astream is not None and packet.stream.index == astream.index:
            for frame in decode(astream, packet):
                audio.add(frame)
            if video_done and _audio_covers(audio, span_end):
                return
    progress.frames_in_file = index


def _audio_covers(audio: Optional[_AudioCollector], t: Optional[Fraction]) -> bool:
    end = audio.end_time() if audio is not None else None
    return end is not None and t is not None and end >= t


def _read_sequence(path: str, files: list[str], sel: _Selection, progress: _Progress):
    size = None
    for index, file in enumerate(files):
        if sel.wants(index):
            rgb = _decode_image(file)
            progress.decoded += 1
            if size is None:
                size = rgb.shape
            elif rgb.shape != size:
                raise VideoReadError(
                    f"image sequence {path}: {file} is {rgb.shape[1]}x{rgb.shape[0]}, "
                    f"but earlier images are {size[1]}x{size[0]}"
                )
            progress.selected += 1
            yield rgb
        if sel.done_after(index):
            return
    progress.frames_in_file = len(files)


def _empty_result_error(path: str, sel: _Selection, progress: _Progress) -> VideoReadError:
    total = progress.frames_in_file
    if total:
        return VideoReadError(
            f"start={sel.start} is past the end of {path}: it has {total} frames (valid start: 0..{total - 1})"
        )
    detail = f" (decoder said: {progress.decode_error})" if progress.decode_error else ""
    return VideoReadError(f"no frames could be decoded from {path}{detail}")


def read_video(path: PathLike, start: int = 0, count: int = 0, every: int = 1, force_fps: float = 0.0) -> VideoClip:
    """Decode frames ``start, start+every, ...`` (``count`` of them, 0 = to the end) of a video file,
    a single image, an image folder or a glob pattern (``frames/*.png``; natural sort order).

    Decoding stops after the last wanted frame (frames before ``start`` are decoded but not
    converted; no seeking, so the frame index is exact even for variable-rate files).
    ``fps`` of the result is the source rate / ``every``, or ``force_fps`` when > 0 (audio is never
    retimed: it is the source audio under the selected frames). Image sequences run at
    :data:`DEFAULT_SEQUENCE_FPS` unless ``force_fps`` is given and have no audio.
    """
    _check_range(start, count, every, force_fps)
    path = os.fspath(path)
    sel = _Selection(int(start), int(count), int(every))
    progress = _Progress()
    files = _image_sequence(path)
    collector = None
    if files is not None:
        first = _decode_image(files[0])
        info = _sequence_info(path, files, first)
        frames = list(_read_sequence(path, files, sel, progress))
    else:
        container = _open_input(path)
        try:
            info = _container_info(container, path)
            collector = _AudioCollector() if info.has_audio else None
            with _ffmpeg_log() as logs:
                try:
                    frames = list(_decode_container(container, sel, collector, progress, info.fps))
                    if collector is not None:
                        collector.finish()
                except av.FFmpegError as err:
                    raise VideoReadError(f"error while decoding {path}: {_ffmpeg_said(err, logs)}") from None
        finally:
            container.close()
    if not frames:
        raise _empty_result_error(path, sel, progress)
    if progress.decode_error:
        warnings.warn(f"{path}: some packets could not be decoded ({progress.decode_error})", RuntimeWarning, stacklevel=2)
    audio = None
    if collector is not None and progress.first_time is not None:
        span = Fraction(len(frames) * sel.every) / info.fps
        audio = collector.extract(progress.first_time, progress.first_time + span)
    fps = to_fraction(force_fps) if force_fps else info.fps / sel.every
    return VideoClip(
        frames=torch.from_numpy(np.stack(frames)),
        fps=fps,
        audio=audio,
        source=info,
        start=sel.start,
        every=sel.every,
        decoded_frames=progress.decoded,
    )


def iter_video(path: PathLike, start: int = 0, count: int = 0, every: int = 1) -> Iterator[torch.Tensor]:
    """Stream the selected frames one by one as ``[H, W, 3]`` uint8 tensors (no audio), for clips too
    long to hold in memory. Same selection rules and errors as :func:`read_video`."""
    _check_range(start, count, every, 0.0)
    path = os.fspath(path)
    sel = _Selection(int(start), int(count), int(every))
    progress = _Progress()
    files = _image_sequence(path)
    if files is not None:
        source = _read_sequence(path, files, sel, progress)
        for rgb in source:
            yield torch.from_numpy(rgb)
    else:
        container = _open_input(path)
        try:
            fps = _stream_fps(container.streams.video[0]) or DEFAULT_SEQUENCE_FPS
            try:
                for rgb in _decode_container(container, sel, None, progress, fps):
                    yield torch.from_numpy(rgb)
            except av.FFmpegError as err:
                raise VideoReadError(f"error while decoding {path}: {err}") from None
        finally:
            container.close()
    if progress.selected == 0:
        raise _empty_result_error(path, sel, progress)


# --------------------------------------------------------------------------------------------------
# ComfyUI's AUDIO dictionaries


def audio_to_comfy(audio: Optional[AudioTrack]) -> Optional[dict]:
    """:class:`AudioTrack` -> ``{"waveform": [1, C, S] float32, "sample_rate": int}``; None stays None."""
    if audio is None:
        return None
    waveform = audio.waveform.detach().to("cpu", torch.float32).unsqueeze(0).contiguous()
    return {"waveform": waveform, "sample_rate": int(audio.sample_rate)}


def audio_from_comfy(audio: Any) -> Optional[AudioTrack]:
    """A host AUDIO value -> :class:`AudioTrack`, or None for "no audio" (None, a missing waveform,
    zero samples or an empty batch). Only the first item of a batch is used. ``[C, S]`` and ``[S]``
    waveforms are accepted too."""
    if audio is None:
        return None
    if isinstance(audio, AudioTrack):
        return audio if audio.samples else None
    if not isinstance(audio, Mapping) and not (hasattr(audio, "__getitem__") and hasattr(audio, "keys")):
        raise ValueError(f"audio must be a dict with 'waveform' and 'sample_rate', got {type(audio).__name__}")
    if "waveform" not in audio.keys():
        return None
    waveform = audio["waveform"]
    if waveform is None:
        return None
    waveform = torch.as_tensor(waveform)
    if waveform.ndim == 3:
        if waveform.shape[0] == 0:
            return None
        waveform = waveform[0]
    elif waveform.ndim == 1:
        waveform = waveform[None]
    elif waveform.ndim != 2:
        raise ValueError(f"audio waveform must be [B, C, S], [C, S] or [S], got shape {tuple(waveform.shape)}")
    if waveform.shape[0] == 0 or waveform.shape[1] == 0:
        return None
    rate = audio["sample_rate"] if "sample_rate" in audio.keys() else None
    if rate is None or int(rate) <= 0:
        raise ValueError(f"audio sample_rate must be a positive integer, got {rate!r}")
    return AudioTrack(waveform.detach().to("cpu", torch.float32).contiguous(), int(rate))


# --------------------------------------------------------------------------------------------------
# Writing


@dataclasses.dataclass(frozen=True)
class _CodecSpec:
    encoder: str
    default_suffix: str
    suffixes: tuple[str, ...]
    pixel_format: str


_CODECS = {
    "h264": _CodecSpec("libx264", ".mp4", (".mp4", ".m4v", ".mov", ".mkv"), "yuv420p"),
    "h265": _CodecSpec("libx265", ".mp4", (".mp4", ".m4v", ".mov", ".mkv"), "yuv420p"),
    "prores": _CodecSpec("prores_ks", ".mov", (".mov", ".mkv"), "yuv422p10le"),
    "ffv1": _CodecSpec("ffv1", ".mkv", (".mkv",), "bgr0"),  # 8-bit RGB: exactly lossless
    "png": _CodecSpec("png", "", ("",), "rgb24"),
}
_CODEC_ALIASES = {"avc": "h264", "x264": "h264", "libx264": "h264", "hevc": "h265", "x265": "h265", "libx265": "h265",
                  "prores_ks": "prores", "png_sequence": "png", "png-sequence": "png"}
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_AUDIO_CODECS = {".mp4": ("aac",), ".m4v": ("aac",), ".mov": ("aac", "pcm"), ".mkv": ("flac", "pcm", "aac")}
_AUDIO_ENCODERS = {"aac": "aac", "flac": "flac", "pcm": "pcm_s16le"}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _codec_spec(codec: str) -> tuple[str, _CodecSpec]:
    key = str(codec).lower().strip()
    key = _CODEC_ALIASES.get(key, key)
    if key not in _CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(_CODECS)}")
    return key, _CODECS[key]


def _subsampling(pixel_format: str) -> tuple[int, int]:
    """Horizontal/vertical chroma subsampling factors of a pixel format (1 = none)."""
    probe = av.VideoFormat(pixel_format, 64, 64)
    widths = [c.width for c in probe.components]
    heights = [c.height for c in probe.components]
    return 64 // min(widths), 64 // min(heights)


def _as_uint8_frame(frame: Any, index: int) -> np.ndarray:
    """One frame as a contiguous ``[H, W, 3]`` uint8 array. Float input is read as [0, 1]; grey
    ``[H, W]``/``[H, W, 1]`` is repeated to RGB; a 4th (alpha) channel is dropped."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu()
        if frame.is_floating_point():
            frame = (frame.float().clamp(0, 1) * 255).round().to(torch.uint8)
        frame = frame.numpy()
    else:
        frame = np.asarray(frame)
        if np.issubdtype(frame.dtype, np.floating):
            frame = np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)
    if frame.dtype != np.uint8:
        raise ValueError(f"frame {index}: expected uint8 (or float in [0, 1]) pixels, got {frame.dtype}")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ValueError(f"frame {index}: expected shape [H, W, 3], got {tuple(frame.shape)}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame {index}: empty image {tuple(frame.shape)}")
    return np.ascontiguousarray(frame)


def _frame_source(frames: Any) -> Iterator[np.ndarray]:
    """Frames one at a time from a ``[N, H, W, C]`` tensor/array or an iterable of ``[H, W, C]``
    frames (``[n, H, W, C]`` chunks are also accepted), converted lazily."""
    if isinstance(frames, (torch.Tensor, np.ndarray)):
        if frames.ndim != 4:
            raise ValueError(f"frames must be [N, H, W, 3], got shape {tuple(frames.shape)}")
        items: Iterable = (frames[i] for i in range(frames.shape[0]))
    else:
        items = frames
    index = 0
    for item in items:
        if isinstance(item, (torch.Tensor, np.ndarray)) and item.ndim == 4:
            for sub in item:
                yield _as_uint8_frame(sub, index)
                index += 1
        else:
            yield _as_uint8_frame(item, index)
            index += 1


def _pad_to(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Grow to ``height x width`` by repeating the last row/column (the encoded picture is then that
    size; the extra row/column is a copy of its neighbour)."""
    h, w = frame.shape[:2]
    if h == height and w == width:
        return frame
    return np.pad(frame, ((0, height - h), (0, width - w), (0, 0)), mode="edge")


def _prepare_target(path: pathlib.Path) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VideoWriteError(f"cannot create the output folder {folder}: {err}") from None
    if not folder.is_dir():
        raise VideoWriteError(f"output folder {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VideoWriteError(f"output folder {folder} is not writable")


def _remove(path: pathlib.Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


def _audio_layout(channels: int) -> str:
    if channels not in _LAYOUTS:
        raise ValueError(f"audio with {channels} channels is not supported (1..8)")
    return _LAYOUTS[channels]


class _AudioWriter:
    """Feeds an :class:`AudioTrack` to the encoder in step with the video, so the audio ends where the
    last written frame ends (trimmed, never padded) and the file stays interleaved."""

    def __init__(self, container, audio: AudioTrack, codec: str, bitrate: Optional[int]) -> None:
        encoder = _AUDIO_ENCODERS[codec]
        self.wave = np.clip(audio.waveform.detach().cpu().float().numpy(), -1.0, 1.0)
        self.in_rate = int(audio.sample_rate)
        self.layout = _audio_layout(self.wave.shape[0])
        supported = av.Codec(encoder, "w").audio_rates
        rate = self.in_rate
        if supported and rate not in supported:
            rate = min(supported, key=lambda r: (abs(r - self.in_rate), -r))
        self.out_rate = int(rate)
        self.stream = container.add_stream(encoder, rate=self.out_rate)
        self.stream.layout = self.layout
        self.stream.format = av.Codec(encoder, "w").audio_formats[0].name
        if codec == "aac":
            self.stream.bit_rate = int(bitrate or (96000 if self.wave.shape[0] == 1 else 192000))
        self.container = container
        self.resampler = None
        self.fed = 0
        self.out_pts = 0

    def start(self) -> None:
        """Build the resampler once the encoder is open (its frame size is known then)."""
        frame_size = self.stream.codec_context.frame_size or None
        self.resampler = av.AudioResampler(
            format=self.stream.format, layout=self.layout, rate=self.out_rate, frame_size=frame_size
        )

    def _encode(self, frames) -> None:
        for frame in frames:
            frame.pts = self.out_pts
            frame.time_base = Fraction(1, self.out_rate)
            self.out_pts += frame.samples
            self.container.mux(self.stream.encode(frame))

    def feed_until(self, t: Fraction) -> None:
        target = min(self.wave.shape[1], math.floor(t * self.in_rate))
        if target <= self.fed:
            return
        chunk = np.ascontiguousarray(self.wave[:, self.fed : target], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.layout)
        frame.sample_rate = self.in_rate
        frame.pts = self.fed
        frame.time_base = Fraction(1, self.in_rate)
        self.fed = target
        self._encode(self.resampler.resample(frame))

    def finish(self) -> None:
        self._encode(self.resampler.resample(None))
        self.container.mux(self.stream.encode(None))


def _video_stream(container, spec: _CodecSpec, key: str, fps: Fraction, width: int, height: int, pixel_format: str, crf: int,
                  preset: str, suffix: str):
    stream = container.add_stream(spec.encoder, rate=fps)
    stream.width = width
    stream.height = height
    stream.pix_fmt = pixel_format
    options: dict[str, str] = {}
    if key in ("h264", "h265"):
        options.update(crf=str(crf), preset=preset)
        if key == "h265":
            options["x265-params"] = "log-level=error"
            if suffix in (".mp4", ".m4v", ".mov"):
                stream.codec_tag = "hvc1"  # the tag Apple players require
    elif key == "prores":
        options.update(profile="4" if "444" in pixel_format else "3", vendor="apl0")  # 4444 / HQ
    elif key == "ffv1":
        options.update(level="3", slicecrc="1")
        stream.codec_context.gop_size = 1
    stream.options = options
    if not av.VideoFormat(pixel_format).is_rgb and not pixel_format.startswith("gray"):
        cc = stream.codec_context
        cc.colorspace = int(Colorspace.ITU709)
        cc.color_primaries = 1  # BT.709
        cc.color_trc = 1  # BT.709
        cc.color_range = int(ColorRange.JPEG if pixel_format.startswith("yuvj") else ColorRange.MPEG)
    return stream


def _to_av_frame(rgb: np.ndarray, pixel_format: str) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if pixel_format == "rgb24":
        return frame
    if av.VideoFormat(pixel_format).is_rgb or pixel_format.startswith(("gray", "pal", "mono")):
        return frame.reformat(format=pixel_format, interpolation=_SWS_FLAGS)
    full_range = pixel_format.startswith("yuvj")  # the JPEG-range variants
    return frame.reformat(format=pixel_format, dst_colorspace=Colorspace.ITU709,
                          dst_color_range=ColorRange.JPEG if full_range else ColorRange.MPEG, interpolation=_SWS_FLAGS)


def write_video(
    path: PathLike,
    frames: Any,
    fps: Any,
    audio: Any = None,
    codec: str = "h264",
    crf: int = 19,
    pixel_format: Optional[str] = None,
    *,
    preset: str = "medium",
    audio_codec: Optional[str] = None,
    audio_bitrate: Optional[int] = None,
    on_frame: Optional[Callable[[int], None]] = None,
) -> str:
    """Encode ``frames`` at exactly ``fps`` and return the written path.

    frames: ``[N, H, W, 3]`` uint8 tensor/array, or any iterable of ``[H, W, 3]`` frames (consumed
        lazily, so long videos never sit in memory). Float frames are taken as [0, 1].
    fps: Fraction (kept exactly, e.g. 30000/1001), int, float (snapped, see :func:`to_fraction`) or str.
    audio: :class:`AudioTrack`, a host AUDIO dict or None. It is cut where the video ends, never padded,
        and resampled if the audio codec cannot take its rate. Default codec: AAC in .mp4/.mov,
        FLAC in .mkv; ``audio_codec`` may pick ``"aac"``, ``"flac"`` or ``"pcm"`` (16-bit).
    codec: ``h264`` (libx264, .mp4/.mov/.mkv), ``h265`` (libx265, tagged hvc1 in mp4/mov),
        ``prores`` (prores_ks, .mov/.mkv, profile HQ or 4444), ``ffv1`` (lossless, .mkv) or ``png``
        (``path`` is a folder that receives ``frame_000000.png`` ...). A path without a suffix gets
        the codec's default one.
    crf: quality for h264/h265 (lower = better); unused by the other codecs.
    pixel_format: default yuv420p (h264/h265), yuv422p10le (prores), bgr0 = exact 8-bit RGB (ffv1),
        rgb24 (png); any format the encoder supports is accepted (yuv444p, yuv420p10le, ...).
        When the format subsamples chroma (4:2:0 needs even width and height, 4:2:2 even width),
        odd sizes are padded by repeating the last row/column, so the file is one pixel larger there.
    on_frame: called with the number of frames written so far (progress reporting).

    Atomic: the output is written to ``.<name>.partial-<random><suffix>`` next to the target and
    renamed over it only when complete; on any error or interrupt the partial file is deleted and
    an existing target is left untouched. Missing parent folders are created.
    """
    key, spec = _codec_spec(codec)
    fps = to_fraction(fps)
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an integer in 0..51, got {crf!r}")
    pixel_format = pixel_format or spec.pixel_format
    supported = [f.name for f in (av.Codec(spec.encoder, "w").video_formats or [])]
    if supported and pixel_format not in supported:
        raise ValueError(
            f"pixel format {pixel_format!r} is not supported by {key} ({spec.encoder}); supported: {', '.join(supported)}"
        )
    target = pathlib.Path(os.fspath(path))
    if key != "png":
        suffix = target.suffix.lower()
        if not suffix:
            target = target.with_name(target.name + spec.default_suffix)
            suffix = spec.default_suffix
        if suffix not in spec.suffixes:
            raise ValueError(f"{key} cannot be written to a {suffix} file; use one of {', '.join(spec.suffixes)}")
    else:
        suffix = ""
    track = audio_from_comfy(audio)
    if track is not None and key == "png":
        warnings.warn("a png sequence cannot hold audio; the audio is not written", RuntimeWarning, stacklevel=2)
        track = None
    if track is not None:
        allowed = _AUDIO_CODECS[suffix]
        audio_codec = (audio_codec or allowed[0]).lower()
        if audio_codec not in allowed:
            raise ValueError(f"audio codec {audio_codec!r} cannot go into a {suffix} file; use one of {', '.join(allowed)}")
        _audio_layout(track.channels)
    if target.exists() and key != "png" and target.is_dir():
        raise VideoWriteError(f"cannot write {target}: a folder with that name exists")

    source = _frame_source(frames)
    first = next(source, None)
    if first is None:
        raise ValueError("no frames to write")
    _prepare_target(target)
    if key == "png":
        return _write_png_sequence(target, first, source, pixel_format, on_frame)

    height, width = first.shape[:2]
    sub_w, sub_h = _subsampling(pixel_format)
    enc_w = -(-width // sub_w) * sub_w
    enc_h = -(-height // sub_h) * sub_h
    if key == "h265" and enc_w < MIN_H265_WIDTH:
        raise ValueError(
            f"h265 needs frames at least {MIN_H265_WIDTH} px wide (libx265 corrupts memory on narrower frames); "
            f"these are {width} px wide: use h264 or ffv1"
        )
    temp = target.with_name(f".{target.stem}.partial-{secrets.token_hex(4)}{suffix}")
    container = None
    try:
        with _ffmpeg_log() as logs:
            try:
                muxer = _MUXERS[suffix]
                faststart = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}  # index first: streamable
                container = av.open(str(temp), mode="w", format=muxer, container_options=faststart)
                stream = _video_stream(container, spec, key, fps, enc_w, enc_h, pixel_format, int(crf), preset, suffix)
                audio_writer = _AudioWriter(container, track, audio_codec, audio_bitrate) if track is not None else None
                container.start_encoding()
                if audio_writer is not None:
                    audio_writer.start()
                frame_tick = 1 / fps
                count = 0
                for rgb in _chain(first, source):
                    if rgb.shape[:2] != (height, width):
                        raise ValueError(_size_mismatch(count, rgb, width, height))
                    frame = _to_av_frame(_pad_to(rgb, enc_h, enc_w), pixel_format)
                    frame.pts = count  # one tick of 1/fps per frame: exact rate, no rounding
                    frame.time_base = frame_tick
                    container.mux(stream.encode(frame))
                    count += 1
                    if audio_writer is not None:
                        audio_writer.feed_until(Fraction(count) / fps)
                    del logs[:-8]  # the frame source may run for hours: keep only recent lines
                    if on_frame is not None:
                        on_frame(count)
                container.mux(stream.encode(None))
                if audio_writer is not None:
                    audio_writer.finish()
                container.close()
                container = None
            except av.FFmpegError as err:
                raise VideoWriteError(f"writing {target} failed: {_ffmpeg_said(err, logs)}") from None
        os.replace(temp, target)
    except BaseException:
        if container is not None:
            try:
                container.close()
            except Exception:
                pass
        _remove(temp)
        raise
    return str(target)


def _size_mismatch(index: int, rgb: np.ndarray, width: int, height: int) -> str:
    return f"frame {index} is {rgb.shape[1]}x{rgb.shape[0]} but the first frame is {width}x{height}"


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _write_png_sequence(target: pathlib.Path, first: np.ndarray, source: Iterator[np.ndarray], pixel_format: str,
                        on_frame: Optional[Callable[[int], None]]) -> str:
    """Numbered PNGs written into a hidden temporary folder that is renamed to ``target`` at the end.
    An existing ``target`` is replaced only if it holds nothing but PNG files (so a wrong path never
    deletes unrelated data); it is moved aside first and restored if the final rename fails."""
    if target.exists():
        if not target.is_dir():
            raise VideoWriteError(f"cannot write a png sequence to {target}: a file with that name exists")
        others = [p.name for p in target.iterdir() if not p.name.lower().endswith(".png")]
        if others:
            raise VideoWriteError(f"refusing to replace {target}: it holds files other than PNGs (e.g. {others[0]})")
    token = secrets.token_hex(4)
    temp = target.with_name(f".{target.name}.partial-{token}")
    aside = target.with_name(f".{target.name}.old-{token}")
    height, width = first.shape[:2]
    try:
        temp.mkdir()
        with _ffmpeg_log() as logs:
            try:
                encoder = av.CodecContext.create("png", "w")
                encoder.width, encoder.height, encoder.pix_fmt = width, height, pixel_format
                encoder.time_base = Fraction(1, 1)
                count = 0
                for rgb in _chain(first, source):
                    if rgb.shape[:2] != (height, width):
                        raise ValueError(_size_mismatch(count, rgb, width, height))
                    # PNG is intra-only: each frame comes back as one packet at once
                    data = b"".join(bytes(p) for p in encoder.encode(_to_av_frame(rgb, pixel_format)))
                    (temp / PNG_SEQUENCE_NAME.format(count)).write_bytes(data)
                    count += 1
                    if on_frame is not None:
                        on_frame(count)
            except av.FFmpegError as err:
                raise VideoWriteError(f"writing {target} failed: {_ffmpeg_said(err, logs)}") from None
        moved_aside = False
        if target.exists():
            os.replace(target, aside)
            moved_aside = True
        try:
            os.replace(temp, target)
        except BaseException:
            if moved_aside:
                os.replace(aside, target)
            raise
        if moved_aside:
            _remove(aside)
    except BaseException:
        _remove(temp)
        raise
    return str(target)
