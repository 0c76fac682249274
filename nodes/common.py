"""Small helpers shared by the node adapters: precision choice and moving models for a stage."""
from __future__ import annotations

import contextlib
import warnings

import torch

from . import host
from ..pipeline.workers.executor import LOCAL_DEVICES, LocalExecutor, executor_for  # noqa: F401 (LOCAL_DEVICES: for nodes)
from ..pipeline.memory.host_ram import release_freed_memory

PRECISIONS = ["auto", "fp32", "fp16", "bf16"]
PRECISION_TOOLTIP = ("Weight precision. auto: bf16 on GPUs that compute it natively (NVIDIA compute capability 8+), "
                     "fp16 on older NVIDIA GPUs, fp16 (VAEs fp32) on Apple GPUs, fp32 on CPU. Attention always runs in "
                     "fp32. If a stage reports NaN/inf values, choose the precision it names.")
#: Node menu sub-categories: where each node sits in ComfyUI's "Add Node" menu and search filters.
CATEGORY = "MGLD-VSR"
LOADERS = f"{CATEGORY}/loaders"
VIDEO = f"{CATEGORY}/video"
MOTION = f"{CATEGORY}/motion"
SAMPLING = f"{CATEGORY}/sampling"
DECODING = f"{CATEGORY}/decoding"
METRICS = f"{CATEGORY}/metrics"
MEMORY_BUDGET_TOOLTIP = ("Cap on the GPU memory this node may use, in GB (weights + activations, estimated exactly "
                         "before running). Tiles shrink to fit; a cap below what the smallest tile needs is refused "
                         "with the smallest cap that works. 0 = no cap (an out-of-memory error is still retried with "
                         "smaller tiles).")

DEVICES_TOOLTIP = ("Where this stage runs. 'local' (default): in this process. With Ray installed (pip install -r "
                   "requirements-distributed.txt) the work is spread over several devices, with the same result: "
                   "'auto' = every GPU of the Ray cluster ($RAY_ADDRESS, or this machine), 'cuda:0,cuda:1' = these "
                   "GPUs of this machine, 'cpu:N' = N CPU worker processes, N = N workers. Default mode only.")


def devices_input() -> tuple:
    """The ``devices`` setting of the flow, sampler and decoder nodes (always their last optional input)."""
    return ("STRING", {"default": LOCAL_DEVICES, "tooltip": DEVICES_TOOLTIP})


@contextlib.contextmanager
def stage_executor(node: str, devices, *modules, reserve=None):
    """The executor of one node's stage: ``local`` moves ``modules`` to the compute device for the stage (as
    :func:`on_compute_device`); otherwise the workers receive them from host memory and give their devices
    back when the stage ends."""
    executor = executor_for(devices, f"{node}: devices")
    if isinstance(executor, LocalExecutor):
        with on_compute_device(*modules, reserve=reserve):
            yield executor
        return
    try:
        yield executor
    finally:
        executor.release()
        release_freed_memory()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: CUDA compute capability 8.0 (Ampere) or newer.

    ``torch.cuda.is_bf16_supported()`` is not the test: it also says yes where bf16 is only emulated
    (older GPUs), which is slow and no more accurate than fp16 there.
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device)[0] >= 8


def weight_dtype(choice: str, device: torch.device, part: str = "diffusion") -> torch.dtype:
    """Weight precision for ``part`` ("diffusion": UNet + LR encoder; "vae": both VAEs) on ``device``.

    ``auto``: bf16 on CUDA GPUs that compute it natively (compute capability >= 8), fp16 on older
    CUDA GPUs; on Apple MPS fp16 for the diffusion networks but fp32 for the VAEs (half-precision SD
    VAEs give black or NaN frames on Apple GPUs, the well-known reason for ``--no-half-vae`` there);
    fp32 on CPU. Attention runs in float32 in every case (``models/attention.py``).
    """
    if part not in ("diffusion", "vae"):
        raise ValueError(f"part must be 'diffusion' or 'vae', got {part!r}")
    if choice == "fp32":
        return torch.float32
    if choice == "fp16":
        return torch.float16
    if choice == "bf16":
        return torch.bfloat16
    if choice != "auto":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {choice!r}")
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    if device.type == "mps":
        return torch.float32 if part == "vae" else torch.float16
    return torch.float32


@contextlib.contextmanager
def on_compute_device(*modules, reserve=None):
    """Have the networks of a stage on the compute device while it runs.

    Inside ComfyUI its model manager does this as for its own models (see :func:`host.load_models`):
    ``reserve()`` (called only for accelerators) estimates the bytes the stage needs in all, weights
    included, and the manager frees room for the rest; the networks stay loaded afterwards until
    something else needs the memory. Without ComfyUI (headless, tests) the networks are moved to
    the device for the stage and back afterwards.
    """
    modules = [m for m in modules if m is not None]
    device = host.compute_device()
    weights = sum(t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers()))
    activations = max(0, reserve() - weights) if reserve is not None and device.type != "cpu" else 0
    if host.manages_models():
        device = host.load_models(modules, activations)
        try:
            yield device
        finally:
            release_freed_memory()  # the stage's host temporaries, so the next stage does not start on top of them
        return
    offload = host.offload_device()
    for m in modules:
        m.to(device)
    try:
        yield device
    finally:
        if offload != device:
            for m in modules:
                m.to(offload)
            host.free_memory()
        release_freed_memory()


def image_to_frames(images: torch.Tensor, say_alpha: bool = True) -> torch.Tensor:
    """ComfyUI IMAGE ``[N,H,W,C]`` float in [0,1] -> RGB float frames; grayscale and alpha handled.

    Alpha is dropped with a warning (one per process: the same text every time; ``say_alpha`` False
    for callers converting a batch a frame at a time after checking it whole).
    The result may share memory with ``images`` (ComfyUI's cached output): callers must not write to it.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise ValueError(f"expected an IMAGE batch [N,H,W,C], got shape {tuple(images.shape)}")
    channels = images.shape[-1]
    if channels == 1:
        images = images.expand(*images.shape[:-1], 3)
    elif channels == 4:
        if say_alpha:
            warnings.warn("the IMAGE has an alpha channel (4 channels); MGLD-VSR works on RGB, so the alpha is dropped",
                          RuntimeWarning)
        images = images[..., :3]
    elif channels != 3:
        raise ValueError(f"IMAGE has {channels} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
    if images.shape[0] == 0:
        raise ValueError("the IMAGE batch is empty: no frames to process")
    images = images.float()  # no copy when the IMAGE is float32 already (it is in ComfyUI)
    if images.amin() < 0 or images.amax() > 1:  # copy only to clamp: a long clip's IMAGE is large
        images = images.clamp(0, 1)
    return images.cpu()
