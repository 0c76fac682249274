#!/usr/bin/env python3
"""Which denoising steps make the suite's seam scores (issue #30): the default mode with the tiles of some
of its phases replaced by one tile covering the latent, on the cases of ``quality.py --suite``.

    python benchmarks/seam_sources.py [--cases a,b] [--variants "finishing;shifted;start,finishing"]
                                      [--noise-control 0.3] [--threads T] [--json FILE]

A study, not a mode: it swaps the sampling plan's layout of the named phases (``start``: the blended
first steps, ``shifted``: the moving disjoint tiles, ``finishing``: the blended last steps) for the
untiled reference's own layout, so the run is the default mode except that those steps see the whole
latent. If the score falls when a phase is untiled, that phase makes it; if it stays high whichever
phases are tiled, no layout of tiles smaller than the latent can meet the bar on that case.

``--noise-control MIX`` adds a run with no tiles at all whose start noise has ``MIX`` of other noise
mixed in (``sqrt(1 - MIX^2) * noise + MIX * other``): a deviation from the untiled run of a similar size
that no tile made, i.e. what the seam score reads when there is no seam.

Per run: the seam score (worst latent line over the median line, ``quality.seam_score``), its line,
the line contrast (``quality.line_contrast``) and the mean deviation from the untiled run.
Figures and their command are in docs/quality.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
import time

import quality  # sets up the stand-in's import path
import torch

from mgld_vsr.pipeline.sampling import loop as loop_module
from mgld_vsr.pipeline.sampling import plan as plan_module
from mgld_vsr.pipeline.sampling.tiling import blended_layout

PHASES = ("start", "shifted", "finishing")
#: Phases sampled as one whole-latent tile, per run: today's default, then each tiled phase alone left tiled
#: or taken away (the start step is one of 13, so it is not studied alone).
VARIANTS = ((), ("finishing",), ("shifted",))
NOISE_CONTROL = 0.3
#: Any seed other than the runs' own (quality.SEED) for the control's other noise.
CONTROL_SEED = 1234


def phase(step: int, total: int, options) -> str:
    """Which of :data:`PHASES` denoising ``step`` of the default mode belongs to (the plan's own rules)."""
    if plan_module.finishing(step, total, options):
        return "finishing"
    return "start" if plan_module.starting(step, total, options) else "shifted"


def whole_latent_layout(latent_size: tuple[int, int]):
    """The untiled reference's layout (``quality.mode_options``): one tile fitted to each side, two overlapping
    ones along a side that is not a multiple of 8."""
    return blended_layout(*latent_size, quality.whole_latent_tile(latent_size), quality.WHOLE_LATENT_OVERLAP)


@contextlib.contextmanager
def untiled_phases(phases):
    """While active, every sampling plan lays out the steps of ``phases`` as one whole-latent tile."""
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown phase(s) {sorted(unknown)}; phases are {', '.join(PHASES)}")
    original = plan_module.tile_layout_at

    def layout_at(step, total, latent_size, options):
        if options.tile_overlap == 0 and phase(step, total, options) in phases:
            return whole_latent_layout(latent_size)
        return original(step, total, latent_size, options)

    plan_module.tile_layout_at = layout_at
    try:
        yield
    finally:
        plan_module.tile_layout_at = original


@contextlib.contextmanager
def mixed_start_noise(mix: float):
    """While active, the sampler's start noise is ``sqrt(1 - mix^2) * noise + mix * other`` (same variance)."""
    original = loop_module.q_sample_respace

    def q_sample(schedule, x_start, noise, *args, **kwargs):
        other = torch.randn(noise.shape, generator=torch.Generator().manual_seed(CONTROL_SEED))
        return original(schedule, x_start, (1 - mix * mix) ** 0.5 * noise + mix * other.to(noise), *args, **kwargs)

    loop_module.q_sample_respace = q_sample
    try:
        yield
    finally:
        loop_module.q_sample_respace = original


def scores(latents: torch.Tensor, reference: torch.Tensor) -> dict:
    return {"seam": quality.seam_score(latents, reference), "seam_line": quality.seam_line(latents, reference),
            "line_contrast": quality.line_contrast(latents, reference),
            "mean_deviation": float((latents.float() - reference.float()).abs().mean())}


def label(phases) -> str:
    return "today's default" if not phases else "untiled: " + ", ".join(phases)


def study(cases, variants=VARIANTS, noise_control: float | None = NOISE_CONTROL, log=print) -> dict:
    nets = quality.standin_model.load()
    report = {}
    for case in cases:
        started = time.perf_counter()
        hr, lr = case.load()
        frames = torch.from_numpy(lr)
        lr_plan = quality.LRPlan.create(*case.setting.lr_size, scale=4, min_short_side=quality.MIN_SHORT_SIDE)
        flow = quality.clip_flows(quality.DISFlow(), frames, lr_plan)
        options = quality.mode_options(case.setting, lr_plan.latent_size)

        def run(name, phases=()):
            with untiled_phases(phases):
                return quality.run_mode(name, nets, frames, flow, lr_plan, case.setting, options[name]).latents

        reference = run("untiled")
        rows = {label(phases): scores(run("default", phases), reference) for phases in variants}
        if noise_control:
            with mixed_start_noise(noise_control):
                rows[f"no tiles, {noise_control:g} other start noise"] = scores(run("default", PHASES), reference)
        report[case.name] = rows
        log(f"\n## {case.name} ({time.perf_counter() - started:.0f} s)")
        log(f"{'run':<40} {'seam':>6} {'worst line':>12} {'contrast':>9} {'mean dev':>9}")
        for name, row in rows.items():
            log(f"{name:<40} {row['seam']:>6.2f} {row['seam_line']:>12} {row['line_contrast']:>9.2f} "
                f"{row['mean_deviation']:>9.4f}")
    return report


def parse_variants(text: str):
    """``"finishing;shifted;start,finishing"`` -> ``((), ("finishing",), ...)``; today's default always comes first."""
    variants = [()]
    for item in filter(None, (part.strip() for part in text.split(";"))):
        variants.append(tuple(p.strip() for p in item.split(",") if p.strip()))
    return tuple(variants)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated suite cases (default: all)")
    parser.add_argument("--variants", help="phases to sample untiled, ';' between runs (default: "
                                           "'finishing;shifted'); today's default always runs")
    parser.add_argument("--noise-control", type=float, default=NOISE_CONTROL,
                        help=f"share of other start noise in the tile-free control run (0: none; default {NOISE_CONTROL})")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--json", type=pathlib.Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.cases.split(",") if args.cases else [case.name for case in quality.SUITE]
    by_name = {case.name: case for case in quality.SUITE}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; the suite's cases are {', '.join(by_name)}")
    variants = parse_variants(args.variants) if args.variants else VARIANTS
    for phases in variants:
        if set(phases) - set(PHASES):
            parser.error(f"unknown phase in {phases}; phases are {', '.join(PHASES)}")
    started = time.perf_counter()
    report = study([by_name[name] for name in names], variants, args.noise_control or None)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": quality.machine(), "cases": report}, indent=1))
    return report


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
