"""Video file nodes: load an LR video (frames, exact fps, audio) and save the result (codec, quality, audio)."""
from __future__ import annotations

import hashlib
import os
import re

import torch

from . import host
from ..pipeline import video_io
from ..pipeline.defaults import CRF
from ..pipeline.hooks import ProgressCounter
from .common import VIDEO, image_to_frames
from .validation import comfy_verdict

SAMPLE_CLIP = "sample_lr.mp4"
CODECS = ["h264", "h265", "prores", "ffv1", "png"]
PIXEL_FORMATS = ["auto", "yuv420p", "yuv420p10le", "yuv444p", "yuv444p10le", "yuv422p10le", "rgb24"]
#: File suffix each codec is saved with (png: a folder of numbered frames).
SUFFIXES = {"h264": ".mp4", "h265": ".mp4", "prores": ".mov", "ffv1": ".mkv", "png": ""}


class MGLDLoadVideo:
    DESCRIPTION = ("Loads an LR video (mp4, mkv, mov, webm, avi, gif, or a folder/glob of images) with its exact frame "
                   "rate and audio, or takes a core VIDEO (Load Video, Create Video, ...). Only the requested frames "
                   "are decoded. A variable-frame-rate file is resampled to a constant rate by its timestamps (frames "
                   "repeated or dropped; the console says so), so the video keeps its length and the audio stays in "
                   "sync.")
    CATEGORY = VIDEO
    RETURN_TYPES = ("IMAGE", "FLOAT", "AUDIO", "INT")
    RETURN_NAMES = ("frames", "fps", "audio", "frame_count")
    OUTPUT_TOOLTIPS = ("The selected frames (RGB).", "Frame rate of the selected frames (source rate / every_nth).",
                       "The audio under the selected frames (None when the file has none).", "Number of frames loaded.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": (sorted(set(host.list_input_videos()) | {SAMPLE_CLIP}), {"video_upload": True,
                      "tooltip": "A video in ComfyUI's input folder (upload one with the button), or a path to a file, "
                                 "folder of images or glob pattern."}),
            "start_frame": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip": "First frame to load (0-based)."}),
            "frame_count": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip": "How many frames to load; 0 = to the end."}),
            "every_nth": ("INT", {"default": 1, "min": 1, "max": 1000, "tooltip": "Keep every n-th frame (fps is divided by n)."}),
            "force_fps": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001,
                                    "tooltip": "Override the frame rate (0 = keep the file's exact rate; a variable-rate "
                                               "file's is the constant rate it is resampled to at load)."}),
        }, "optional": {
            "video_input": ("VIDEO", {"tooltip": "A core VIDEO (from Load Video, Create Video, ...). When connected it "
                                                 "is used instead of the file above; start_frame, frame_count, every_nth "
                                                 "and force_fps apply to it as well."}),
        }}

    @staticmethod
    def _resolve(video):
        path = host.input_path(video)
        if not os.path.exists(path) and (os.path.isabs(video) or any(c in video for c in "*?[")):
            path = video
        if not os.path.exists(path) and video == SAMPLE_CLIP:  # the shipped sample, until copied to input/
            path = os.path.join(host.PACK_ROOT, "examples", SAMPLE_CLIP)
        return path

    @classmethod
    def IS_CHANGED(cls, video, **_):
        """Re-run only when the file changes (ComfyUI caches the result otherwise)."""
        path = cls._resolve(video)
        if not os.path.isfile(path):
            return video
        stat = os.stat(path)
        return hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, start_frame=None, frame_count=None, every_nth=None, force_fps=None):
        return comfy_verdict(cls, start_frame=start_frame, frame_count=frame_count, every_nth=every_nth,
                             force_fps=force_fps)

    def load(self, video, start_frame, frame_count, every_nth, force_fps, video_input=None):
        if video_input is not None:
            return _load_core_video(video_input, start_frame, frame_count, every_nth, force_fps)
        path = self._resolve(video)
        check_load_fits(video_io.probe_video(path), start_frame, frame_count, every_nth)  # before decoding anything
        clip = video_io.read_video(path, start=start_frame, count=frame_count, every=every_nth, force_fps=force_fps)
        if clip.timing is not None:  # the sampler needs evenly spaced frames: say how the file's timing was kept
            host.notify(f"MGLD Load LR Video: {os.path.basename(path)}: {clip.timing.describe()}; loaded "
                        f"{clip.frames.shape[0]} frames at {float(clip.fps):.3f} fps")
        frames = clip.frames.float() / 255.0
        return frames, float(clip.fps), video_io.audio_to_comfy(clip.audio), int(frames.shape[0])


def selected_frames(info, start: int, count: int, every: int) -> int:
    """How many frames the loader's selection takes from a file, by its header (1 when it does not say)."""
    available = info.estimated_frames
    frames = -(-max(available - start, 0) // every) if available else 1
    return min(frames, count) if count else frames


def check_load_fits(info, start: int, count: int, every: int) -> None:
    """Refuse, from the file's header, a selection whose decoded frames cannot fit in RAM."""
    from ..pipeline.memory import footprint

    frames = selected_frames(info, start, count, every)
    need = footprint.load_bytes(frames, info.height, info.width)
    have = footprint.host_available_bytes()
    if have is not None and need > have:
        raise footprint.NotEnoughMemory(
            f"MGLD Load LR Video: {frames} frames of {info.width}x{info.height} need about {need / 1e9:.1f} GB of RAM to "
            f"load, have {have / 1e9:.1f} GB available; load fewer frames (frame_count, every_nth) or a smaller video")


def _load_core_video(video, start: int, count: int, every: int, force_fps: float):
    """The loader's outputs from a core VIDEO: read from its file when it has one (exact rate, only the
    requested frames decoded), else selected from its frames, with the audio under the selected frames."""
    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        clip = video_io.read_video(source, start=start, count=count, every=every, force_fps=force_fps)
        frames = clip.frames.float() / 255.0
        return frames, float(clip.fps), video_io.audio_to_comfy(clip.audio), int(frames.shape[0])
    parts = video.get_components()
    images, rate = parts.images, video_io.to_fraction(parts.frame_rate)
    picked = list(range(start, images.shape[0], every))[: count or None]
    if not picked:
        raise ValueError(f"start_frame {start} is past the end of the VIDEO input ({images.shape[0]} frames)")
    frames = images[picked].float()
    audio = video_io.audio_from_comfy(parts.audio)
    if audio is not None:  # the audio that plays under the selected frames, as for files
        first = int(start / rate * audio.sample_rate)
        last = int((start + len(picked) * every) / rate * audio.sample_rate)
        audio = video_io.AudioTrack(audio.waveform[:, first:last], audio.sample_rate)
    fps = video_io.to_fraction(force_fps) if force_fps else rate / every
    return frames, float(fps), video_io.audio_to_comfy(audio), int(frames.shape[0])


def _uint8_frames(images: torch.Tensor):
    """An IMAGE batch as 8-bit frames converted one at a time, so saving never holds a second copy of the clip.

    The batch is checked at once (shape, channels, not empty); each frame is then converted exactly as a
    whole batch would be (float, clamped to [0, 1], scaled and rounded).
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    image_to_frames(images[:1])  # raises now, before any file is opened, if the batch is unusable

    def convert():
        for index in range(images.shape[0]):
            frame = image_to_frames(images[index:index + 1], say_alpha=False)[0]
            yield (frame * 255.0).round().to(torch.uint8)

    return convert()


def _next_output_path(prefix: str, suffix: str, output_path: str | None = None) -> tuple[str, str, str]:
    """``(full path, subfolder, filename)`` for ``prefix_00001.suffix`` in the output folder, never overwriting.

    ``output_path`` (the headless runner's ``--output``) replaces the output folder: a file name is
    used as it is (its extension must suit the codec), an existing folder (or a name ending in a
    slash) receives ``prefix``'s numbered name.
    """
    out_root = host.output_dir()
    prefix = prefix.replace("\\", "/").strip("/") or "MGLD"
    if output_path:
        if not (os.path.isdir(output_path) or output_path.endswith(("/", os.sep))):
            return os.path.abspath(output_path), "", os.path.basename(output_path)
        out_root, prefix = output_path, os.path.basename(prefix)
    subfolder, base = os.path.split(prefix)
    folder = os.path.abspath(os.path.join(out_root, subfolder))
    if os.path.commonpath([folder, os.path.abspath(out_root)]) != os.path.abspath(out_root):
        raise ValueError(f"filename_prefix {prefix!r} points outside the output folder")
    os.makedirs(folder, exist_ok=True)
    pattern = re.compile(re.escape(base) + r"_(\d{5})")
    taken = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
    name = f"{base}_{max(taken, default=0) + 1:05d}{suffix}"
    return os.path.join(folder, name), subfolder, name


class MGLDSaveVideo:
    DESCRIPTION = ("Saves frames as a video in ComfyUI's output folder with the exact frame rate and the audio muxed "
                   "and trimmed to the video. Written to a temporary name and renamed when complete. Any frame size is "
                   "accepted (4:2:0 formats need even sides: an odd side is padded by one edge pixel).")
    CATEGORY = VIDEO
    RETURN_TYPES = ("STRING", "VIDEO")
    RETURN_NAMES = ("path", "video")
    OUTPUT_TOOLTIPS = ("Path of the written file (or folder, for png).",
                       "The saved video as a core VIDEO, for core video nodes (for png: the frames themselves).")
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "Frames to encode."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "forceInput": True,
                                  "tooltip": "Frame rate (connect the loader's fps; 29.97 etc. are kept exact)."}),
                "filename_prefix": ("STRING", {"default": "MGLD/mgld_vsr", "tooltip": "Output name; folders allowed."}),
                "codec": (CODECS, {"default": "h264", "tooltip": "h264/h265 (mp4), prores (mov), ffv1 lossless (mkv), "
                                                                  "or a png sequence folder."}),
                "crf": ("INT", {"default": CRF, "min": 0, "max": 51, "tooltip": "h264/h265 quality: lower is better (0 = lossless)."}),
                "pixel_format": (PIXEL_FORMATS, {"default": "auto", "tooltip": "auto: yuv420p (h264/h265), yuv422p10le "
                                                                               "(prores), exact RGB (ffv1). 10le = 10-bit."}),
            },
            "optional": {"audio": ("AUDIO", {"tooltip": "Audio to mux (trimmed to the video length)."})},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix=None, codec=None, crf=None, pixel_format=None):
        return comfy_verdict(cls, filename_prefix=filename_prefix, codec=codec, crf=crf, pixel_format=pixel_format)

    def save(self, frames, fps, filename_prefix, codec, crf, pixel_format, audio=None, output_path=None):
        """``output_path``: where the headless runner's ``--output`` puts the file (never given by ComfyUI)."""
        uint8 = _uint8_frames(frames)
        suffix = SUFFIXES[codec]
        path, subfolder, name = _next_output_path(filename_prefix, suffix, output_path)
        progress = ProgressCounter(host.hooks(), 1 if frames.dim() == 3 else int(frames.shape[0]), "encoding")
        # Cancel stops the encode between frames; the writer then removes its temporary file.
        written = video_io.write_video(path, uint8, fps, audio=video_io.audio_from_comfy(audio), codec=codec, crf=crf,
                                       pixel_format=None if pixel_format == "auto" else pixel_format,
                                       on_frame=lambda count: progress.step())
        preview = [{"filename": name, "subfolder": subfolder, "type": "output", "format": f"video/{suffix.lstrip('.')}"}]
        core = host.video_from_frames(frames, fps, audio) if codec == "png" else host.video_from_file(written)
        return {"ui": {"images": preview if codec != "png" else [], "animated": (True,)}, "result": (written, core)}
