#!/usr/bin/env python3
"""Peak accelerator memory per pipeline stage, full-size models in fp16, counted on meta tensors.

    python benchmarks/memory.py [--lr 270x480 --lr 540x960] [--decode-tile 768] [--flow-chunk N]

Issue #5 target 1: one temporal window, 270x480 -> 1080x1920 within 12 GB and 540x960 -> 4K
within 24 GB. Each stage holds only its own models on the device (models move there per stage),
so the pipeline peak is the largest stage peak. Stage peaks come from ``pipeline/memory.py``
(weights + activations of one unit of work, as the pipeline runs it) plus the whole-window
tensors the pipeline keeps on the device during that stage, itemised below the table.

What the figures are and are not: the stage peaks are the live tensor storages of the
real module code run on meta tensors, with attention counted as it runs on ``--device`` (CUDA by
default: fused SDPA kernels hold no score matrix). The "+ window tensors" column is a hand count of
the tensors the pipeline code keeps around a stage (listed in the comments of ``report``), not a
measurement. Neither includes the CUDA context (about 0.3-0.5 GB), cuBLAS/cuDNN workspaces or the
caching allocator's rounding and fragmentation: budget some hundreds of MB above the printed peak.
``benchmarks/gpu.py`` measures the stage peaks with ``torch.cuda.max_memory_allocated`` on a GPU.
"""
import argparse
import time

from _common import machine

import torch

from mgld_vsr.models.attention import planned_for
from mgld_vsr.models.loader import build_empty, official_config
from mgld_vsr.pipeline.frames import LRPlan, flow_network_input
from mgld_vsr.pipeline.sampling.guidance import GUIDANCE_PAIRS_PER_CHUNK
from mgld_vsr.pipeline.memory.estimate import (GiB, decode_peak, encode_peak, flow_peak, guidance_peak, measure,
                                               meta_copy, sampling_peak)
from mgld_vsr.pipeline.motion.field import flow_chunk_for

GB = 10 ** 9  # the targets are in GB
DTYPE = torch.float16
TARGETS_GB = {(270, 480): 12, (540, 960): 24}
WINDOW = 5  # frames per temporal window (the model's trained length and the video VAE's num_frames)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", action="append", help="LR size HxW (repeatable; default: 270x480 and 540x960)")
    parser.add_argument("--decode-tile", type=int, default=768, help="decoder tile in output pixels (default 768)")
    parser.add_argument("--flow-chunk", type=int, default=None,
                        help="frames per RAFT call in clip_flows (default: the pipeline's choice for the size)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu", "mps"),
                        help="device type the attention is counted for (default cuda: fused SDPA kernels)")
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
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
