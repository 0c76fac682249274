"""The one place that talks to ComfyUI: model folders, devices, progress, previews, interruption.

Everything here falls back to plain behaviour when ComfyUI is absent (tests, the headless
runner), so models, pipeline and node classes never import ComfyUI themselves.
"""
from __future__ import annotations

import logging
import os
import sys

import torch

PACK_ROOT = os.path.dirname(os.path.abspath(__file__))
MODEL_FOLDER = "mgld"
MODEL_EXTENSIONS = {".ckpt", ".pth", ".pt", ".safetensors"}
VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


def _comfy(name: str):
    """A ComfyUI module if we run inside ComfyUI, else None (never imports it when absent)."""
    try:
        if name == "folder_paths":
            import folder_paths  # type: ignore

            return folder_paths
        if name == "model_management":
            import comfy.model_management  # type: ignore

            return comfy.model_management
        if name == "utils":
            import comfy.utils  # type: ignore

            return comfy.utils
    except ImportError:
        return None
    return None


def _standalone_root() -> str:
    """Where files live without ComfyUI: $MGLD_HOME, else the current directory."""
    return os.environ.get("MGLD_HOME", os.getcwd())


# ------------------------------------------------------------------------------------------ folders

def register_model_folder() -> None:
    """Register ``models/mgld`` with ComfyUI, keeping any ``extra_model_paths.yaml`` entries for it."""
    fp = _comfy("folder_paths")
    if fp is None:
        return
    default = os.path.join(fp.models_dir, MODEL_FOLDER)
    paths, extensions = fp.folder_names_and_paths.get(MODEL_FOLDER, ([], set()))
    if default not in paths:
        paths = [default, *paths]
    fp.folder_names_and_paths[MODEL_FOLDER] = (paths, set(extensions) | MODEL_EXTENSIONS)


def install_sample_input() -> None:
    """Copy the shipped sample clip into ComfyUI's input folder once, so core video nodes can list it."""
    fp = _comfy("folder_paths")
    if fp is None:
        return
    source = os.path.join(PACK_ROOT, "examples", "sample_lr.mp4")
    target = os.path.join(fp.get_input_directory(), "sample_lr.mp4")
    if os.path.isfile(source) and not os.path.exists(target):
        try:
            import shutil

            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target + ".partial")
            os.replace(target + ".partial", target)
        except OSError:
            pass  # a read-only input folder only costs the sample's listing


def model_dirs() -> list[str]:
    fp = _comfy("folder_paths")
    if fp is not None:
        return list(fp.get_folder_paths(MODEL_FOLDER))
    if os.environ.get("MGLD_MODELS_DIR"):
        return [os.environ["MGLD_MODELS_DIR"]]
    parent = os.path.dirname(PACK_ROOT)
    if os.path.basename(parent) == "custom_nodes":  # headless inside a ComfyUI tree: use its models/mgld
        return [os.path.join(os.path.dirname(parent), "models", MODEL_FOLDER)]
    return [os.path.join(_standalone_root(), "models", MODEL_FOLDER)]


def list_models() -> list[str]:
    fp = _comfy("folder_paths")
    if fp is not None:
        return sorted(fp.get_filename_list(MODEL_FOLDER))
    names = []
    for folder in model_dirs():
        if os.path.isdir(folder):
            for root, _, files in os.walk(folder):
                for f in files:
                    if os.path.splitext(f)[1].lower() in MODEL_EXTENSIONS:
                        names.append(os.path.relpath(os.path.join(root, f), folder))
    return sorted(names)


def model_path(name: str) -> str:
    """Full path of a model file chosen in a widget; a clear message if it is not there."""
    fp = _comfy("folder_paths")
    found = fp.get_full_path(MODEL_FOLDER, name) if fp is not None else None
    if found is None and fp is None:
        for folder in model_dirs():
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                found = candidate
    if found is None and os.path.isabs(name) and os.path.isfile(name):
        found = name
    if found is None:
        raise FileNotFoundError(
            f"model file '{name}' not found. Put it in {' or '.join(model_dirs())} "
            f"(see the README's Weights section for where to download mgldvsr_unet.ckpt, video_vae_cfw.ckpt "
            f"and raft-things.pth); nothing is downloaded automatically.")
    return found


def input_dir() -> str:
    fp = _comfy("folder_paths")
    return fp.get_input_directory() if fp is not None else os.path.join(_standalone_root(), "input")


def output_dir() -> str:
    fp = _comfy("folder_paths")
    return fp.get_output_directory() if fp is not None else os.path.join(_standalone_root(), "output")


def input_path(name: str) -> str:
    fp = _comfy("folder_paths")
    if fp is not None:
        return fp.get_annotated_filepath(name)
    return name if os.path.isabs(name) else os.path.join(input_dir(), name)


def list_input_videos() -> list[str]:
    folder = input_dir()
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, f)) and os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS)


# ------------------------------------------------------------------------------------------ devices

def compute_device() -> torch.device:
    mm = _comfy("model_management")
    if mm is not None:
        return mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device() -> torch.device:
    mm = _comfy("model_management")
    return mm.unet_offload_device() if mm is not None else torch.device("cpu")


def make_room(nbytes: int, device: torch.device) -> None:
    """Ask ComfyUI's model manager to unload other models until ``nbytes`` are free on ``device``."""
    mm = _comfy("model_management")
    if mm is not None:
        mm.free_memory(nbytes + mm.minimum_inference_memory(), device)


def free_memory() -> None:
    mm = _comfy("model_management")
    if mm is not None:
        mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ progress

def check_interrupt() -> None:
    """Raise ComfyUI's interruption exception when the user pressed Cancel (no-op standalone)."""
    mm = _comfy("model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


#: Linear map from SD latents (the space MGLD samples in) to approximate RGB, for previews only.
LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                           [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]])


def latent_preview(latents: torch.Tensor, max_size: int = 512):
    """A cheap RGB preview (PIL image) of the first frame of ``latents [T,4,h,w]``, no VAE needed."""
    from PIL import Image

    rgb = torch.einsum("chw,cr->hwr", latents[0].float().cpu(), LATENT_RGB)
    rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8).numpy()
    return ("JPEG", Image.fromarray(rgb), max_size)


class Progress:
    """ComfyUI's progress bar (with latent previews) in the host; a one-line terminal bar standalone."""

    quiet = False

    def __init__(self):
        self._bar, self._total, self._last, self._latents = None, None, -1, None

    def preview(self, latents: torch.Tensor) -> None:
        self._latents = latents

    def __call__(self, done: int, total: int, what: str) -> None:
        utils = _comfy("utils")
        if utils is not None:
            if self._bar is None or self._total != total:
                self._bar, self._total = utils.ProgressBar(total), total
            preview = None
            if self._latents is not None:
                try:
                    preview = latent_preview(self._latents)
                except ImportError:
                    preview = None
                self._latents = None
            self._bar.update_absolute(done, total, preview)
            return
        if Progress.quiet:
            return
        percent = int(100 * done / max(total, 1))
        if percent != self._last or done == total:
            self._last = percent
            filled = percent // 4
            sys.stderr.write(f"\r{what:>14s} [{'#' * filled}{'.' * (25 - filled)}] {done}/{total}")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def hooks():
    """Pipeline hooks wired to the host's progress bar and Cancel button."""
    from .pipeline.hooks import Hooks

    bar = Progress()
    return Hooks(progress=bar, preview=bar.preview if _comfy("utils") is not None else None,
                 check_interrupt=check_interrupt, message=notify)


def sampling_checkpoint():
    """Where a resumable run keeps its sampling checkpoints: ``$MGLD_RESUME_DIR`` (the headless runner's
    ``--resume DIR``), saved every ``$MGLD_CHECKPOINT_EVERY`` steps (default 5); ``None`` when unset."""
    folder = os.environ.get("MGLD_RESUME_DIR")
    if not folder:
        return None
    from .pipeline.checkpoint import SamplingCheckpoint

    return SamplingCheckpoint(folder, int(os.environ.get("MGLD_CHECKPOINT_EVERY") or 5))


def notify(text: str) -> None:
    """Messages that do not stop a run (e.g. an out-of-memory retry) go to the console/log."""
    logging.getLogger("MGLD-VSR").warning(text)
