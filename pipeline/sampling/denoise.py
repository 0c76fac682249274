"""Motion-guided respaced DDPM sampling of one latent canvas (the official ``sample_canvas``).

Each step: noise prediction assembled from Gaussian-weighted latent tiles (the time-aware LR
encoder re-run on each LR-latent tile at the *original* timestep), one ancestral DDPM step, then
one motion-guidance gradient step on the flow-warping error. Randomness comes from a callable so
a run can replay stored noise; progress, previews and interruption go through ``callback``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from .guidance import motion_guidance_step
from ..motion.field import MotionField
from .schedule import RespacedSchedule, ddpm_step, predict_x0
from .tiling import fitted_tile, gaussian_tile_weights, stitch_shifted, stitch_tiles


@dataclasses.dataclass
class StepInfo:
    """What a callback learns after each denoising step."""

    step: int  # 0-based count of finished steps
    total: int
    j: int  # respaced index just applied (total-1 .. 0)
    latents: torch.Tensor
    eps: torch.Tensor
    x0: torch.Tensor  # the clean latent predicted at this step (what previews show)


StepCallback = Callable[[StepInfo], None]
#: ``noise(j, like)`` returns the N(0, I) draw of respaced step j, shaped like ``like``.
StepNoise = Callable[[int, torch.Tensor], torch.Tensor]


def model_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def predict_eps(unet, lr_encoder, x: torch.Tensor, lr_latent: torch.Tensor, t_model: int, context: torch.Tensor,
                tile: int = 64, overlap: int = 32, tiles_per_batch: int = 1, weights: torch.Tensor | None = None,
                num_frames: int | None = None, shift_step: int | None = None,
                between_tiles: Callable[[], None] | None = None) -> torch.Tensor:
    """Noise prediction for ``x [B*T,4,h,w]`` (windows of ``num_frames``) from latent tiles, the LR latent tiled alike.

    ``shift_step`` (default mode with no tile overlap) uses the disjoint tiles of that step, whose
    borders move every step, instead of the fixed Gaussian-blended grid. ``between_tiles()`` runs
    before each batch of tiles: an interrupt check there stops a run within one tile's UNet pass.
    """
    dtype = model_dtype(unet)
    t = torch.tensor([t_model], device=x.device, dtype=torch.long)
    context = context.to(device=x.device, dtype=dtype)

    def predict(origins, tile_h, tile_w):
        if between_tiles is not None:
            between_tiles()
        crops = [(slice(None), slice(None), slice(y, y + tile_h), slice(xo, xo + tile_w)) for y, xo in origins]
        noisy = torch.cat([x[c] for c in crops]).to(dtype)
        cond = lr_encoder(torch.cat([lr_latent[c] for c in crops]).to(dtype), t)
        eps = unet(noisy, t, context, cond, num_frames).float()
        return eps.chunk(len(origins))

    if shift_step is not None:
        return stitch_shifted(x, predict, tile, shift_step, tiles_per_batch)
    return stitch_tiles(x, predict, tile, overlap, tiles_per_batch, weights)


def sample_canvas(unet, lr_encoder, x_T: torch.Tensor, lr_latent: torch.Tensor, context: torch.Tensor,
                  schedule: RespacedSchedule, noise: StepNoise, *, motion: Optional[MotionField] = None,
                  strength: float = 10.0, tile: int = 64, overlap: int = 32, tiles_per_batch: int = 1,
                  callback: Optional[StepCallback] = None,
                  between_tiles: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Denoise one window ``x_T [T,4,h,w]`` (T frames of one video) to its clean latent.

    ``motion`` covers the same T frames (``None`` or ``strength == 0``: no guidance). Noise is drawn
    at every step, including the last where it is multiplied by zero, to keep replayed draws aligned.
    """
    if x_T.shape != lr_latent.shape:
        raise ValueError(f"start latent {tuple(x_T.shape)} and LR latent {tuple(lr_latent.shape)} differ")
    weights = gaussian_tile_weights(fitted_tile(tile, x_T.shape[-2]), fitted_tile(tile, x_T.shape[-1]))
    guided = motion is not None and strength > 0 and x_T.shape[0] > 1
    batched = motion.batched() if guided else None
    x = x_T.float()
    total = schedule.steps
    for step, j in enumerate(reversed(range(total))):
        eps = predict_eps(unet, lr_encoder, x, lr_latent, schedule.model_timestep(j), context, tile, overlap,
                          tiles_per_batch, weights, between_tiles=between_tiles)
        x0 = predict_x0(schedule, j, x, eps) if callback is not None else None
        x = ddpm_step(schedule, j, x, eps, noise(j, x))
        if guided:
            x = motion_guidance_step(x, schedule, j, *batched, strength=strength)
        if callback is not None:
            callback(StepInfo(step, total, j, x, eps, x0))
    return x
