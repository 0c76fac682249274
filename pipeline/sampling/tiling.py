"""Gaussian-weighted latent tiling ("canvas" aggregation): eps for any latent size from fixed-size tiles.

The UNet sees tiles of ``tile`` latent pixels overlapping by ``overlap``; their noise predictions
are blended with a separable Gaussian so seams vanish. Placement and weights follow the official
``p_mean_variance_canvas``: origins every ``tile - overlap`` with the last tile snapped to the end,
x centre ``(P-1)/2`` but y centre ``P/2``, float64 weights accumulated into float32 buffers.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from .partition import shifted_tiles, step_shift


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: stride ``tile - overlap``, last tile flush with the end."""
    if tile > length:
        raise ValueError(f"tile size {tile} is larger than the latent side {length}")
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be in [0, tile size {tile})")
    stride = tile - overlap
    count = 1
    while (count - 1) * stride + tile < length:
        count += 1
    return [r * stride for r in range(count - 1)] + [length - tile]


def fitted_origins(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """``(size, origins)`` of the fewest tiles of at most ``tile`` that cover ``length`` with ``overlap``,
    shrunk to share the side evenly: the decoder's tiles. Snapping ``tile``-sized tiles to the end
    (:func:`tile_origins`) can cover a side almost twice (136 latent rows with 96-row tiles: 192);
    fitted tiles cover it once plus the overlaps (2 tiles of 72). Any size works for the decoder,
    which only upsamples."""
    if length <= tile:
        return length, [0]
    overlap = min(overlap, tile - 1)
    count = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (count - 1) * overlap) // count)
    return size, tile_origins(length, size, overlap)


def gaussian_tile_weights(height: int, width: int, var: float = 0.01) -> torch.Tensor:
    """``[height, width]`` float64 blending weights (official centres: x at (W-1)/2, y at H/2)."""

    def profile(n: int, centre: float) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float64)
        return torch.exp(-(pos - centre) * (pos - centre) / (n * n) / (2 * var)) / math.sqrt(2 * math.pi * var)

    return torch.outer(profile(height, height / 2), profile(width, (width - 1) / 2))


def fitted_tile(tile: int, side: int) -> int:
    """The tile side used on a latent side: ``tile``, or the side itself rounded down to a multiple of 8
    (the UNet halves its input three times) when the latent is smaller than a tile."""
    if side >= tile:
        return tile
    if side < 8:
        raise ValueError(f"a latent side of {side} is too small for the UNet (needs at least 8, i.e. 64 pixels)")
    return side - side % 8


def batched(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def stitch_tiles(
    x: torch.Tensor,
    predict: Callable[[list[tuple[int, int]], int, int], list[torch.Tensor]],
    tile: int = 64,
    overlap: int = 32,
    tiles_per_batch: int = 1,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Blend per-tile predictions over the spatial extent of ``x [N, C, H, W]``.

    ``predict(origins, tile_h, tile_w)`` returns one ``[N, C, tile_h, tile_w]`` prediction per origin;
    it is called with up to ``tiles_per_batch`` origins so models can batch tiles. Accumulation order
    and precision do not depend on the batching.
    """
    _, _, h, w = x.shape
    tile_h, tile_w = fitted_tile(tile, h), fitted_tile(tile, w)
    overlap_h, overlap_w = min(overlap, tile_h - 1), min(overlap, tile_w - 1)
    if weights is None:
        weights = gaussian_tile_weights(tile_h, tile_w)
    # The official code blends in float64; MPS has no float64, so there the blend runs in float32.
    blend = torch.float32 if x.device.type == "mps" else torch.float64
    weights = weights.to(x.device, blend)
    origins = [(y, xo) for xo in tile_origins(w, tile_w, overlap_w) for y in tile_origins(h, tile_h, overlap_h)]
    numerator = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    denominator = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for group in batched(origins, max(1, tiles_per_batch)):
        for (y, xo), pred in zip(group, predict(group, tile_h, tile_w)):
            window = (slice(None), slice(None), slice(y, y + tile_h), slice(xo, xo + tile_w))
            # Formed in float64 and stored back as float32, as the official in-place update does.
            numerator[window] = (numerator[window].to(blend) + pred.to(blend) * weights).float()
            denominator[window] = (denominator[window].to(blend) + weights).float()
    return (numerator / denominator).to(x.dtype)


def shifted_tile_grid(h: int, w: int, tile: int, step: int) -> list[tuple[int, int, int, int]]:
    """``(y, x, tile_h, tile_w)`` of the disjoint latent tiles used at denoising ``step``."""
    def side(length: int, axis: str) -> list[tuple[int, int]]:
        fitted = max(8, min(tile, length - length % 8))
        return shifted_tiles(length, fitted, 8 * step_shift(step, fitted // 8, axis))

    rows, cols = side(h, "y"), side(w, "x")
    return [(y, x, th, tw) for x, tw in cols for y, th in rows]


def stitch_shifted(
    x: torch.Tensor,
    predict: Callable[[list[tuple[int, int]], int, int], list[torch.Tensor]],
    tile: int,
    step: int,
    tiles_per_batch: int = 1,
) -> torch.Tensor:
    """Per-tile predictions over ``x [N, C, H, W]`` from the disjoint tiles of ``step`` (no blending).

    Tiles cover each latent pixel once, except the few columns/rows where a side that is not a
    multiple of 8 makes the last tile overlap its neighbour; there the predictions are averaged.
    Same-size tiles are batched ``tiles_per_batch`` at a time, as in :func:`stitch_tiles`.
    """
    _, _, h, w = x.shape
    grid = shifted_tile_grid(h, w, tile, step)
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
    by_size: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for y, xo, th, tw in grid:
        by_size.setdefault((th, tw), []).append((y, xo))
    for (th, tw), origins in by_size.items():
        for group in batched(origins, max(1, tiles_per_batch)):
            for (y, xo), pred in zip(group, predict(group, th, tw)):
                area = (slice(None), slice(None), slice(y, y + th), slice(xo, xo + tw))
                out[area] += pred.float()
                count[area] += 1.0
    return (out / count).to(x.dtype)
