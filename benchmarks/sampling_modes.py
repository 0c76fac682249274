#!/usr/bin/env python3
"""Seconds per frame of official vs default mode (tiny models, CPU), and where the time goes.

    python benchmarks/sampling_modes.py [--frames 10] [--steps 4] [--lr 128x176]

Both modes sample the same clip at the same size and step count with 64/32 latent tiles; the
time inside the UNet + LR encoder and inside the motion guidance is measured separately.
"""
import argparse
import time

from _common import machine, tiny_models

import torch
from torch import nn

from mgld_vsr.pipeline import guidance as guidance_module
from mgld_vsr.pipeline import official as official_module
from mgld_vsr.pipeline import sampler as sampler_module
from mgld_vsr.pipeline import video as video_module
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion import clip_flows


class Timer:
    def __init__(self):
        self.seconds = {}

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return timed


class TimedModule(nn.Module):
    def __init__(self, inner, timer, name):
        super().__init__()
        self.inner, self.forward = inner, timer.wrap(name, inner.forward)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--lr", default="128x176", help="LR frame size HxW (upsampled x4 to >= 512)")
    args = parser.parse_args()
    h, w = map(int, args.lr.split("x"))
    models = tiny_models()
    context = torch.randn(1, 77, models["unet"].config.context_dim, generator=torch.Generator().manual_seed(0))
    frames = (torch.rand(args.frames, h, w, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    plan = LRPlan.create(h, w, 4)
    with torch.no_grad():
        flow = clip_flows(models["raft"], frames, plan)
    print(f"# {machine()}")
    print(f"# clip {args.frames} frames {h}x{w} -> {plan.output_size[0]}x{plan.output_size[1]}, latent {plan.latent_size}, "
          f"{args.steps} steps, tiles 64/32, tiny models, float32")
    for mode in ("official", "default"):
        timer = Timer()
        unet = TimedModule(models["unet"], timer, "unet")
        encoder = TimedModule(models["lr_encoder"], timer, "unet")
        saved = (sampler_module.motion_guidance_step, video_module.clip_guidance_step)
        sampler_module.motion_guidance_step = timer.wrap("guidance", guidance_module.motion_guidance_step)
        video_module.clip_guidance_step = timer.wrap("guidance", guidance_module.clip_guidance_step)
        try:
            start = time.perf_counter()
            with torch.no_grad():
                if mode == "official":
                    official_module.official_sample(frames, flow, unet=unet, lr_encoder=encoder, first_stage=models["first_stage"],
                                                    context=context, steps=args.steps)
                else:
                    video_module.sample_video(frames, flow.motion_for(plan), plan, unet=unet, lr_encoder=encoder,
                                              first_stage=models["first_stage"], context=context,
                                              options=video_module.SamplingOptions(steps=args.steps))
            total = time.perf_counter() - start
        finally:
            sampler_module.motion_guidance_step, video_module.clip_guidance_step = saved
        unet_s, guide_s = timer.seconds.get("unet", 0.0), timer.seconds.get("guidance", 0.0)
        print(f"{mode:8s} sampling {total / args.frames:7.3f} s/frame | UNet+LR encoder {unet_s / total:5.1%} | "
              f"motion guidance {guide_s / total:5.1%} | other {1 - (unet_s + guide_s) / total:5.1%}")


if __name__ == "__main__":
    main()
