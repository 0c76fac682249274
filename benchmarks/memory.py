#!/usr/bin/env python3
"""Peak accelerator memory per pipeline stage, full-size models in fp16: counted on meta tensors, and measured on CUDA.

    python benchmarks/memory.py [--lr 270x480 --lr 540x960] [--decode-tile 768] [--flow-chunk N] [--no-measure]

Issue #5 target 1: one temporal window, 270x480 -> 1080x1920 within 12 GB and 540x960 -> 4K
within 24 GB. Each stage holds only its own models on the device (models move there per stage),
so the pipeline peak is the largest stage peak. Stage peaks come from ``pipeline/memory/estimate.py``
(weights + activations of one unit of work, as the pipeline runs it) plus the whole-window
tensors the pipeline keeps on the device during that stage, itemised below the table.

What the figures are and are not: the stage peaks are the live tensor storages of the
real module code run on meta tensors, with attention counted as it runs on ``--device`` (CUDA by
default: fused SDPA kernels hold no score matrix). The "+ window tensors" column is a hand count of
the tensors the pipeline code keeps around a stage (listed in the comments of ``report``), not a
measurement. Neither includes the CUDA context (about 0.3-0.5 GB), cuBLAS/cuDNN workspaces or the
caching allocator's rounding and fragmentation: budget some hundreds of MB above the printed peak.

Where CUDA is at hand (unless ``--no-measure``), each stage's unit of work then runs on full-size
networks with random weights, and its peak ``torch.cuda.max_memory_allocated`` above what was
resident before is printed next to ``pipeline/memory/estimate.py``'s figure for the same unit
(:func:`stage_memory`; ``gpu.py`` runs it as its ``memory/<size>`` sections, ``--tiny`` on CPU, where
only the estimates are printed).
"""
from __future__ import annotations

import argparse
import functools
import time

from _common import DeviceRun, Sizes, FULL, device_networks, machine, one_tile_eval, synthetic_clip

import torch

from mgld_vsr.models.attention import planned_for
from mgld_vsr.models.loader import build_empty, official_config
from mgld_vsr.pipeline import defaults
from mgld_vsr.pipeline.decoding.cfw import decode_window
from mgld_vsr.pipeline.frames import LRPlan, flow_network_input
from mgld_vsr.pipeline.sampling.guidance import GUIDANCE_PAIRS_PER_CHUNK, clip_guidance_step
from mgld_vsr.pipeline.memory.estimate import (GiB, decode_peak, encode_peak, flow_peak, guidance_peak, measure,
                                               meta_copy, sampling_peak)
from mgld_vsr.pipeline.motion.field import MotionField, clip_flows, flow_chunk_for
from mgld_vsr.pipeline.sampling.loop import encode_lr_latents
from mgld_vsr.pipeline.sampling.schedule import respaced_schedule

GB = 10 ** 9  # the targets are in GB
DTYPE = torch.float16
TARGETS_GB = {(270, 480): 12, (540, 960): 24}
WINDOW = defaults.OFFICIAL_WINDOW  # frames per temporal window (the model's trained length and the video VAE's num_frames)
SAMPLING_TILES = (32, 64, 72, 96)  # latent tile sides: the default mode's tiles vary between 32 and 96
F32 = 4


def weight_bytes(*modules, dtype=DTYPE) -> int:
    copies = [meta_copy(m, dtype) for m in modules]
    return sum(t.numel() * t.element_size() for c in copies for t in (*c.parameters(), *c.buffers()))


def flow_preparation_peak(plan: LRPlan, frames: int) -> int:
    """``clip_flows`` prepares a chunk of frames at full model resolution (float32) before shrinking it for RAFT."""
    h, w = plan.lr_size

    def run():
        lr = torch.empty(frames, h, w, 3, dtype=torch.uint8, device="meta")
        return flow_network_input(plan.prepare(lr, "meta"))

    return measure([], run)[1]


def fmt(nbytes: int) -> str:
    return f"{nbytes / GiB:7.2f} GiB {nbytes / GB:7.2f} GB"


def report(lr: tuple[int, int], models: dict, decode_tile: int, flow_chunk: int) -> bool:
    plan = LRPlan.create(*lr, 4)
    hp, wp = plan.padded
    lh, lw = plan.latent_size
    fh, fw = plan.flow_size
    target = TARGETS_GB.get(lr)
    print(f"\n## LR {lr[0]}x{lr[1]} -> {plan.output_size[0]}x{plan.output_size[1]} "
          f"(model input {hp}x{wp}, latent {lh}x{lw}, RAFT input {fh}x{fw}); fp16, RAFT fp32")
    latent = WINDOW * 4 * lh * lw * F32  # one float32 latent tensor of the window
    pairs_window = 2 * (WINDOW - 1)
    flow_chunk = flow_chunk or flow_chunk_for(plan)
    pairs_chunk = 2 * (flow_chunk - 1)
    rows = []  # (label, weights, stage peak, resident, counts toward pipeline peak)

    w = weight_bytes(models["raft"], dtype=torch.float32)
    prepared = flow_chunk * 3 * fh * fw * F32  # the chunk's RAFT-size frames, alive while RAFT runs
    rows.append((f"flow: RAFT {pairs_window} pairs (one {WINDOW}-frame window)", w,
                 flow_peak(models["raft"], pairs_window, fh, fw), 0, False))
    rows.append((f"flow: RAFT {pairs_chunk} pairs (clip_flows chunk of {flow_chunk} frames)", w,
                 flow_peak(models["raft"], pairs_chunk, fh, fw), prepared, True))
    rows.append((f"flow: input preparation, {flow_chunk} frames", 0, flow_preparation_peak(plan, flow_chunk), 0, True))

    rows.append((f"encode: SD VAE encoder, 1 frame {hp}x{wp}", weight_bytes(models["first_stage"]),
                 encode_peak(models["first_stage"], 1, hp, wp, DTYPE), latent, True))

    # The clip-long state (latents, LR latents, eps sums, noise, motion) stays in host RAM; while a
    # window is denoised the device holds its float32 slices (x, LR latent), its noise prediction and
    # the tile stitcher's canvases: at most 8 window latents.
    sampling_resident = 8 * latent
    w_sampling = weight_bytes(models["unet"], models["lr_encoder"])
    for tile in SAMPLING_TILES:
        th, tw = min(tile, lh - lh % 8), min(tile, lw - lw % 8)
        rows.append((f"sampling: LR encoder + UNet, {WINDOW} frames, tile {th}x{tw}", w_sampling,
                     sampling_peak(models["unet"], models["lr_encoder"], WINDOW, th, tw, DTYPE), sampling_resident,
                     True))
    guidance_frames = GUIDANCE_PAIRS_PER_CHUNK + 1
    guidance = guidance_peak(guidance_frames, lh, lw)
    # one chunk of the clip's guidance on the device, next to the sampler's weights; its inputs
    # (latents, flows, masks) are inside its count
    rows.append((f"sampling: motion guidance chunk, {guidance_frames} frames", w_sampling, w_sampling + guidance, 0, True))

    # decode_window/decode_frames keep: the window's LR frames (fp16) and latents, the float32 output
    # canvas and its weight plane, the previous window's decoded frames (float32, still bound while the
    # next window decodes) and the frames pending in order (float32; with the default disjoint windows
    # these are the window's own frames).
    tile = decode_tile // 8
    dh, dw = min(tile, lh), min(tile, lw)
    frame32 = 3 * 8 * lh * 8 * lw * F32
    decode_resident = (WINDOW * 3 * hp * wp * 2 + WINDOW * 4 * lh * lw * 2 + WINDOW * frame32 + 8 * lh * 8 * lw * F32
                       + WINDOW * frame32 + 2 * frame32)
    rows.append((f"decode: CFW video VAE, {WINDOW} frames, tile {8 * dh}x{8 * dw} px", weight_bytes(models["video_vae"]),
                 decode_peak(models["video_vae"], WINDOW, dh, dw, DTYPE), decode_resident, True))

    print(f"{'stage':62s} {'weights':>11s} {'stage peak':>22s} {'+ window tensors':>22s} {'= total':>22s}")
    for label, weights, peak, resident, _ in rows:
        print(f"{label:62s} {weights / GiB:7.2f} GiB {fmt(peak)} {fmt(resident)} {fmt(peak + resident)}")
    counted = [(peak + resident, label) for label, _, peak, resident, counts in rows if counts]
    top, where = max(counted)
    print(f"window tensors: one float32 window latent [{WINDOW},4,{lh},{lw}] = {latent / 2 ** 20:.1f} MiB; sampling keeps "
          f"8 of them = {sampling_resident / 2 ** 20:.1f} MiB; a {guidance_frames}-frame motion-guidance chunk peaks at "
          f"{guidance / 2 ** 20:.1f} MiB; the decoder keeps {decode_resident / 2 ** 20:.1f} MiB "
          f"(LR window fp16, output canvas, previous window's frames, pending frames)")
    per_frame = 4 * lh * lw * F32 * 4 + 6 * lh * lw * F32
    print(f"the clip-long sampling state (latents, LR latents, eps sums, noise, motion) stays in host RAM, about "
          f"{per_frame / 2 ** 20:.1f} MiB per frame: device memory does not grow with the clip")
    verdict = "PASS" if target is not None and top <= target * GB else "FAIL"
    print(f"pipeline peak {top / GiB:.2f} GiB = {top / GB:.2f} GB (stage: {where})"
          + (f"  -> {verdict} (target {target} GB)" if target is not None else ""))
    return verdict == "PASS"


# ------------------------------------------------------------------------------- measured on the device

def stage_memory(models: dict, device: torch.device, dtype: torch.dtype, lr: tuple[int, int], sizes: Sizes) -> dict:
    """Measured peak bytes above the resident ones, per stage of one window, against the estimate (CUDA only:
    elsewhere the measurement is recorded as skipped and the estimates still given)."""
    plan = LRPlan.create(*lr, 4, min_short_side=sizes.min_short_side)
    h, w = plan.latent_size
    hp, wp = plan.padded
    tile = min(sizes.tile, h - h % 8, w - w % 8)
    window = models["video_vae"].num_frames
    frames = synthetic_clip(window, lr)
    weights = {k: measure([m], lambda: None)[0] for k, m in models.items() if isinstance(m, torch.nn.Module)}
    flow_pairs = 2 * (min(window, flow_chunk_for(plan)) - 1)
    decode_tile = min(defaults.DECODE_TILE_PX // 8, h, w)
    stages = {
        "raft": (flow_peak(models["raft"], flow_pairs, *plan.flow_size) - weights["raft"],
                 lambda: clip_flows(models["raft"], frames, plan, cut_threshold=float("inf"))),
        "encode": (encode_peak(models["first_stage"], 1, hp, wp, dtype) - weights["first_stage"],
                   lambda: encode_lr_latents(models["first_stage"], frames[:1], plan, torch.Generator(), chunk=1)),
        "sampling_tile": (sampling_peak(models["unet"], models["lr_encoder"], window, tile, tile, dtype)
                          - weights["unet"] - weights["lr_encoder"],
                          lambda: one_tile_eval(models, device, window, tile)),
        "guidance": (guidance_peak(window, h, w), lambda: _guidance(device, window, h, w)),
        "decode_tile": (decode_peak(models["video_vae"], window, decode_tile, decode_tile, dtype)
                        - weights["video_vae"],
                        lambda: _decode_tile(models, device, dtype, window, decode_tile)),
    }
    out = {"lr": list(lr), "dtype": str(dtype).replace("torch.", "")}
    for name, (estimated, run) in stages.items():
        row = {"estimate_gb": estimated / 1e9}
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                run()
            torch.cuda.synchronize()
            measured = torch.cuda.max_memory_allocated() - before
            row.update(measured_gb=measured / 1e9, estimate_over_measured=estimated / max(measured, 1),
                       within_15_percent=abs(estimated / max(measured, 1) - 1) <= 0.15)
        else:
            row["measured"] = {"skipped": "needs CUDA"}
        out[name] = row
    return out


def _guidance(device, frames, h, w):
    pair = lambda c: torch.zeros(frames - 1, c, h, w, device=device)  # noqa: E731
    motion = MotionField(pair(2), pair(2), pair(1), pair(1), torch.zeros(frames - 1, dtype=torch.bool, device=device))
    schedule = respaced_schedule(defaults.OFFICIAL_STEPS)
    return clip_guidance_step(torch.randn(frames, 4, h, w, device=device), schedule, defaults.OFFICIAL_STEPS // 2, motion,
                              defaults.OFFICIAL_GUIDANCE_STRENGTH, device=device, pairs_per_chunk=GUIDANCE_PAIRS_PER_CHUNK)


def _decode_tile(models, device, dtype, frames, tile):
    z = torch.randn(frames, 4, tile, tile, device=device, dtype=dtype)
    lr = torch.rand(frames, 3, 8 * tile, 8 * tile, device=device, dtype=dtype) * 2 - 1
    return decode_window(models["video_vae"], z, lr, defaults.FUSION_W, tile=0)


def measured_sections(models: dict, run: DeviceRun, dtype: torch.dtype) -> list:
    """``gpu.py``'s ``memory/<size>`` sections: :func:`stage_memory` at each of the run's memory sizes."""
    return [(f"memory/{lr[0]}x{lr[1]}", functools.partial(stage_memory, models, run.device, dtype, lr, run.sizes))
            for lr in run.sizes.memory]


def print_measured(sizes: list[tuple[int, int]]) -> None:
    """The stage peaks measured on this CUDA device next to their estimates (full-size networks, fp16)."""
    device = torch.device("cuda")
    models = device_networks(False, device, DTYPE)
    print(f"\n# measured on {torch.cuda.get_device_name(device)}: peak torch.cuda.max_memory_allocated of each "
          "stage's unit of work above the resident weights and inputs, full-size random-weight networks, fp16")
    for lr in sizes:
        rows = stage_memory(models, device, DTYPE, lr, FULL)
        print(f"\n## LR {lr[0]}x{lr[1]}\n{'stage':<16}{'estimate GB':>12}{'measured GB':>12}{'est/meas':>10}")
        for stage, row in rows.items():
            if isinstance(row, dict):
                print(f"{stage:<16}{row['estimate_gb']:>12.2f}{row['measured_gb']:>12.2f}"
                      f"{row['estimate_over_measured']:>9.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", action="append", help="LR size HxW (repeatable; default: 270x480 and 540x960)")
    parser.add_argument("--decode-tile", type=int, default=768, help="decoder tile in output pixels (default 768)")
    parser.add_argument("--flow-chunk", type=int, default=None,
                        help="frames per RAFT call in clip_flows (default: the pipeline's choice for the size)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu", "mps"),
                        help="device type the attention is counted for (default cuda: fused SDPA kernels)")
    parser.add_argument("--no-measure", action="store_true", help="on CUDA, print only the counted estimates")
    args = parser.parse_args()
    sizes = [tuple(map(int, s.split("x"))) for s in (args.lr or ["270x480", "540x960"])]
    print(f"# {machine()}")
    print("# bytes of live tensors (weights + activations) on meta tensors; GB = 1e9 bytes, GiB = 2^30 bytes")
    start = time.perf_counter()
    names = ("unet", "lr_encoder", "first_stage", "video_vae", "raft")
    models = {name: build_empty(name, official_config(name)) for name in names}
    print(f"# attention counted as on {args.device}; not counted: CUDA context, cuBLAS/cuDNN workspaces, "
          "allocator overhead; '+ window tensors' is a hand count")
    with planned_for(args.device):
        ok = all([report(lr, models, args.decode_tile, args.flow_chunk) for lr in sizes])  # a list: every size
    print(f"\n# counted in {time.perf_counter() - start:.1f} s")
    if torch.cuda.is_available() and not args.no_measure:
        print_measured(sizes)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
