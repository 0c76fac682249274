"""Video files in and out without a host: decode to ``[N,H,W,3]`` uint8 RGB tensors, encode them back.

Everything goes through PyAV (the ``av`` package, which ComfyUI already depends on):

* :func:`probe_video` reads a file's header (size, exact frame rate, frame count, audio layout);
* :func:`read_video` decodes a frame range (``start``/``count``/``every``) plus the audio that plays
  during that range; :func:`iter_video` streams frames one at a time for clips too long for memory;
* :func:`write_video` encodes frames (a tensor or any iterator of frames) to H.264, H.265, ProRes,
  FFV1 or a numbered PNG folder, muxing audio when given. Writes are atomic: the result appears
  under its final name only once it is complete;
* :func:`audio_to_comfy` / :func:`audio_from_comfy` convert between :class:`AudioTrack` and the
  host's ``{"waveform": [B, C, S], "sample_rate": int}`` dictionaries; :class:`StandInVideo` (made by
  :func:`FileVideo` or :func:`FrameVideo`) stands in for the host's VIDEO values when it is absent.

Colour: YUV output is converted with the BT.709 matrix in limited range and tagged as such; reading
converts with whatever matrix/range the file is tagged with (FFmpeg's default when untagged), so a
write/read round trip uses the same matrix in both directions. Both directions use swscale's
accurate-rounding, full-chroma path (see ``_SWS_FLAGS``).
"""
from .host_audio import audio_from_comfy, audio_to_comfy
from .reader import holds_frames, iter_video, probe_video, read_video, sequence_size_problem
from .data import (DEFAULT_SEQUENCE_FPS, IMAGE_EXTENSIONS, MIN_H265_WIDTH, PNG_SEQUENCE_NAME, AudioTrack, VideoClip,
                   VideoInfo, VideoReadError, VideoWriteError, to_fraction)
from .standin import FileVideo, FrameVideo, StandInVideo, VideoParts
from .writer import write_video

__all__ = ["AudioTrack", "FileVideo", "FrameVideo", "StandInVideo", "VideoParts", "VideoClip", "VideoInfo",
           "VideoReadError", "VideoWriteError", "audio_from_comfy", "audio_to_comfy", "holds_frames", "iter_video",
           "probe_video", "sequence_size_problem",
           "read_video", "to_fraction", "write_video", "DEFAULT_SEQUENCE_FPS", "IMAGE_EXTENSIONS", "MIN_H265_WIDTH",
           "PNG_SEQUENCE_NAME"]
