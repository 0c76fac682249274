"""PyAV details shared by reading and writing: colour conversion and FFmpeg error text."""
from __future__ import annotations

import contextlib

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace


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


def _to_av_frame(rgb: np.ndarray, pixel_format: str) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if pixel_format == "rgb24":
        return frame
    if av.VideoFormat(pixel_format).is_rgb or pixel_format.startswith(("gray", "pal", "mono")):
        return frame.reformat(format=pixel_format, interpolation=_SWS_FLAGS)
    full_range = pixel_format.startswith("yuvj")  # the JPEG-range variants
    return frame.reformat(format=pixel_format, dst_colorspace=Colorspace.ITU709,
                          dst_color_range=ColorRange.JPEG if full_range else ColorRange.MPEG, interpolation=_SWS_FLAGS)


