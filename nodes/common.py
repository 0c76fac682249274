"""Small helpers shared by the node adapters: precision choice and moving models for a stage."""
from __future__ import annotations

import contextlib

import torch

from .. import host
from ..pipeline.executor import LOCAL_DEVICES, LocalExecutor, check_devices, executor_for  # noqa: F401 (LOCAL_DEVICES: for nodes)
from ..pipeline.host_memory import release_freed_memory

PRECISIONS = ["auto", "fp32", "fp16", "bf16"]
CATEGORY = "MGLD-VSR"
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


def devices_problem(node: str, devices) -> bool | str:
    """``True``, or the one-line reason a ``devices`` value cannot work (for ``VALIDATE_INPUTS``: before any work)."""
    try:
        check_devices(devices, f"{node}: devices")
    except ValueError as exc:
        return str(exc)
    return True


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
    """Keep models on the compute device only while a stage runs, then give the memory back.

    ``reserve()`` (called only for accelerators) estimates the bytes the stage needs in all; the
    host's model manager evicts other models until that much is free (ComfyUI: its loaded models).
    """
    device, offload = host.compute_device(), host.offload_device()
    modules = [m for m in modules if m is not None]
    if device.type != "cpu":
        needed = reserve() if reserve is not None else 0
        needed = max(needed, sum(t.numel() * t.element_size() for m in modules for t in m.parameters()))
        host.make_room(needed, device)
    for m in modules:
        m.to(device)
    try:
        yield device
    finally:
        if offload != device:
            for m in modules:
                m.to(offload)
            host.free_memory()
        release_freed_memory()  # the stage's host temporaries, so the next stage does not start on top of them


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
