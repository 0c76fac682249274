"""Random draws of a run, injectable so that runs are reproducible and fixtures can replay stored noise.

A source hands out, per sampled canvas, the VAE posterior draw, the start-noise draw and one draw
per denoising step, in the order the official script makes them. Draws are made on the CPU and
moved to the latents' device, so a seed gives the same result on every device.
"""
from __future__ import annotations

from typing import Sequence

import torch


class SeededNoise:
    """Official behaviour: re-seed before every image tile, so equal-shaped tiles get equal noise."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.begin_canvas()

    def begin_canvas(self) -> None:
        self.generator.manual_seed(self.seed)

    def draw(self, shape, device=None) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator, dtype=torch.float32).to(device)

    def posterior(self, like: torch.Tensor) -> torch.Tensor:
        return self.draw(like.shape, like.device)

    def start(self, like: torch.Tensor) -> torch.Tensor:
        return self.draw(like.shape, like.device)

    def step(self, j: int, like: torch.Tensor) -> torch.Tensor:
        return self.draw(like.shape, like.device)


class ReplayNoise:
    """Replays stored draws (the same ones for every canvas, as re-seeding makes them)."""

    def __init__(self, posterior: torch.Tensor, start: torch.Tensor, steps: Sequence[torch.Tensor]):
        self._posterior, self._start, self._steps = posterior, start, list(steps)
        self._next = 0

    def begin_canvas(self) -> None:
        self._next = 0

    def posterior(self, like: torch.Tensor) -> torch.Tensor:
        return self._posterior.to(like.device)

    def start(self, like: torch.Tensor) -> torch.Tensor:
        return self._start.to(like.device)

    def step(self, j: int, like: torch.Tensor) -> torch.Tensor:
        draw = self._steps[self._next]
        self._next += 1
        return draw.to(like.device)
