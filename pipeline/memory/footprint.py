"""What a clip needs in memory, known from its size alone, checked against the machine before any work.

Why: an input far too large for the machine (an 8000x8000 video) used to be decoded (gigabytes of
RAM) and then die in an allocator traceback deep inside a stage. Every term here is a closed form
in the clip's frame count and :class:`~.frames.LRPlan` (no model needed, so it runs before the
loaders): the tensors the pipeline keeps for the whole clip (LR frames, flows, latents, the
decoded clip when it is not streamed) and the largest single allocations that grow with the
frame size and cannot be tiled (RAFT's all-pairs correlation volume, one window's latent
canvases). Model weights and activations of tiled stages are not counted, so every figure is a
lower bound: a refusal is certain to be right, and a clip that passes may still need the tiling
and out-of-memory fallbacks of the stages (``budget.py``, ``oom.py``).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch

from ..defaults import OFFICIAL_WINDOW
from ..frames import LRPlan

GB = 1e9
#: Bytes per LR pixel while a clip is decoded: the RGB frames, their stack, the float IMAGE and its
#: scaled copy (see nodes/video.py's loader).
LOAD_BYTES_PER_PIXEL = 3 + 3 + 4 * 3 + 4 * 3
#: Float32 latents held per frame by the default sampler at its peak: x, LR latents, the blended
#: noise prediction and its normalised copy, fresh noise, the stepped x, and the motion field
#: (two flows and two masks, 6 channels: 1.5 latents).
SAMPLER_LATENTS_PER_FRAME = 7.5
#: RAFT's correlation pyramid over the first level (levels shrink 4x each: 1 + 1/4 + 1/16 + 1/64).
CORRELATION_PYRAMID = 1 + 1 / 4 + 1 / 16 + 1 / 64


class NotEnoughMemory(MemoryError):
    """A clip needs more memory than the machine has; the message says how much, and what to change."""


@dataclasses.dataclass(frozen=True)
class Footprint:
    """Lower bounds, in bytes, of what one clip needs."""

    host: dict  # what stays in host RAM, by what it is
    device: dict  # the largest single steps on the compute device, by stage

    def only(self, *names: str) -> "Footprint":
        """The terms whose names start with one of ``names`` (what one stage adds to what is already held)."""
        keep = lambda terms: {k: v for k, v in terms.items() if k.startswith(names)}  # noqa: E731
        return Footprint(keep(self.host), keep(self.device))

    @property
    def host_bytes(self) -> int:
        return int(sum(self.host.values()))

    @property
    def device_peak(self) -> tuple[str, int]:
        """The largest device step: ``(what, bytes)``."""
        return max(self.device.items(), key=lambda item: item[1]) if self.device else ("nothing", 0)


def load_bytes(frames: int, height: int, width: int) -> int:
    """Host RAM to decode ``frames`` LR frames of ``height x width`` into a float IMAGE (peak)."""
    return int(frames * height * width * LOAD_BYTES_PER_PIXEL)


def raft_call_bytes(plan: LRPlan) -> int:
    """RAFT's correlation volumes for one call on a chunk of frames of ``plan``, float32."""
    from ..motion.field import flow_chunk_for

    hf, wf = plan.flow_size
    cells = (hf // 8) * (wf // 8)
    pairs = flow_chunk_for(plan) - 1  # a one-frame clip still runs RAFT once (the last frame against itself)
    return int(pairs * cells * cells * 4 * CORRELATION_PYRAMID)


def clip_footprint(frames: int, plan: LRPlan, *, window: int = OFFICIAL_WINDOW, streamed: bool = True) -> Footprint:
    """Lower bounds of a clip of ``frames`` frames through flow, sampling, decoding and saving.

    ``streamed``: the decoded frames go straight into the file (the headless runner and the
    long-video node); otherwise the whole upscaled clip is held as a float32 IMAGE, twice while
    the decoder stacks it.
    """
    h, w = plan.lr_size
    lh, lw = plan.latent_size
    hf, wf = plan.flow_size
    oh, ow = plan.output_size
    pairs = max(frames - 1, 0)
    latent = 4 * lh * lw * 4
    host = {
        "LR frames": frames * h * w * 3 * 4,
        "optical flow and its previews": pairs * (hf * wf * (2 * 2 * 4 + 3 * 4) + lh * lw * 3 * 4),
        "latents": int(frames * latent * SAMPLER_LATENTS_PER_FRAME),
        "decoded frames": (min(frames, 2 * window) if streamed else 2 * frames) * oh * ow * 3 * 4,
    }
    device = {
        f"RAFT on {hf}x{wf} frames": raft_call_bytes(plan),
        f"a {window}-frame window of {lh}x{lw} latents": min(window, frames) * latent * 8,
    }
    return Footprint(host, device)


# --------------------------------------------------------------------------------------------------
# The machine


def host_available_bytes() -> Optional[int]:
    """RAM the OS can give this process now (Linux: MemAvailable + free swap), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line.split()[1:2]}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_total_bytes(device: torch.device) -> Optional[int]:
    """Memory of an accelerator (None for the CPU and devices that share host RAM, such as MPS)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    return None


def _gb(nbytes: float) -> str:
    return f"{nbytes / GB:.1f} GB" if nbytes < 1e15 else f"{nbytes / GB:.3g} GB"


def check_fits(footprint: Footprint, device: torch.device, what: str, fix: str,
               host_available: Optional[int] = None) -> None:
    """Raise :class:`NotEnoughMemory` when ``footprint`` cannot fit: ``what`` names the clip, ``fix`` the remedy.

    On a CPU (or MPS) the device steps come out of the same RAM as the clip-long state.
    """
    available = host_available if host_available is not None else host_available_bytes()
    step, step_bytes = footprint.device_peak
    total = device_total_bytes(device)
    if total is not None and step_bytes > total:
        raise NotEnoughMemory(f"{what}: {step} needs about {_gb(step_bytes)} on {device}, which has {_gb(total)}; {fix}")
    need = footprint.host_bytes + (step_bytes if total is None else 0)
    if available is not None and need > available:
        parts = sorted(footprint.host.items(), key=lambda item: -item[1])
        largest = ", ".join(f"{name} {_gb(size)}" for name, size in parts[:2] if size)
        during = f" plus {step} {_gb(step_bytes)}" if total is None and step_bytes else ""
        raise NotEnoughMemory(f"{what} needs about {_gb(need)} of RAM ({largest}{during}; models not counted), "
                              f"have {_gb(available)} available; {fix}")


__all__ = ["Footprint", "NotEnoughMemory", "check_fits", "clip_footprint", "device_total_bytes",
           "host_available_bytes", "load_bytes", "raft_call_bytes"]
