"""Out-of-memory fallback: retry a unit of work with smaller tiles instead of failing the whole run.

Each denoising step and each decoded window is a pure function of tensors we still hold, so when
an accelerator runs out of memory the unit can be recomputed with smaller latent tiles (and one
tile per batch) without changing anything else. Only when the smallest tile fails does the run
stop, with a message saying what to try.
"""
from __future__ import annotations

import gc
from typing import Optional

import torch

from ..defaults import LATENT_TILE_STEP

#: Smallest latent tile side the fallback goes down to (128 image pixels).
MIN_TILE = 16


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA, MPS, XPU and CPU allocators each report exhaustion differently."""
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_cached_memory(device: torch.device) -> None:
    """Give the allocator's cached blocks back before retrying, so the retry sees the free memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def smaller_tile(tile: int, minimum: int = MIN_TILE) -> Optional[int]:
    """Half the tile side, rounded down to a whole number of ``LATENT_TILE_STEP``, or ``None`` below ``minimum``."""
    half = (tile // 2) // LATENT_TILE_STEP * LATENT_TILE_STEP
    return half if half >= minimum else None
