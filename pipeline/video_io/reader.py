"""Probing and decoding: frame ranges, image sequences and the audio under the selected frames."""
from __future__ import annotations

import bisect
import dataclasses
import glob
import math
import os
import re
import warnings
from collections.abc import Iterator
from fractions import Fraction
from typing import Optional

import av
import numpy as np
import torch

from .av_helpers import _ffmpeg_log, _ffmpeg_said, _rgb
from .data import (DEFAULT_SEQUENCE_FPS, IMAGE_EXTENSIONS, AudioTrack, PathLike, VideoClip, VideoInfo, VideoReadError,
                   to_fraction)
from .timing import ConstantRateGrid, constant_rate_grid, read_timeline


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


def _decode_image(path: str, progress: Optional["_Progress"] = None) -> np.ndarray:
    with _ffmpeg_log() as logs:
        try:
            with av.open(path, mode="r") as container:
                for frame in container.decode(video=0):
                    if progress is not None:
                        progress.note_alpha(frame)
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


def holds_frames(path: PathLike) -> bool:
    """Whether a video file's stream holds a frame that decodes, found by decoding packets up to the
    first frame (milliseconds for a sound file), so a stream that holds none is refused before any
    work: a header can declare frames the file does not have."""
    container = _open_input(os.fspath(path))
    try:
        stream = container.streams.video[0]
        with _ffmpeg_log():
            packets = container.demux(stream)  # the last packet is empty: it flushes the decoder
            while True:
                try:
                    packet = next(packets, None)
                except av.FFmpegError:  # the file ends inside a packet: nothing more to read
                    return False
                if packet is None:
                    return False
                try:
                    if stream.decode(packet):
                        return True
                except av.FFmpegError:  # a damaged packet: the reader skips it too
                    continue
    finally:
        container.close()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _image_size(file: str) -> tuple[int, int]:
    """An image's ``(width, height)`` from its header: read directly for PNG (a folder of thousands is
    checked in a moment), through FFmpeg's probe for the other formats."""
    with open(file, "rb") as fh:
        head = fh.read(24)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    with av.open(file, mode="r") as container:
        cc = container.streams.video[0].codec_context
        return int(cc.width), int(cc.height)


def sequence_size_problem(path: PathLike, start: int = 0, count: int = 0, every: int = 1) -> Optional[str]:
    """For an image folder or glob: why its selected images cannot form one clip (sizes that differ,
    an image that does not open), from each image's header; None when they can (or ``path`` is a video)."""
    files = _image_sequence(os.fspath(path))
    if files is None:
        return None
    sel, size = _Selection(start, count, every), None
    for index, file in enumerate(files):
        if sel.wants(index):
            try:
                found = _image_size(file)
            except (av.FFmpegError, IndexError, OSError) as err:
                return f"cannot read image {file}: {err}"
            if size is None:
                size, first = found, file
            elif found != size:
                return (f"image {os.path.basename(file)} is {found[0]}x{found[1]} but {os.path.basename(first)} is "
                        f"{size[0]}x{size[1]} (a clip's frames must share one size)")
        if sel.done_after(index):
            break
    return None


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
    slots: int = 0  # output frames seen so far (on the constant-rate grid)
    frames_in_file: Optional[int] = None  # known once the end was reached
    transparent: bool = False  # a decoded frame had pixels that are not opaque (the alpha is dropped)
    resampled: bool = False  # put on a constant-rate grid: its nominal rate says nothing about its frame count

    def note_alpha(self, frame: av.VideoFrame) -> None:
        """Remember whether ``frame`` has transparent pixels, which converting to RGB drops."""
        if self.transparent:
            return
        fmt = frame.format
        if fmt.has_palette or any(component.is_alpha for component in fmt.components):
            self.transparent = bool(frame.to_ndarray(format="rgba")[..., 3].min() < 255)


def _say_what_was_lost(path: str, info: Optional[VideoInfo], progress: _Progress) -> None:
    """Warn (once per read) about frames the header promised but the file did not hold, and dropped alpha."""
    # frames decoded from the file (not output frames: a variable-rate file is resampled onto a grid)
    total = progress.decoded if progress.frames_in_file is not None else None
    if info is not None and total is not None and not info.is_image_sequence:
        if info.frame_count and total < info.frame_count:
            warnings.warn(f"{path} declares {info.frame_count} frames but only {total} could be decoded (the file is "
                          f"cut short or damaged); continuing with what was decoded", RuntimeWarning, stacklevel=3)
        elif (not info.frame_count and not progress.resampled and info.estimated_frames
              and total < 0.9 * info.estimated_frames - 1):
            warnings.warn(f"{path} lasts {info.duration:.2f} s (about {info.estimated_frames} frames) but only {total} "
                          f"could be decoded (the file is cut short or damaged); continuing with those {total}",
                          RuntimeWarning, stacklevel=3)
    if progress.transparent:
        warnings.warn(f"{path} has transparent pixels; MGLD-VSR works on RGB, so the alpha channel is dropped "
                      f"(transparent areas keep their stored colour)", RuntimeWarning, stacklevel=3)


class _Demuxer:
    """A container's video frames, decoded in presentation order, with its audio collected as the packets go by."""

    def __init__(self, container, audio: Optional[_AudioCollector], progress: _Progress):
        self.video_stream = container.streams.video[0]
        self.video_stream.thread_type = "AUTO"
        self.audio = audio
        self.audio_stream = container.streams.audio[0] if audio is not None and container.streams.audio else None
        streams = [self.video_stream] + ([self.audio_stream] if self.audio_stream is not None else [])
        self.packets = container.demux(*streams)
        self.progress = progress

    def _decode(self, stream, packet):
        try:
            return stream.decode(packet)
        except av.FFmpegError as err:  # a damaged packet: keep going, report if nothing decodes
            if self.progress.decode_error is None:
                self.progress.decode_error = str(err)
            return []

    def video(self) -> Iterator[av.VideoFrame]:
        for packet in self.packets:
            if packet.stream.index == self.video_stream.index:
                for frame in self._decode(self.video_stream, packet):
                    self.progress.decoded += 1
                    yield frame
            elif self.audio_stream is not None and packet.stream.index == self.audio_stream.index:
                for frame in self._decode(self.audio_stream, packet):
                    self.audio.add(frame)

    def audio_until(self, t: Fraction) -> None:
        """After the last wanted frame: demux on (audio only) until the collected audio reaches ``t``."""
        if self.audio_stream is None:
            return
        while not _audio_covers(self.audio, t):
            packet = next(self.packets, None)
            if packet is None:
                return
            if packet.stream.index == self.audio_stream.index:
                for frame in self._decode(self.audio_stream, packet):
                    self.audio.add(frame)


def _frame_pts(frame: av.VideoFrame, time_base: Fraction) -> Optional[int]:
    """A decoded frame's timestamp in ``time_base`` units (None when the decoder gives none)."""
    if frame.pts is None:
        return None
    if not frame.time_base or Fraction(frame.time_base) == time_base:
        return int(frame.pts)
    return round(Fraction(frame.pts) * Fraction(frame.time_base) / time_base)


def _grid_slots(frames: Iterator[av.VideoFrame], grid: ConstantRateGrid) -> Iterator[tuple[int, av.VideoFrame, Fraction]]:
    """``(k, frame, time)`` for every output frame ``k`` of the constant-rate grid, in order.

    Output frame ``k`` shows the decoded frame at the source time the grid chose for it; it is
    yielded as soon as that frame is decoded, so nothing past the last wanted frame is decoded. A
    frame that does not decode (damaged packet) is stood in for by the frame before it."""
    timeline = grid.timeline
    position = {p: i for i, p in enumerate(timeline.pts)}
    wanted = [position[p] for p in grid.source_pts]  # source frame index of every output frame
    k, index, previous = 0, -1, None
    for frame in frames:
        pts = _frame_pts(frame, timeline.time_base)
        if pts is None:
            index += 1
        else:
            index = position.get(pts, bisect.bisect_left(timeline.pts, pts))
        while k < len(wanted) and wanted[k] <= index:
            yield k, frame if wanted[k] == index or previous is None else previous, grid.slot_time(k)
            k += 1
        previous = frame
    while k < len(wanted) and previous is not None:  # frames at the end that did not decode
        yield k, previous, grid.slot_time(k)
        k += 1


def _decoded_slots(frames: Iterator[av.VideoFrame], start_time: Fraction, fps: Fraction):
    """``(k, frame, time)`` with one output frame per decoded frame (files whose packets carry no timestamps)."""
    for k, frame in enumerate(frames):
        if frame.pts is not None and frame.time_base:
            yield k, frame, Fraction(frame.pts) * frame.time_base
        else:
            yield k, frame, start_time + Fraction(k) / fps


def _decode_container(container, sel: _Selection, audio: Optional[_AudioCollector], progress: _Progress,
                      grid: Optional[ConstantRateGrid], fps: Fraction):
    """Yield the selected output frames as RGB arrays; stop demuxing once the last wanted frame is out and
    (when audio is collected) the audio reaches the end of the selected span."""
    demux = _Demuxer(container, audio, progress)
    if grid is not None:
        slots = _grid_slots(demux.video(), grid)
    else:
        vs = demux.video_stream
        start_time = Fraction(vs.start_time) * vs.time_base if vs.start_time is not None and vs.time_base else Fraction(0)
        slots = _decoded_slots(demux.video(), start_time, fps)
    shown = None  # (frame, rgb) of the last output frame, reused when the next one repeats it
    for k, frame, t in slots:
        progress.slots = k + 1
        if sel.wants(k):
            if progress.first_time is None:
                progress.first_time = t
            progress.selected += 1
            repeat = shown is not None and shown[0] is frame
            if not repeat:
                progress.note_alpha(frame)
            shown = (frame, shown[1].copy() if repeat else _rgb(frame))
            yield shown[1]
        elif k < sel.start and audio is not None:
            audio.drop_before(t)
        if sel.done_after(k):
            demux.audio_until(progress.first_time + Fraction(progress.selected * sel.every) / fps)
            return
    progress.frames_in_file = progress.slots


def _audio_covers(audio: Optional[_AudioCollector], t: Optional[Fraction]) -> bool:
    end = audio.end_time() if audio is not None else None
    return end is not None and t is not None and end >= t


def _read_sequence(path: str, files: list[str], sel: _Selection, progress: _Progress):
    size = None
    for index, file in enumerate(files):
        if sel.wants(index):
            rgb = _decode_image(file, progress)
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
    total = progress.frames_in_file  # frames on the grid the selection indexes
    if total:
        return VideoReadError(
            f"start={sel.start} is past the end of {path}: it has {total} frames (valid start: 0..{total - 1})"
        )
    detail = f" (decoder said: {progress.decode_error})" if progress.decode_error else ""
    return VideoReadError(f"no frames could be decoded from {path}{detail}")


def read_video(path: PathLike, start: int = 0, count: int = 0, every: int = 1, force_fps: float = 0.0) -> VideoClip:
    """Decode frames ``start, start+every, ...`` (``count`` of them, 0 = to the end) of a video file,
    a single image, an image folder or a glob pattern (``frames/*.png``; natural sort order).

    Frames are indexed on a constant-rate grid: a variable-frame-rate file is resampled by its
    timestamps (see :mod:`.timing`; ``clip.timing`` then says how), so the clip lasts as long as the
    file's video and its audio stays in sync. Decoding stops after the last wanted frame (frames
    before ``start`` are decoded but not converted; no seeking, so frame indices are exact).
    ``fps`` of the result is the grid rate / ``every``, or ``force_fps`` when > 0 (audio is never
    retimed: it is the source audio under the selected frames). Image sequences run at
    :data:`DEFAULT_SEQUENCE_FPS` unless ``force_fps`` is given and have no audio.
    """
    _check_range(start, count, every, force_fps)
    path = os.fspath(path)
    sel = _Selection(int(start), int(count), int(every))
    progress = _Progress()
    files = _image_sequence(path)
    collector, grid = None, None
    if files is not None:
        first = _decode_image(files[0])
        info = _sequence_info(path, files, first)
        rate = info.fps
        frames = list(_read_sequence(path, files, sel, progress))
    else:
        container = _open_input(path)
        try:
            info = _container_info(container, path)
            grid = _constant_rate_grid(path, info.fps)
            rate = grid.rate if grid is not None else info.fps
            progress.resampled = grid is not None and grid.resampled
            collector = _AudioCollector() if info.has_audio else None
            with _ffmpeg_log() as logs:
                try:
                    frames = list(_decode_container(container, sel, collector, progress, grid, rate))
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
    _say_what_was_lost(path, info, progress)
    audio = None
    if collector is not None and progress.first_time is not None:
        span = Fraction(len(frames) * sel.every) / rate
        audio = collector.extract(progress.first_time, progress.first_time + span)
    fps = to_fraction(force_fps) if force_fps else rate / sel.every
    return VideoClip(
        frames=torch.from_numpy(np.stack(frames)),
        fps=fps,
        audio=audio,
        source=info,
        start=sel.start,
        every=sel.every,
        decoded_frames=progress.decoded,
        timing=grid if grid is not None and grid.resampled else None,
    )


def _constant_rate_grid(path: str, nominal: Fraction) -> Optional[ConstantRateGrid]:
    """The grid a file's frames are loaded onto, from its packet timestamps (a separate pass that decodes
    nothing); None when its packets carry no timestamps (frames are then taken one per decoded frame)."""
    try:
        with av.open(path, mode="r") as container:
            timeline = read_timeline(container)
    except av.FFmpegError:  # the decoding pass reports what is wrong with the file
        return None
    return constant_rate_grid(timeline, nominal) if timeline is not None else None


def iter_video(path: PathLike, start: int = 0, count: int = 0, every: int = 1) -> Iterator[torch.Tensor]:
    """Stream the selected frames one by one as ``[H, W, 3]`` uint8 tensors (no audio), for clips too
    long to hold in memory. Same selection rules and errors as :func:`read_video`."""
    _check_range(start, count, every, 0.0)
    path = os.fspath(path)
    sel = _Selection(int(start), int(count), int(every))
    progress = _Progress()
    files = _image_sequence(path)
    info = None
    if files is not None:
        source = _read_sequence(path, files, sel, progress)
        for rgb in source:
            yield torch.from_numpy(rgb)
    else:
        container = _open_input(path)
        try:
            info = _container_info(container, path)
            nominal = _stream_fps(container.streams.video[0]) or DEFAULT_SEQUENCE_FPS
            grid = _constant_rate_grid(path, nominal)
            rate = grid.rate if grid is not None else nominal
            progress.resampled = grid is not None and grid.resampled
            try:
                for rgb in _decode_container(container, sel, None, progress, grid, rate):
                    yield torch.from_numpy(rgb)
            except av.FFmpegError as err:
                raise VideoReadError(f"error while decoding {path}: {err}") from None
        finally:
            container.close()
    if progress.selected == 0:
        raise _empty_result_error(path, sel, progress)
    _say_what_was_lost(path, info, progress)


