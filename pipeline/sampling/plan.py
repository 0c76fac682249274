"""The sampling plan: where the temporal windows and latent tiles fall at every denoising step, as data.

The default mode moves its window and tile borders at every step (``partition.py``), blends tiles in
the first and last few steps, and restarts windows at scene cuts. All of that is decided here, once,
from the options, the clip length, the latent size and the cuts, before any network runs. The loop
(``loop.py``) only executes the plan, and everything that needs to know the layout (the FLOP count,
the seam and quality measurements, the memory estimate, the region preview, the tests) reads the same
:class:`SamplingPlan` instead of re-deriving it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

from .. import defaults
from ..defaults import LATENT_TILE_STEP
from .schedule import TRAIN_TIMESTEPS, RespacedSchedule, respaced_schedule
from .tiling import TileLayout, blended_layout, shifted_layout
from .windows import Window, plan_windows, shifted_windows

#: Shares of the denoising steps that start the sampling with Gaussian-blended tiles overlapping
#: by a quarter (rounded to the nearest step: none below 13 steps) and end it with tiles
#: overlapping by half (rounded up: at least one), when the shifted partitions
#: are used: 2 + 4 of 50 steps. The finishing share is the smallest with which the trained
#: stand-in's quality benchmark (benchmarks/quality.py --quick, 13 steps) leaves no stronger seam
#: than the fixed Gaussian grid: one finishing step of 13 left a line of 1.33, two left 1.11 (grid:
#: 1.23); more blended start steps did not help (1.38).
START_FRACTION = 0.04
FINISH_FRACTION = 0.08
#: Frames shared by neighbouring windows in the finishing steps (0: the shifted disjoint windows of
#: every other step). 0: sharing 1 frame cost 2 % more UNet work for no gain on the stand-in
#: (quality.py --quick: seam 1.11 either way, border flicker 0.99 shifted vs 1.01 shared, warping
#: error 15.14 both), and made the default mode costlier than the official one at 128 -> 512.
FINISH_WINDOW_OVERLAP = 0
#: Latent tile overlap of the finishing and the starting steps, as a share of the tile (whole 8-px units).
FINISH_TILE_OVERLAP = 0.5
START_TILE_OVERLAP = 0.25


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    """What the user chose for the default mode (the sampler node's widgets)."""

    steps: int = defaults.OFFICIAL_STEPS
    strength: float = defaults.OFFICIAL_GUIDANCE_STRENGTH  # motion guidance; 0 disables it
    seed: int = defaults.SEED
    window: int = defaults.OFFICIAL_WINDOW  # frames per temporal window (the model was trained on 5)
    window_overlap: int = defaults.WINDOW_OVERLAP  # 0: disjoint windows shifted every step; >0: fixed windows blended
    tile: int = defaults.OFFICIAL_LATENT_TILE  # latent tile side (8 latent px = 64 image px)
    tile_overlap: int = defaults.TILE_OVERLAP  # 0: disjoint tiles shifted every step; >0: fixed Gaussian-blended grid
    tiles_per_batch: int = 1
    memory_budget_gb: float = defaults.MEMORY_BUDGET_GB  # cap on estimated accelerator memory; 0 = no cap
    #: First steps blending tiles overlapping by ``START_TILE_OVERLAP`` of a tile (shifted partitions only).
    start_fraction: float = START_FRACTION
    #: Last steps blending tiles overlapping by ``FINISH_TILE_OVERLAP`` of a tile (shifted partitions only).
    finish_fraction: float = FINISH_FRACTION
    #: Frames shared by windows in the finishing steps (0: they keep the shifted disjoint windows).
    finish_window_overlap: int = FINISH_WINDOW_OVERLAP

    def validate(self, latent_size: tuple[int, int]) -> None:
        if not 1 <= int(self.steps) <= TRAIN_TIMESTEPS:
            raise ValueError(f"steps must be between 1 and {TRAIN_TIMESTEPS}, got {self.steps}")
        if not (self.strength >= 0 and self.strength < float("inf")):
            raise ValueError(f"guidance strength must be >= 0, got {self.strength}")
        if self.window < 2 or not 0 <= self.window_overlap < self.window:
            raise ValueError(f"window {self.window} with overlap {self.window_overlap}: need window >= 2 and "
                             f"0 <= overlap < window")
        if self.tile < LATENT_TILE_STEP or self.tile % LATENT_TILE_STEP:
            raise ValueError(f"latent tile size must be a multiple of {LATENT_TILE_STEP} (>= {LATENT_TILE_STEP}), "
                             f"got {self.tile}")
        if not 0 <= self.tile_overlap < self.tile:
            raise ValueError(f"tile overlap must be in [0, tile size), got {self.tile_overlap}")
        if self.tile > min(latent_size):
            raise ValueError(f"latent tile size {self.tile} is larger than the latent grid {latent_size[0]}x{latent_size[1]}; "
                             f"use a tile of at most {min(latent_size) - min(latent_size) % LATENT_TILE_STEP}")
        if self.tiles_per_batch < 1:
            raise ValueError("tiles_per_batch must be at least 1")
        if not (0 <= self.memory_budget_gb < float("inf")):
            raise ValueError(f"memory budget must be >= 0 GB (0 = no cap), got {self.memory_budget_gb}")
        if not (0 <= self.start_fraction <= 1 and 0 <= self.finish_fraction <= 1):
            raise ValueError(f"start and finish fractions must be in [0, 1], got {self.start_fraction} and "
                             f"{self.finish_fraction}")
        if not 0 <= self.finish_window_overlap < self.window:
            raise ValueError(f"finishing window overlap must be in [0, window), got {self.finish_window_overlap}")


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """One denoising step: its timestep, the temporal windows and where the latent tiles fall."""

    index: int  # 0 = the first (noisiest) step
    j: int  # respaced index applied by this step (total-1 .. 0)
    t_model: int  # the original timestep the networks are conditioned on
    windows: tuple[Window, ...]
    tiles: TileLayout

    @property
    def phase(self) -> str:
        """``"shifted"`` (disjoint tiles moved this step) or ``"blended"`` (Gaussian-weighted overlapping tiles)."""
        return "blended" if self.tiles.blended else "shifted"

    @property
    def window_frames(self) -> int:
        """Frames the UNet sees this step, mirrored and shared frames included."""
        return sum(len(w.frames) for w in self.windows)


@dataclasses.dataclass(frozen=True)
class SamplingPlan:
    """Every step of one clip's sampling, computed by :meth:`create` before any network runs."""

    options: SamplingOptions
    schedule: RespacedSchedule
    num_frames: int
    latent_size: tuple[int, int]
    cuts: Optional[torch.Tensor]  # [N-1] bool: a cut between frames i and i+1
    steps: tuple[StepPlan, ...]

    @classmethod
    def create(cls, options: SamplingOptions, num_frames: int, latent_size: tuple[int, int],
               cuts: Optional[torch.Tensor] = None) -> "SamplingPlan":
        options.validate(latent_size)
        schedule = respaced_schedule(options.steps)
        total = schedule.steps
        steps = tuple(StepPlan(step, j, schedule.model_timestep(j), tuple(windows_at(step, total, num_frames, options, cuts)),
                               tile_layout_at(step, total, latent_size, options))
                      for step, j in enumerate(reversed(range(total))))
        return cls(options, schedule, num_frames, tuple(latent_size), cuts, steps)

    def with_options(self, options: SamplingOptions) -> "SamplingPlan":
        """The same clip planned with other options (the out-of-memory retry's smaller tiles)."""
        return SamplingPlan.create(options, self.num_frames, self.latent_size, self.cuts)

    @property
    def window_visits(self) -> int:
        """Windows denoised over the whole run: the sampler's progress total."""
        return sum(len(step.windows) for step in self.steps)

    def largest_tile(self) -> tuple[int, int]:
        """``(height, width)`` of the largest latent tile of any step (what the memory estimate must hold)."""
        return max(((th, tw) for step in self.steps for _, _, th, tw in step.tiles.tiles), key=lambda s: s[0] * s[1])


def finishing(step: int, total: int, options: SamplingOptions) -> bool:
    """Whether denoising ``step`` (0 = first of ``total``) is one of the blended finishing steps."""
    return step >= total - math.ceil(options.finish_fraction * total)


def starting(step: int, total: int, options: SamplingOptions) -> bool:
    """Whether denoising ``step`` is one of the first steps, whose tiles are blended (finishing wins)."""
    return step < math.floor(options.start_fraction * total + 0.5) and not finishing(step, total, options)


def windows_at(step: int, total: int, num_frames: int, options: SamplingOptions,
               cuts: Optional[torch.Tensor]) -> list[Window]:
    """The temporal windows of denoising ``step``: shifted when the overlap is 0, except when finishing."""
    if options.window_overlap > 0:
        return plan_windows(num_frames, options.window, options.window_overlap, cuts)
    if finishing(step, total, options) and options.finish_window_overlap > 0:
        return plan_windows(num_frames, options.window, options.finish_window_overlap, cuts)
    return shifted_windows(num_frames, options.window, step, cuts)


def tile_overlap_at(step: int, total: int, options: SamplingOptions) -> Optional[int]:
    """Latent tile overlap of denoising ``step``; ``None`` means the shifted disjoint tiles."""
    if options.tile_overlap > 0:
        return options.tile_overlap
    if finishing(step, total, options):
        return max(1, int(options.tile * FINISH_TILE_OVERLAP))
    if starting(step, total, options):
        return max(8, int(options.tile * START_TILE_OVERLAP) // 8 * 8)  # in whole 8-px units
    return None


def tile_layout_at(step: int, total: int, latent_size: tuple[int, int], options: SamplingOptions) -> TileLayout:
    """The latent tiles of denoising ``step`` on a latent of ``latent_size``."""
    overlap = tile_overlap_at(step, total, options)
    if overlap is None:
        return shifted_layout(*latent_size, options.tile, step)
    return blended_layout(*latent_size, options.tile, overlap)
