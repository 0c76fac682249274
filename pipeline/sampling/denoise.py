"""Tiled noise prediction: the UNet and the time-aware LR encoder over the tiles of one layout.

The time-aware LR encoder is re-run on each LR-latent tile at the *original* timestep, as the
official ``p_mean_variance_canvas`` does; where the tiles fall is the caller's :class:`TileLayout`
(the sampling plan's, or the official canvas grid).
"""
from __future__ import annotations

from typing import Callable

import torch

from .tiling import TileLayout, stitch


def model_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def predict_eps(unet, lr_encoder, x: torch.Tensor, lr_latent: torch.Tensor, t_model: int, context: torch.Tensor,
                layout: TileLayout, tiles_per_batch: int = 1, weights: torch.Tensor | None = None,
                num_frames: int | None = None, between_tiles: Callable[[], None] | None = None) -> torch.Tensor:
    """Noise prediction for ``x [B*T,4,h,w]`` (windows of ``num_frames``) from the tiles of ``layout``, the LR
    latent tiled alike.

    ``between_tiles()`` runs before each batch of tiles: an interrupt check there stops a run within
    one tile's UNet pass.
    """
    predict = tile_predictor(unet, lr_encoder, x, lr_latent, t_model, context, num_frames, between_tiles)
    return stitch(x, predict, layout, tiles_per_batch, weights)


def tile_predictor(unet, lr_encoder, x: torch.Tensor, lr_latent: torch.Tensor, t_model: int, context: torch.Tensor,
                   num_frames: int | None = None, between_tiles: Callable[[], None] | None = None):
    """``predict(origins, tile_h, tile_w)``: the noise prediction of same-size tiles of ``x`` at those origins.

    Shared by :func:`predict_eps` (a layout's tiles) and the region preview (``region.py``: a layout's
    tiles cut by a box), so both run the networks on a tile the same way.
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

    return predict
