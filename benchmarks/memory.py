#!/usr/bin/env python3
"""Peak accelerator memory per pipeline stage, full-size models in fp16, counted on meta tensors.

    python benchmarks/memory.py [--lr 270x480] [--decode-tile 768]

Bytes of live tensors (weights of the stage's models + activations) through one unit of each
stage: RAFT on one window's frame pairs, the VAE encoder on a chunk of frames, one sampling step
of one 5-frame window (all latent tiles, LR encoder + UNet), and the CFW decode of one window.
"""
import argparse
import time

from _common import machine

import torch

from memory_counter import LiveTensorBytes
from mgld_vsr.models.loader import build_empty, official_config
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.sampler import predict_eps

GB = 2 ** 30
DTYPE = torch.float16


def meta_model(name):
    return build_empty(name, official_config(name)).to(DTYPE).eval().requires_grad_(False)


def measure(models, fn):
    with torch.no_grad(), LiveTensorBytes() as mem:
        weights = mem.track(*models)
        fn()
    return weights, mem.peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", default="270x480", help="LR size HxW")
    parser.add_argument("--decode-tile", type=int, default=768, help="decoder tile in output pixels (0 = whole frames)")
    args = parser.parse_args()
    h, w = map(int, args.lr.split("x"))
    plan = LRPlan.create(h, w, 4)
    lh, lw = plan.latent_size
    hp, wp = plan.padded
    meta = dict(device="meta", dtype=DTYPE)
    print(f"# {machine()}")
    print(f"# LR {h}x{w} -> {plan.output_size[0]}x{plan.output_size[1]} (padded {hp}x{wp}, latent {lh}x{lw}), fp16, meta tensors")
    unet, encoder, first_stage, vae = (meta_model(n) for n in ("unet", "lr_encoder", "first_stage", "video_vae"))
    raft = build_empty("raft", official_config("raft")).eval().requires_grad_(False)  # RAFT stays fp32
    rows = []
    start = time.perf_counter()
    fh, fw = plan.flow_size
    rows.append(("optical flow (8 pairs, fp32)", *measure([raft], lambda: raft(torch.empty(8, 3, fh, fw, device="meta"),
                                                                               torch.empty(8, 3, fh, fw, device="meta")))))
    rows.append(("VAE encode (8 frames)", *measure([first_stage], lambda: first_stage.encode(torch.empty(8, 3, hp, wp, **meta)))))
    x = torch.empty(5, 4, lh, lw, **meta)
    context = torch.empty(1, 77, 1024, **meta)
    rows.append(("sampling step (5-frame window, 64/32 tiles)",
                 *measure([unet, encoder], lambda: predict_eps(unet, encoder, x, x, 500, context, 64, 32))))
    tile = args.decode_tile // 8

    def decode():
        from mgld_vsr.pipeline.video import decode_window

        decode_window(vae, torch.empty(5, 4, lh, lw, **meta), torch.empty(5, 3, hp, wp, **meta), 1.0, tile)

    rows.append((f"CFW decode (5 frames, tile {args.decode_tile or 'whole'})", *measure([vae], decode)))
    for label, weights, peak in rows:
        print(f"{label:48s} weights {weights / GB:6.2f} GiB   peak {peak / GB:6.2f} GiB")
    print(f"# counted in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
