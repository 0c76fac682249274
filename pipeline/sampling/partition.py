"""Partitions that move every denoising step: seamless tiling without overlap.

Overlapping tiles (the official 64/32 latent tiling, or 5-frame windows sharing 2 frames) hide
seams by computing most pixels several times: 3.3x the necessary UNet work at 1080p. Instead, a
side can be cut into disjoint parts whose cut points shift at every step (the idea of
SpotDiffusion, Frolov et al. 2024): each step's seams land somewhere else, so no border persists
long enough to leave a mark, and every pixel (or frame) is computed once per step.

Parts are whole multiples of a unit (8 latent pixels for the UNet, 1 frame for windows) between
``min_size`` and ``size`` units, so the networks only ever see inputs they were trained on.
"""
from __future__ import annotations

import math

#: Per-axis irrational step increments: the cut offsets of successive steps spread evenly over a
#: part (a low-discrepancy sequence) and the axes never move in lock-step.
AXIS_STRIDES = {"y": (math.sqrt(5.0) - 1.0) / 2.0, "x": math.sqrt(2.0) - 1.0, "t": math.sqrt(3.0) - 1.0}


def step_shift(step: int, size: int, axis: str) -> int:
    """Offset in ``[0, size)`` of the cut points at denoising step ``step`` (0 at the first step)."""
    fraction = (step * AXIS_STRIDES[axis]) % 1.0
    return int(fraction * size) % size


def shifted_parts(length: int, size: int, shift: int, min_size: int | None = None,
                  split: bool = True) -> list[tuple[int, int]]:
    """``[(start, length), ...]`` covering ``[0, length)`` without overlap, cut at ``shift + k * size``.

    End parts shorter than ``min_size`` (default ``ceil(size / 2)``) join their neighbour. With
    ``split``, a joined part longer than ``size`` is cut in two near-equal halves, so every part has
    between ``min_size`` and ``size`` units; without, joined parts keep up to ``size + min_size - 1``
    units (more context per part). A ``length`` below ``min_size`` is one part of it all.
    """
    if size < 1 or length < 1:
        raise ValueError(f"cannot partition a length of {length} into parts of {size}")
    min_size = math.ceil(size / 2) if min_size is None else min(max(1, min_size), size)
    cuts = [0] + list(range(shift % size or size, length, size)) + [length]
    sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    if len(sizes) > 1 and sizes[0] < min_size:
        sizes = [sizes[0] + sizes[1]] + sizes[2:]
    if len(sizes) > 1 and sizes[-1] < min_size:
        sizes = sizes[:-2] + [sizes[-2] + sizes[-1]]
    parts, start = [], 0
    for s in sizes:
        pieces = [s // 2, s - s // 2] if split and s > size else [s]
        for piece in pieces:
            parts.append((start, piece))
            start += piece
    return parts


def shifted_tiles(length: int, tile: int, shift: int, unit: int = 8) -> list[tuple[int, int]]:
    """Latent tiles ``[(start, size), ...]`` along a side of ``length`` pixels, sizes multiples of ``unit``.

    Cut points are at ``shift + k * tile`` rounded down to ``unit``. End parts shorter than half a
    tile join their neighbour and are not split back, so tiles have between ``tile / 2`` and
    ``1.5 * tile`` pixels: more context for edge pixels (measured by benchmarks/quality.py --seams) at a small
    cost (attention grows with the tile area). When ``length`` is not a multiple of ``unit`` the last
    tile slides back to end at ``length``, overlapping its neighbour by fewer than ``unit`` pixels.
    A tile larger than the side shrinks to the largest multiple of ``unit`` that fits.
    """
    if length < unit:
        raise ValueError(f"a latent side of {length} is too small for the UNet (needs at least {unit}, i.e. "
                         f"{8 * unit} pixels)")
    if tile < unit or tile % unit:
        raise ValueError(f"tile size must be a positive multiple of {unit}, got {tile}")
    tile = min(tile, length - length % unit)
    units = -(-length // unit)
    parts = [(unit * a, unit * n) for a, n in shifted_parts(units, tile // unit, shift // unit, split=False)]
    if unit * units == length:
        return parts
    if len(parts) == 1:  # one part longer than the side: split, so the last tile can slide back inside
        parts = [(unit * a, unit * n) for a, n in shifted_parts(units, tile // unit, shift // unit)]
    start, size = parts[-1]  # more than one part: the side holds more units than the tile
    return parts[:-1] + [(length - size, size)]
