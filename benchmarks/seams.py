#!/usr/bin/env python3
"""Seam report: how far tiled sampling deviates from an untiled run near tile borders vs inside tiles.

    python benchmarks/seams.py [--steps 10] [--frames 5]

Tiny models, one 5-frame window, a 64x64 latent (128x128 LR -> 512x512). Three runs share the
seed, hence the start noise and every step's noise:
* untiled: the whole latent as one tile (the reference);
* fixed grid: 32-px tiles overlapping by 16, Gaussian-blended every step (the official scheme at
  half scale: same tile/overlap proportions);
* shifted: default mode, disjoint 32-px tiles whose borders move every step, blended first and
  last steps; and, for comparison, the same without the blended first steps.
The per-pixel deviation |tiled - untiled| of the final latents (mean over frames and channels) is
averaged near tile borders (within 1 latent pixel of an edge) and away from every edge. A seam
shows as a border/interior ratio well above 1. Shifted borders cover almost every pixel at some
step, so their "interior" is a small, unrepresentative set; the line profile catches a seam
wherever it is: the deviation averaged along each latent row and column (4 px from the canvas
border excluded), worst line over the median line.
"""
import argparse
import time

from _common import machine, tiny_models

import torch

from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.sampling.tiling import fitted_tile, shifted_tile_grid, tile_origins
from mgld_vsr.pipeline.sampling import loop as video
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, sample_video
from mgld_vsr.pipeline.sampling.plan import tile_overlap_at

TILE, OVERLAP = 32, 16


def edges_mask(size: tuple[int, int], starts_y, starts_x, tile_y, tile_x, band: int = 1) -> torch.Tensor:
    """True within ``band`` pixels of an inner tile edge (the canvas boundary is not a seam)."""
    h, w = size
    mask = torch.zeros(h, w, dtype=torch.bool)
    for y in starts_y:
        for edge in (y, y + tile_y):
            if 0 < edge < h:
                mask[max(0, edge - band):edge + band, :] = True
    for x in starts_x:
        for edge in (x, x + tile_x):
            if 0 < edge < w:
                mask[:, max(0, edge - band):edge + band] = True
    return mask


def fixed_grid_edges(size, tile, overlap):
    h, w = size
    th, tw = fitted_tile(tile, h), fitted_tile(tile, w)
    return edges_mask(size, tile_origins(h, th, overlap), tile_origins(w, tw, overlap), th, tw)


def step_edges(size, options: SamplingOptions, step: int, steps: int) -> torch.Tensor:
    overlap = tile_overlap_at(step, steps, options)
    if overlap is not None:
        return fixed_grid_edges(size, options.tile, overlap)
    mask = torch.zeros(size, dtype=torch.bool)
    for y, x, th, tw in shifted_tile_grid(*size, options.tile, step):
        mask |= edges_mask(size, [y], [x], th, tw)
    return mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    models = tiny_models()
    nets = {k: models[k] for k in ("unet", "lr_encoder", "first_stage")}
    context = torch.randn(1, 77, models["unet"].config.context_dim, generator=torch.Generator().manual_seed(0))
    frames = (torch.rand(args.frames, 128, 128, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    plan = LRPlan.create(128, 128, 4)
    size = plan.latent_size
    motion = MotionField.still(args.frames, size)
    print(f"# {machine()}")
    print(f"# {args.frames} frames 128x128 -> {plan.output_size[0]}x{plan.output_size[1]}, latent {size[0]}x{size[1]}, "
          f"{args.steps} steps, guidance 10, tiny models, float32")

    def run(start_fraction=video.START_FRACTION, **opts):
        options = SamplingOptions(steps=args.steps, seed=3, **opts)
        saved, video.START_FRACTION = video.START_FRACTION, start_fraction
        try:
            with torch.no_grad():
                return sample_video(frames, motion, plan, **nets, context=context, options=options).latents, options
        finally:
            video.START_FRACTION = saved

    reference, _ = run(tile=min(size), tile_overlap=8)  # one tile covers the whole latent
    runs = {"fixed grid 32/16": run(tile=TILE, tile_overlap=OVERLAP), "shifted 32 (default)": run(tile=TILE),
            "shifted, no blended start": run(start_fraction=0.0, tile=TILE)}
    scale = reference.abs().mean()
    print(f"\nmean |untiled latent| = {scale:.4f}; deviations below are |tiled - untiled|, mean over frames and channels")
    print(f"{'tiling':<27}{'all':>8}{'at last-step edges':>20}{'at any-step edges':>19}{'interior':>10}{'last/int':>10}"
          f"{'any/int':>9}{'worst line/median':>19}")
    for name, (latents, options) in runs.items():
        deviation = (latents - reference).abs().mean(dim=(0, 1))
        last = step_edges(size, options, args.steps - 1, args.steps)
        anywhere = torch.zeros(size, dtype=torch.bool)
        for step in range(args.steps):
            anywhere |= step_edges(size, options, step, args.steps)
        interior = deviation[~anywhere].mean()
        inner = deviation[4:-4, 4:-4]
        lines = torch.cat([inner.mean(dim=0), inner.mean(dim=1)])
        print(f"{name:<27}{deviation.mean():8.4f}{deviation[last].mean():20.4f}{deviation[anywhere].mean():19.4f}"
              f"{interior:10.4f}{deviation[last].mean() / interior:10.2f}{deviation[anywhere].mean() / interior:9.2f}"
              f"{lines.max() / lines.median():19.2f}")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
