"""Encoding frames (and audio) to H.264/H.265/ProRes/FFV1 or PNG folders, atomically."""
from __future__ import annotations

import dataclasses
import errno
import math
import os
import pathlib
import secrets
import shutil
import warnings
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any, Callable, Optional

import av
import numpy as np
import torch
from av.video.reformatter import ColorRange, Colorspace

from ..defaults import CRF
from .av_helpers import _ffmpeg_log, _ffmpeg_said, _to_av_frame
from .data import MIN_H265_WIDTH, PNG_SEQUENCE_NAME, AudioTrack, PathLike, VideoWriteError, to_fraction
from .host_audio import audio_from_comfy


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


def default_suffix(codec: str) -> str:
    """The extension ``codec`` is saved with when a name has none (``""`` for a png folder)."""
    return _codec_spec(codec)[1].default_suffix


def encoder_pixel_formats(codec: str) -> list[str]:
    """Pixel formats the encoder of ``codec`` accepts (empty when FFmpeg does not say)."""
    _, spec = _codec_spec(codec)
    return [f.name for f in (av.Codec(spec.encoder, "w").video_formats or [])]


def output_target(path: PathLike, codec: str) -> pathlib.Path:
    """The path ``write_video`` writes for ``path`` and ``codec``: the codec's suffix added when the
    name has none. Raises ValueError when the suffix names a container the codec is not written to
    (``x.avi`` with h264 would otherwise hold MP4 data) and VideoWriteError when a folder is in the way."""
    key, spec = _codec_spec(codec)
    target = pathlib.Path(os.fspath(path))
    if key == "png":
        if target.suffix.lower() in _MUXERS or target.suffix.lower() in (".avi", ".webm", ".gif"):
            raise ValueError(f"png writes a folder of numbered frames, not a {target.suffix} file: give a folder "
                             f"name without a file extension, or choose a video codec")
        if target.exists() and not target.is_dir():
            raise VideoWriteError(f"cannot write a png sequence to {target}: a file with that name exists")
        return target
    suffix = target.suffix.lower()
    if not suffix:
        target = target.with_name(target.name + spec.default_suffix)
    elif suffix not in spec.suffixes:
        raise ValueError(f"{key} cannot be written to a {suffix} file; use one of {', '.join(spec.suffixes)} "
                         f"(the file extension must match the container that is written)")
    if target.is_dir():
        raise VideoWriteError(f"cannot write {target}: a folder with that name exists")
    return target


#: Hex digits of the random part of a temporary name (``.name.partial-1a2b3c4d.mp4``).
_TOKEN_BYTES = 4


def _temporary(target: pathlib.Path, kind: str, token: str, folder: bool = False) -> pathlib.Path:
    """The hidden name of a video file being written (``kind`` "partial": ``.name.partial-XXXX.mp4``), or of
    a png folder being written ("partial") or replaced ("old"): ``.name.partial-XXXX``."""
    if folder:
        return target.with_name(f".{target.name}.{kind}-{token}")
    return target.with_name(f".{target.stem}.{kind}-{token}{target.suffix.lower()}")


def name_problem(target: PathLike) -> Optional[str]:
    """Why the file system cannot hold ``target``'s name and the temporary names written beside it (the
    longest is ``.name.partial-XXXXXXXX``, 18 characters longer), or None when it can. Found from the
    nearest existing folder's own limit (``NAME_MAX``, 255 bytes on most file systems), before any work."""
    target = pathlib.Path(os.fspath(target))
    folder = target.parent
    while not os.path.exists(folder) and folder != folder.parent:  # (False for a name too long to look up)
        folder = folder.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not known here (e.g. Windows): the common limit
        limit = 255
    token = "0" * 2 * _TOKEN_BYTES
    longest = max(len(os.fsencode(_temporary(target, kind, token, is_folder).name)) for kind, is_folder in
                  (("partial", False), ("partial", True), ("old", True)))
    for part in target.parts[:-1]:
        if len(os.fsencode(part)) > limit:
            return (f"the folder name {part[:20]}... is {len(os.fsencode(part))} bytes long, more than the {limit} "
                    f"this file system allows")
    if longest > limit:
        room = limit - (longest - len(os.fsencode(target.name)))
        return (f"the name {target.name[:20]}... is {len(os.fsencode(target.name))} bytes long; with the temporary "
                f"name written beside it while saving it passes the {limit} bytes this file system allows: use a "
                f"name of at most {room} bytes")
    return None


def padding_note(width: int, height: int, pixel_format: str) -> Optional[str]:
    """What happens to a ``width x height`` picture in ``pixel_format`` if its chroma subsampling
    cannot hold that size (4:2:0 needs even sides, 4:2:2 an even width), or None if it can.

    The picture is padded, never cropped: no pixel of the result is lost, and this says so.
    """
    sub_w, sub_h = _subsampling(pixel_format)
    enc_w, enc_h = -(-width // sub_w) * sub_w, -(-height // sub_h) * sub_h
    grown = [side for side, changed in (("column", enc_w != width), ("row", enc_h != height)) if changed]
    if not grown:
        return None
    return (f"{width}x{height} frames are written as {enc_w}x{enc_h}: {pixel_format} needs "
            f"{'even sizes' if sub_h > 1 else 'an even width'}, so the last {' and '.join(grown)} "
            f"{'are' if len(grown) > 1 else 'is'} repeated once; choose a 4:4:4 pixel_format (yuv444p, "
            f"yuv444p10le) or the ffv1 or png codec to keep the exact size")


def _subsampling(pixel_format: str) -> tuple[int, int]:
    """Horizontal/vertical chroma subsampling factors of a pixel format (1 = none)."""
    probe = av.VideoFormat(pixel_format, 64, 64)
    widths = [c.width for c in probe.components]
    heights = [c.height for c in probe.components]
    return 64 // min(widths), 64 // min(heights)


def _as_uint8_frame(frame: Any, index: int, notes: Optional[set] = None) -> np.ndarray:
    """One frame as a contiguous ``[H, W, 3]`` uint8 array. Float input is read as [0, 1]; grey
    ``[H, W]``/``[H, W, 1]`` is repeated to RGB; a 4th (alpha) channel is dropped, which is said once
    per write (``notes`` records what was said)."""
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
        if notes is not None and "alpha" not in notes:
            notes.add("alpha")
            warnings.warn("the frames have an alpha channel; video files here hold RGB only, so it is dropped",
                          RuntimeWarning, stacklevel=4)
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
    index, notes = 0, set()
    for item in items:
        if isinstance(item, (torch.Tensor, np.ndarray)) and item.ndim == 4:
            for sub in item:
                yield _as_uint8_frame(sub, index, notes)
                index += 1
        else:
            yield _as_uint8_frame(item, index, notes)
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


def write_video(
    path: PathLike,
    frames: Any,
    fps: Any,
    audio: Any = None,
    codec: str = "h264",
    crf: int = CRF,
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
        odd sizes are padded by repeating the last row/column, so the file is one pixel larger there
        (a RuntimeWarning says so: :func:`padding_note`); yuv444p, ffv1 and png keep any size.
    on_frame: called with the number of frames written so far (progress reporting).

    Atomic: the output is written to ``.<name>.partial-<random><suffix>`` next to the target (the
    same folder, so the same file system) and renamed over it only when complete; on any error or
    interrupt the partial file is deleted and an existing target is left untouched. A full disk or
    an unwritable folder raises :class:`VideoWriteError` saying so. Missing parent folders are created.
    ``path``'s extension must name a container the codec is written to (:func:`output_target`).
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
    target = output_target(path, key)
    suffix = target.suffix.lower() if key != "png" else ""
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
    if (enc_w, enc_h) != (width, height):
        warnings.warn(padding_note(width, height, pixel_format), RuntimeWarning, stacklevel=2)
    temp = _temporary(target, "partial", secrets.token_hex(_TOKEN_BYTES))
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
                raise VideoWriteError(f"writing {target} failed: {_ffmpeg_said(err, logs)}{_disk_hint(err, target)}") from None
        os.replace(temp, target)
    except OSError as err:
        _close_quietly(container)
        _remove(temp)
        if isinstance(err, VideoWriteError):
            raise
        raise VideoWriteError(f"writing {target} failed: {err.strerror or err}{_disk_hint(err, target)}") from None
    except BaseException:  # interrupts and bugs: no partial file either
        _close_quietly(container)
        _remove(temp)
        raise
    return str(target)


def _close_quietly(container) -> None:
    if container is not None:
        try:
            container.close()
        except Exception:  # closing a broken file fails again (a full disk): it is removed anyway
            pass


#: What an OS error while writing means for the user, and what to do (errno -> words).
_DISK_ERRORS = {
    errno.ENOSPC: "the disk is full; free some space there or write to another disk",
    errno.EDQUOT: "the disk quota is used up; free some space or write elsewhere",
    errno.EFBIG: "the file grew past the largest file this file system (or a size limit) allows; write elsewhere",
    errno.EROFS: "the folder is on a read-only file system; write elsewhere",
    errno.EACCES: "permission denied; write to a folder you can write to",
    errno.EPERM: "permission denied; write to a folder you can write to",
}


def _disk_hint(err: BaseException, target: pathlib.Path) -> str:
    """``" (why; fix; no file left)"`` for errors of the disk rather than of the encoder, else ``""``."""
    code = getattr(err, "errno", None)
    if code is None or code < 0:  # PyAV reports FFmpeg's AVERROR(e) as -e
        code = -code if isinstance(code, int) else None
    words = _DISK_ERRORS.get(code)
    return f" ({words}; nothing was written under {target.name})" if words else ""


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
    token = secrets.token_hex(_TOKEN_BYTES)
    temp = _temporary(target, "partial", token, folder=True)
    aside = _temporary(target, "old", token, folder=True)
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
    except OSError as err:
        _remove(temp)
        if isinstance(err, VideoWriteError):
            raise
        raise VideoWriteError(f"writing {target} failed: {err.strerror or err}{_disk_hint(err, target)}") from None
    except BaseException:
        _remove(temp)
        raise
    return str(target)
