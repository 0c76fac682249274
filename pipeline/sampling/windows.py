"""Temporal windows: cover a clip of any length with fixed-length, overlapping windows per shot.

The UNet was trained on 5-frame windows. Default mode splits the clip into shots at scene cuts,
covers each shot with windows of ``window`` frames overlapping by ``overlap`` (the last one
flush with the shot's end, like spatial tiles) and blends the windows' noise predictions with
triangular weights at every denoising step, so no seam survives. A shot shorter than a window is
padded by mirroring its frames inside the window only; padded positions never reach the output.
With no overlap, :func:`shifted_windows` instead cuts each shot into disjoint windows whose
borders move at every denoising step (see ``partition.py``): every frame is denoised once per step.
The official mode instead uses disjoint 5-frame segments padded by repeating the last frame.
"""
from __future__ import annotations

import dataclasses

import torch

from ..defaults import OFFICIAL_WINDOW
from .partition import shifted_parts, step_shift


@dataclasses.dataclass(frozen=True)
class Window:
    frames: tuple[int, ...]  # clip frame index of each window position (repeats when mirrored)
    weights: tuple[float, ...]  # blending weight of each position (0 for mirrored repeats)


def shots(num_frames: int, cuts: torch.Tensor | None) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges between scene cuts (``cuts[i]``: a cut between frames i and i+1)."""
    bounds = [0]
    if cuts is not None:
        bounds += [i + 1 for i in torch.nonzero(cuts.cpu(), as_tuple=False).flatten().tolist()]
    bounds.append(num_frames)
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def mirrored(length: int, window: int) -> list[int]:
    """Positions 0..window-1 mapped into 0..length-1 by reflection (0 1 2 1 0 1 ...)."""
    if length == 1:
        return [0] * window
    period = 2 * (length - 1)
    return [p % period if p % period < length else period - p % period for p in range(window)]


def triangular(window: int) -> list[float]:
    """Weights rising to the window centre: edges of a window count least where windows overlap."""
    return [float(min(t + 1, window - t)) for t in range(window)]


def _mirrored_window(start: int, length: int, window: int, weights: list[float]) -> Window:
    """A shot shorter than a window, filled by reflection; repeated frames carry no weight."""
    positions = mirrored(length, window)
    seen, w = set(), []
    for p, wt in zip(positions, weights):
        w.append(wt if p not in seen else 0.0)
        seen.add(p)
    return Window(tuple(start + p for p in positions), tuple(w))


def plan_windows(num_frames: int, window: int = 5, overlap: int = 2, cuts: torch.Tensor | None = None) -> list[Window]:
    """Windows covering every frame; none crosses a cut."""
    if num_frames < 1:
        raise ValueError("a clip needs at least one frame")
    if window < 2:
        raise ValueError(f"temporal window must be at least 2 frames, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"window overlap must be in [0, {window - 1}], got {overlap}")
    weights = triangular(window)
    plan = []
    for start, stop in shots(num_frames, cuts):
        length = stop - start
        if length < window:
            plan.append(_mirrored_window(start, length, window, weights))
            continue
        for s in window_starts(length, window, overlap):
            plan.append(Window(tuple(range(start + s, start + s + window)), tuple(weights)))
    return plan


def shifted_windows(num_frames: int, window: int, step: int, cuts: torch.Tensor | None = None) -> list[Window]:
    """Disjoint windows of ``ceil(window/2)`` to ``window`` frames per shot, borders moved by ``step``.

    Shots shorter than a window get one mirrored window, as in :func:`plan_windows`.
    """
    if num_frames < 1:
        raise ValueError("a clip needs at least one frame")
    if window < 2:
        raise ValueError(f"temporal window must be at least 2 frames, got {window}")
    plan = []
    for start, stop in shots(num_frames, cuts):
        length = stop - start
        if length < window:
            plan.append(_mirrored_window(start, length, window, triangular(window)))
            continue
        for offset, size in shifted_parts(length, window, step_shift(step, window, "t")):
            plan.append(Window(tuple(range(start + offset, start + offset + size)), (1.0,) * size))
    return plan


def official_segments(num_frames: int, n_frames: int = OFFICIAL_WINDOW) -> list[list[int]]:
    """Disjoint segments of the official script, the tail padded by repeating the last frame."""
    order = list(range(num_frames)) + [num_frames - 1] * ((-num_frames) % n_frames)
    return [order[i:i + n_frames] for i in range(0, len(order), n_frames)]
