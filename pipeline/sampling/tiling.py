"""Latent tiling: eps for any latent size from tiles the UNet was trained on, as a :class:`TileLayout`.

Two layouts. Blended (the official "canvas"): the UNet sees tiles of ``tile`` latent pixels overlapping by ``overlap``; their noise predictions
are blended with a separable Gaussian so seams vanish. Placement and weights follow the official
``p_mean_variance_canvas``: origins every ``tile - overlap`` with the last tile snapped to the end,
x centre ``(P-1)/2`` but y centre ``P/2``, float64 weights accumulated into float32 buffers.
Shifted (default mode, most steps): disjoint tiles whose borders move every step (``partition.py``).
Which layout a step uses is the sampling plan's decision (``plan.py``); :func:`stitch` executes it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Optional

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


@dataclasses.dataclass(frozen=True)
class TileLayout:
    """Where the latent tiles of one denoising step fall, and how their predictions combine.

    ``overlap`` set: tiles of one size overlapping by that much (each side capped below the tile),
    blended with Gaussian weights (the official canvas). ``None``: the disjoint tiles of a shifted
    partition, averaged only where a side that is not a multiple of 8 makes the last tile slide back.
    """

    tiles: tuple[tuple[int, int, int, int], ...]  # (y, x, height, width) in latent pixels, in visiting order
    overlap: Optional[int]

    @property
    def blended(self) -> bool:
        return self.overlap is not None


def blended_layout(h: int, w: int, tile: int, overlap: int) -> TileLayout:
    """The official canvas grid on an ``h x w`` latent: fitted tiles every ``tile - overlap``, last flush with the end,
    visited column by column as the official ``p_mean_variance_canvas`` does."""
    tile_h, tile_w = fitted_tile(tile, h), fitted_tile(tile, w)
    rows = tile_origins(h, tile_h, min(overlap, tile_h - 1))
    cols = tile_origins(w, tile_w, min(overlap, tile_w - 1))
    return TileLayout(tuple((y, x, tile_h, tile_w) for x in cols for y in rows), overlap)


def shifted_layout(h: int, w: int, tile: int, step: int) -> TileLayout:
    """The disjoint tiles of denoising ``step`` (:func:`shifted_tile_grid`)."""
    return TileLayout(tuple(shifted_tile_grid(h, w, tile, step)), None)


Predict = Callable[[list[tuple[int, int]], int, int], list[torch.Tensor]]


def stitch(x: torch.Tensor, predict: Predict, layout: TileLayout, tiles_per_batch: int = 1,
           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Combine per-tile predictions over the spatial extent of ``x [N, C, H, W]`` as ``layout`` says.

    ``predict(origins, tile_h, tile_w)`` returns one ``[N, C, tile_h, tile_w]`` prediction per origin;
    it is called with up to ``tiles_per_batch`` origins of one size so models can batch tiles.
    Accumulation order and precision do not depend on the batching. ``weights``: the Gaussian blend
    weights of a blended layout, when the caller keeps them (default: computed here).
    """
    if layout.blended:
        return _blend(x, predict, layout, tiles_per_batch, weights)
    return _average(x, predict, layout, tiles_per_batch)


def _blend(x: torch.Tensor, predict: Predict, layout: TileLayout, tiles_per_batch: int,
           weights: torch.Tensor | None) -> torch.Tensor:
    _, _, tile_h, tile_w = layout.tiles[0]
    if weights is None:
        weights = gaussian_tile_weights(tile_h, tile_w)
    # The official code blends in float64; MPS has no float64, so there the blend runs in float32.
    blend = torch.float32 if x.device.type == "mps" else torch.float64
    weights = weights.to(x.device, blend)
    origins = [(y, xo) for y, xo, _, _ in layout.tiles]
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


def _average(x: torch.Tensor, predict: Predict, layout: TileLayout, tiles_per_batch: int) -> torch.Tensor:
    """Disjoint tiles cover each latent pixel once, except the few columns/rows where a side that is not a
    multiple of 8 makes the last tile overlap its neighbour; there the predictions are averaged.
    Same-size tiles are batched ``tiles_per_batch`` at a time."""
    _, _, h, w = x.shape
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
    by_size: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for y, xo, th, tw in layout.tiles:
        by_size.setdefault((th, tw), []).append((y, xo))
    for (th, tw), origins in by_size.items():
        for group in batched(origins, max(1, tiles_per_batch)):
            for (y, xo), pred in zip(group, predict(group, th, tw)):
                area = (slice(None), slice(None), slice(y, y + th), slice(xo, xo + tw))
                out[area] += pred.float()
                count[area] += 1.0
    return (out / count).to(x.dtype)
