"""Memory budget: choose tile sizes so a stage's estimated accelerator memory stays under a user cap.

Users share a GPU with other models, the desktop and other apps, so "as fast as the card allows"
is not always what they want. Given a cap in GB, the sampler and decoder pick the largest latent
tile (and VAE-encode batch) whose exact meta-tensor estimate (``estimate.py``) plus the window
tensors held on the device fits (the clip-long state stays in host RAM), and refuse clearly,
naming the smallest budget that works, when even the smallest setting does not.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ..defaults import LATENT_TILE_STEP
from . import estimate as memory
from ..sampling.guidance import GUIDANCE_PAIRS_PER_CHUNK
from .oom import MIN_TILE, smaller_tile

GB = 1e9
#: Allocators keep caches and fragment; estimates of live tensors are raised by this factor.
ALLOCATOR_OVERHEAD = 1.1


class BudgetTooSmall(ValueError):
    """The cap is below what the smallest setting needs for this resolution."""


def weight_bytes(module: torch.nn.Module, dtype: torch.dtype) -> int:
    """Bytes of a module's parameters and buffers once cast to ``dtype`` (non-float tensors kept)."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        size = torch.empty((), dtype=dtype).element_size() if t.is_floating_point() else t.element_size()
        total += t.numel() * size
    return total


def _tile_candidates(tile: int) -> list[int]:
    candidates = [tile]
    while (smaller := smaller_tile(candidates[-1])) is not None:
        candidates.append(smaller)
    return candidates


def _gb_up(nbytes: float) -> float:
    return math.ceil(nbytes * ALLOCATOR_OVERHEAD / GB * 10) / 10


@dataclasses.dataclass(frozen=True)
class SamplingFit:
    options: object  # SamplingOptions with the fitted tile
    encode_chunk: int  # frames per first-stage encode
    sampling_bytes: int  # estimated peak while denoising (weights, window tensors, one tile's activations)
    encode_bytes: int  # estimated peak while encoding the LR frames
    guidance_bytes: int = 0  # estimated peak of a motion-guidance chunk

    @property
    def peak_bytes(self) -> int:
        return max(self.sampling_bytes, self.encode_bytes, self.guidance_bytes)


def fit_sampling(unet, lr_encoder, first_stage, plan, num_frames: int, options, budget_gb: float) -> SamplingFit:
    """The largest latent tile and encode batch whose estimated peak fits ``budget_gb``.

    The sampler holds all three networks on the device for its whole run; besides one stage's
    activations it holds one window's latents there (the clip's latents, LR latents, blend
    accumulators, noise and flows stay in host RAM), or one guidance chunk. ``num_frames`` only
    bounds the guidance chunk: the need does not grow with the clip.
    """
    dtype = next(unet.parameters()).dtype
    h, w = plan.latent_size
    hp, wp = plan.padded
    window = options.window
    weights = sum(weight_bytes(m, dtype) for m in (unet, lr_encoder, first_stage))
    # the window's x and LR-latent slices, its eps, the tile stitcher's canvases: about 8 float32 latents
    window_state = window * h * w * 4 * 8 * 4
    own = {id(m): weight_bytes(m, dtype) for m in (unet, lr_encoder, first_stage)}

    def sampling_need(tile: int) -> int:
        th, tw = min(tile, h - h % LATENT_TILE_STEP), min(tile, w - w % LATENT_TILE_STEP)
        activations = memory.sampling_peak(unet, lr_encoder, window, th, tw, dtype) - own[id(unet)] - own[id(lr_encoder)]
        return weights + window_state + activations

    def encode_need(chunk: int) -> int:
        activations = memory.encode_peak(first_stage, chunk, hp, wp, dtype) - own[id(first_stage)]
        return weights + window_state + activations

    guidance_frames = min(num_frames, GUIDANCE_PAIRS_PER_CHUNK + 1)
    guidance_need = weights + (memory.guidance_peak(guidance_frames, h, w) if guidance_frames > 1 else 0)
    budget = budget_gb * GB / ALLOCATOR_OVERHEAD
    tiles = _tile_candidates(options.tile)
    tile = next((t for t in tiles if sampling_need(t) <= budget), None)
    chunk = 1 if encode_need(1) <= budget else None
    if tile is None or chunk is None or guidance_need > budget:
        smallest = max(sampling_need(tiles[-1]), encode_need(1), guidance_need)
        raise BudgetTooSmall(
            f"memory budget {budget_gb:g} GB is below the {_gb_up(smallest):.1f} GB that the smallest setting needs for "
            f"{plan.lr_size[0]}x{plan.lr_size[1]} frames ({hp}x{wp} at the model): {tiles[-1]}-px latent tiles, "
            f"{window}-frame windows, one frame per VAE encode, models in {str(dtype).replace('torch.', '')}. "
            f"Set memory_budget_gb to at least {_gb_up(smallest):.1f}, or 0 for no cap.")
    default_chunk = max(1, min(8, 2 ** 20 // (hp * wp)))
    while chunk < default_chunk and encode_need(chunk * 2) <= budget:
        chunk *= 2
    fitted = dataclasses.replace(options, tile=tile, tile_overlap=min(options.tile_overlap, tile // 2),
                                 tiles_per_batch=1)
    chunk = min(chunk, default_chunk)
    return SamplingFit(fitted, chunk, sampling_need(tile), encode_need(chunk), guidance_need)


def fit_decode(video_vae, plan, tile: int, budget_gb: float) -> tuple[int, int]:
    """``(decode tile in latent px (0 = whole frames), estimated bytes)``, the largest under ``budget_gb``."""
    dtype = next(video_vae.parameters()).dtype
    h, w = plan.latent_size
    hp, wp = plan.padded
    frames = video_vae.num_frames
    size = torch.empty((), dtype=dtype).element_size()
    # the window's latents and LR frames at the model dtype, its float32 blend canvas and weights, the
    # previous window's float32 frames (alive until replaced) and up to two pending overlap frames
    window_state = frames * (4 * h * w * size + 3 * hp * wp * (size + 4 + 4)) + hp * wp * 4 + 2 * 3 * hp * wp * 4

    def need(t: int) -> int:
        th, tw = (h, w) if t <= 0 else (min(t, h), min(t, w))
        return memory.decode_peak(video_vae, frames, th, tw, dtype) + window_state

    start = max(h, w) if tile <= 0 else tile
    first = start - start % LATENT_TILE_STEP or LATENT_TILE_STEP
    candidates = ([0] if tile <= 0 else []) + [t for t in _tile_candidates(first) if t < start or tile > 0]
    budget = budget_gb * GB / ALLOCATOR_OVERHEAD
    for t in candidates:
        if need(t) <= budget:
            return t, need(t)
    smallest = need(candidates[-1])
    raise BudgetTooSmall(
        f"memory budget {budget_gb:g} GB is below the {_gb_up(smallest):.1f} GB that decoding "
        f"{plan.lr_size[0]}x{plan.lr_size[1]} frames needs with the smallest tile ({8 * candidates[-1]} px, "
        f"{frames}-frame windows, video VAE in {str(dtype).replace('torch.', '')}). "
        f"Set memory_budget_gb to at least {_gb_up(smallest):.1f}, or 0 for no cap.")


__all__ = ["BudgetTooSmall", "GB", "MIN_TILE", "SamplingFit", "fit_decode", "fit_sampling", "weight_bytes"]
