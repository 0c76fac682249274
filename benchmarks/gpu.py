#!/usr/bin/env python3
"""GPU speed, memory and fast paths of the pack on full-size random-weight networks, in one prepared run.

    python benchmarks/gpu.py [--json FILE] [--budget-s 420] [--steps 5] [--compile]
    python benchmarks/gpu.py --tiny [--json FILE]     # the same code on CPU with the tiny fixture networks

GPU time is scarce here (minutes at a time), so this one command turns such a window into every
figure issue #14 asks for. It measures nothing itself: it runs the device sections of the speed
and memory benchmarks in the order that matters most when ``--budget-s`` runs out (sections not
started by then are recorded as skipped), and writes them all to ``benchmarks/results/gpu-<date>.json``
on CUDA (or ``--json``):

* ``speed_512/<mode>/<dtype>``, ``window_1080p`` (``speed.py``): s/frame per stage at 128x128 ->
  512x512 in both modes, fp16 and bf16, sampling timed over ``--steps`` and scaled to 50, against the
  paper's 1.113 s/frame (A100); one 5-frame window at 1080p;
* ``memory/<size>`` (``memory.py``): peak ``torch.cuda.max_memory_allocated`` of each stage at 1080p
  and 4K against ``pipeline/memory/estimate.py``'s estimate of the same;
* ``unet_tflops``, ``fast_paths`` (``speed.py``): the UNet's achieved TFLOP/s and its fraction of the
  card's peak; SDPA backends, channels-last, ``torch.compile`` (``--compile``), the sampler's host round
  trip, pinned transfers and batched tiles, each with and without.

Where a measurement needs CUDA (memory, pinned copies, flash / memory-efficient kernels) and none
is there, it is recorded as ``{"skipped": "needs CUDA"}`` and the estimate still given.
"""
from __future__ import annotations

import argparse

from _common import ROOT, DeviceRun, add_device_arguments, run_device_sections

import torch

import memory
import speed


def sections(models: dict, run: DeviceRun, dtype: torch.dtype, first: bool) -> list:
    """Speed of both modes in every dtype; in the first one also the 1080p window, the stage memory, the
    UNet's throughput and the fast paths."""
    out = speed.timing_sections(models, run, dtype, first)
    if first:
        out += memory.measured_sections(models, run, dtype) + speed.throughput_sections(models, run, dtype)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_arguments(parser, "denoising steps timed (scaled to 50); default 5, tiny 1")
    args = parser.parse_args(argv)
    return run_device_sections(args, sections, ROOT / "benchmarks" / "results" / "gpu-<date>.json")


if __name__ == "__main__":
    main()
