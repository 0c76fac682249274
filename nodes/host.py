"""The one place that talks to ComfyUI: model folders, model management, progress, previews,
interruption, the core VIDEO type and how errors are shown.

Everything here falls back to plain behaviour when ComfyUI is absent (tests, the headless
runner), so models, pipeline and node classes never import ComfyUI themselves.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import sys
import time

import torch

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # nodes/ is one level down
MODEL_FOLDER = "mgld"
MODEL_EXTENSIONS = {".ckpt", ".pth", ".pt", ".safetensors"}
VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


#: ComfyUI's modules by the short names used here.
_COMFY_MODULES = {
    "folder_paths": "folder_paths",
    "model_management": "comfy.model_management",
    "model_patcher": "comfy.model_patcher",
    "utils": "comfy.utils",
    "latent_formats": "comfy.latent_formats",
    "latent_preview": "latent_preview",
    "video_types": "comfy_api.input_impl",
    "video_util": "comfy_api.util",
    "nodes": "nodes",
}


def _comfy(name: str):
    """A ComfyUI module if we run inside ComfyUI, else None (never imports it when absent)."""
    try:
        return importlib.import_module(_COMFY_MODULES[name])
    except ImportError:
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


#: The standalone weights folder, under $MGLD_HOME or the current directory (beside input/ and output/).
STANDALONE_WEIGHTS = "weights"


def _old_standalone_dir() -> str:
    """The standalone default before ``weights/``: ``models/mgld``, which from the pack's own folder is
    inside its ``models/`` source package. Still read, with a notice."""
    return os.path.join(_standalone_root(), "models", MODEL_FOLDER)


def model_dirs() -> list[str]:
    """Where weight files are looked up, first one first: ComfyUI's ``models/mgld`` (and its extra paths)
    in ComfyUI; standalone ``$MGLD_MODELS_DIR``, else ComfyUI's ``models/mgld`` when the pack sits in a
    ComfyUI tree, else ``./weights`` (plus the old ``./models/mgld`` while it exists)."""
    fp = _comfy("folder_paths")
    if fp is not None:
        return list(fp.get_folder_paths(MODEL_FOLDER))
    if os.environ.get("MGLD_MODELS_DIR"):
        return [os.environ["MGLD_MODELS_DIR"]]
    parent = os.path.dirname(PACK_ROOT)
    if os.path.basename(parent) == "custom_nodes":  # headless inside a ComfyUI tree: use its models/mgld
        return [os.path.join(os.path.dirname(parent), "models", MODEL_FOLDER)]
    folders = [os.path.join(_standalone_root(), STANDALONE_WEIGHTS)]
    if os.path.isdir(_old_standalone_dir()):
        folders.append(_old_standalone_dir())
    return folders


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
    return sorted(set(names))


def model_path(name: str) -> str:
    """Full path of a model file chosen in a widget; a clear message if it is not there."""
    fp = _comfy("folder_paths")
    found = fp.get_full_path(MODEL_FOLDER, name) if fp is not None else None
    if found is None and fp is None:
        for folder in model_dirs():
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                found = candidate
                if folder == _old_standalone_dir() and len(model_dirs()) > 1:
                    notify(f"MGLD: {name} was found in the old weights folder {folder}; move the weights to "
                           f"{model_dirs()[0]} (models/ is the pack's source code), or pass --models / set "
                           f"$MGLD_MODELS_DIR")
                break
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


# ------------------------------------------------------------------------------------- model management

def manages_models() -> bool:
    """Whether ComfyUI's model manager loads, offloads and frees this pack's networks (inside ComfyUI)."""
    return _comfy("model_management") is not None and _comfy("model_patcher") is not None


def _patcher(module: torch.nn.Module):
    """The ComfyUI ``ModelPatcher`` of a network, made once and kept with it (ComfyUI only holds it weakly).

    Its load device is ComfyUI's compute device and its offload device the one ComfyUI offloads
    UNets to (the GPU itself under ``--highvram``). Layers that ComfyUI leaves in host RAM on a
    partial load (``--lowvram``, ``--novram``, a full GPU) are streamed to the GPU layer by layer.
    """
    patcher = module.__dict__.get("_mgld_patcher")
    if patcher is None:
        from ..models.placement import stream_offloaded_weights

        mm, mp = _comfy("model_management"), _comfy("model_patcher")
        patcher = mp.ModelPatcher(module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
        stream_offloaded_weights(module)
        module.__dict__["_mgld_patcher"] = patcher
    return patcher


def load_models(modules, memory_required: int = 0) -> torch.device:
    """Load ``modules`` for a stage through ComfyUI's model manager, as it loads its own models.

    ``load_models_gpu`` unloads other models (of this or another workflow) until the weights and
    ``memory_required`` bytes of activations fit, loads as much of each network as the VRAM mode
    allows (all of it normally and under ``--highvram``, part of it under ``--lowvram``, none under
    ``--novram``; ``--cpu`` computes on the CPU), and keeps them loaded afterwards until something
    else needs the room. Returns the device the stage computes on.
    """
    mm = _comfy("model_management")
    mm.load_models_gpu([_patcher(m) for m in modules], memory_required=int(memory_required))
    return mm.get_torch_device()


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


def _latent_previewer():
    """ComfyUI's latent previewer for SD latents, with the user's preview method (None: previews off)."""
    lp, formats = _comfy("latent_preview"), _comfy("latent_formats")
    if lp is None or formats is None:
        return None
    return lp.get_previewer(compute_device(), formats.SD15())  # SD 2.x latents: the SD1.5 latent space


class Progress:
    """ComfyUI's progress bar (with latent previews) in the host; standalone, a bar per stage with elapsed
    time, rate and ETA on a terminal, plain lines in logs (:class:`~.pipeline.hooks.TerminalProgress`)."""

    quiet = False

    def __init__(self):
        self._bar, self._total, self._x0, self._terminal = None, None, None, None
        self.previewer = _latent_previewer() if _comfy("utils") is not None else None

    def preview(self, x0: torch.Tensor) -> None:
        """Show ``x0`` (predicted clean latents ``[T,4,h,w]``, first frame shown) with the next update."""
        self._x0 = x0

    def __call__(self, done: int, total: int, what: str) -> None:
        utils = _comfy("utils")
        if utils is not None:
            if self._bar is None or self._total != total:
                self._bar, self._total = utils.ProgressBar(total), total
            preview = None
            if self._x0 is not None and self.previewer is not None:
                preview = self.previewer.decode_latent_to_preview_image("JPEG", self._x0[:1])
                self._x0 = None
            self._bar.update_absolute(done, total, preview)
            return
        if Progress.quiet:
            return
        if self._terminal is None:
            from ..pipeline.hooks import TerminalProgress

            self._terminal = TerminalProgress()
        self._terminal(done, total, what)


def hooks():
    """Pipeline hooks wired to the host's progress bar and Cancel button."""
    from ..pipeline.hooks import Hooks

    bar = Progress()
    return Hooks(progress=bar, preview=bar.preview if bar.previewer is not None else None,
                 check_interrupt=check_interrupt, message=notify)


def status(text: str) -> None:
    """A line saying what is going on where no progress bar runs (e.g. a model loading): ComfyUI's log, or stderr."""
    if _comfy("utils") is not None:
        logging.getLogger("MGLD-VSR").info(text)
    elif not Progress.quiet:
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def announce(what: str):
    """``what ...`` when a step without progress steps starts, ``what: done in N s`` when it ends."""
    status(f"{what} ...")
    start = time.perf_counter()
    yield
    status(f"{what}: done in {time.perf_counter() - start:.1f} s")


def sampling_checkpoint():
    """Where a resumable run keeps its sampling checkpoints: ``$MGLD_RESUME_DIR`` (the headless runner's
    ``--resume DIR``), saved every ``$MGLD_CHECKPOINT_EVERY`` steps (default
    :data:`~..pipeline.defaults.CHECKPOINT_EVERY`); ``None`` when unset."""
    folder = os.environ.get("MGLD_RESUME_DIR")
    if not folder:
        return None
    from ..pipeline.defaults import CHECKPOINT_EVERY
    from ..pipeline.sampling.checkpoint import SamplingCheckpoint

    return SamplingCheckpoint(folder, int(os.environ.get("MGLD_CHECKPOINT_EVERY") or CHECKPOINT_EVERY))


def preview_images(images: torch.Tensor) -> list:
    """``ui`` entries that show ``images [N,H,W,3]`` on the node that returns them: ComfyUI's own preview
    files (its temp folder, as its Preview Image node writes them); none without ComfyUI (no canvas)."""
    nodes = _comfy("nodes") if _comfy("folder_paths") is not None else None
    if nodes is None or not hasattr(nodes, "PreviewImage"):
        return []
    return nodes.PreviewImage().save_images(images, filename_prefix="MGLD_preview")["ui"]["images"]


def notify(text: str) -> None:
    """Messages that do not stop a run (e.g. an out-of-memory retry) go to the console/log."""
    logging.getLogger("MGLD-VSR").warning(text)


# ------------------------------------------------------------------------------------------ video

def video_from_file(path: str):
    """A core ``VIDEO`` for a written file: ComfyUI's ``VideoFromFile``, or the pack's stand-in without ComfyUI."""
    types = _comfy("video_types")
    if types is not None:
        return types.VideoFromFile(path)
    from ..pipeline.video_io import StandInVideo

    return StandInVideo.from_file(path)


def video_from_frames(images: torch.Tensor, fps, audio=None):
    """A core ``VIDEO`` of frames ``[N,H,W,3]`` in [0, 1]: ComfyUI's ``VideoFromComponents``, or the stand-in."""
    from ..pipeline.video_io import StandInVideo, to_fraction

    types, util = _comfy("video_types"), _comfy("video_util")
    if types is not None and util is not None:
        return types.VideoFromComponents(util.VideoComponents(images=images, audio=audio, frame_rate=to_fraction(fps)))
    return StandInVideo.from_frames(images, to_fraction(fps), audio)


# ------------------------------------------------------------------------------------------ errors

#: The pack's package (this module is ``<pack>.nodes.host``): exceptions from any of its modules are relabelled.
_PACKAGE = __name__.rsplit(".", 2)[0] if __name__.count(".") >= 2 else ""
_SHOWN_AS: dict[type, type] = {}


def _shown_by_class_name(exc: BaseException) -> None:
    """``exc`` re-labelled so ComfyUI shows ``CheckpointError: ...`` instead of the module path.

    ComfyUI names an exception type by ``module.qualname``, and a custom node's module name is its
    folder's full path. An exception raised by this pack gets, in place, a subclass of its own type
    that ComfyUI names by the class name alone; ``isinstance`` checks and the traceback are unchanged.
    """
    kind = type(exc)
    if not _PACKAGE or not kind.__module__.startswith(_PACKAGE + "."):
        return
    shown = _SHOWN_AS.get(kind)
    if shown is None:
        shown = type(kind.__name__, (kind,), {"__module__": "builtins", "__qualname__": kind.__qualname__})
        _SHOWN_AS[kind] = shown
    try:
        exc.__class__ = shown
    except TypeError:  # an exception type whose layout does not allow it: shown as it is
        pass


def show_errors_by_class_name(classes: dict) -> None:
    """Inside ComfyUI, make each node's failures read ``ClassName: message`` in the UI (no module paths)."""
    if _comfy("folder_paths") is None:
        return
    for cls in classes.values():
        name = getattr(cls, "FUNCTION", None)
        function = getattr(cls, name, None) if name else None
        if function is None or getattr(function, "_mgld_errors_shown", False):
            continue

        def call(self, *args, __function=function, **kwargs):
            try:
                return __function(self, *args, **kwargs)
            except Exception as exc:
                _shown_by_class_name(exc)
                raise

        call = functools.wraps(function)(call)
        call._mgld_errors_shown = True
        setattr(cls, name, call)
