"""Small helpers shared by the node adapters: precision choice and moving models for a stage."""
from __future__ import annotations

import contextlib

import torch

from .. import host
from ..pipeline.host_memory import release_freed_memory

PRECISIONS = ["auto", "fp32", "fp16", "bf16"]
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


def weight_dtype(choice: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on CUDA/MPS (bf16 where CUDA supports it), fp32 on CPU."""
    if choice == "fp32":
        return torch.float32
    if choice == "fp16":
        return torch.float16
    if choice == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
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


def image_to_frames(images: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE ``[N,H,W,C]`` float in [0,1] -> RGB float frames; grayscale and alpha handled.

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
        images = images[..., :3]
    elif channels != 3:
        raise ValueError(f"IMAGE has {channels} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
    if images.shape[0] == 0:
        raise ValueError("the IMAGE batch is empty: no frames to process")
    images = images.float()  # no copy when the IMAGE is float32 already (it is in ComfyUI)
    if images.amin() < 0 or images.amax() > 1:  # copy only to clamp: a long clip's IMAGE is large
        images = images.clamp(0, 1)
    return images.cpu()
