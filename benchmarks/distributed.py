#!/usr/bin/env python3
"""On paper: data moved vs compute per denoising step when one clip is spread over G GPUs (issue #15).

    python benchmarks/distributed.py [--tflops 100] [--frames 300] [--steps 50] [--gpus 2 8 32] [--links 10 100]

Model of the Ray executor (``pipeline/ray_executor.py``). Per denoising step the coordinator sends
every temporal window its slices of the clip state (noisy latents + LR latents, float32) and gets
the window's noise prediction back (float32); it runs the DDPM step, then sends every guidance
chunk (17 frames of latents; each worker received the clip's motion once) and adds the gradients
that come back.
Each of the two phases ends with a barrier. All traffic goes through the coordinator's link (full
duplex: sending and receiving overlap); two units per worker are kept in flight, so transfers hide
behind compute, except the first unit out and the last one back.

    step time  = max(UNet compute, window link) + one window's round trip + guidance link + coordinator
    UNet       = ceil(windows / G) x (UNet + LR-encoder work of one window) / GPU rate
    efficiency = (the step's UNet work on one GPU / G) / step time

UNet work is counted exactly on the full-size networks (``benchmarks/flops.py``: built on the meta
device, every step's windows and tiles of default mode enumerated); the GPU rate is an assumption
(``--tflops``, sustained, not peak). The guidance chunks' GPU time (a few memory-bound passes over
latent-sized tensors) is taken as negligible next to the UNet; their data is counted. The
coordinator's own work (drawing the noise, DDPM step and guidance update on the clip, host RAM) is
measured here as CPU time on one core and scaled to the clip (``--no-measure`` leaves it out), and
so is, for comparison, the guidance run on that CPU. The decoder stage is modelled the same way per window (latents + prepared LR frames
out, float32 frames back). Nothing here needs a GPU or weights.
"""
import argparse
import math
import os
import time

from _common import machine

import torch

from flops import Networks, default_mode_work, default_plan
from mgld_vsr.pipeline import defaults
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.sampling.guidance import GUIDANCE_PAIRS_PER_CHUNK, clip_guidance_step
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.sampling.plan import SamplingPlan
from mgld_vsr.pipeline.sampling.schedule import ddpm_step, respaced_schedule
from mgld_vsr.pipeline.decoding.cfw import DECODE_WINDOW_OVERLAP
from mgld_vsr.pipeline.sampling.windows import plan_windows

CASES = {"1080p": (270, 480), "4K": (540, 960)}
FLOAT32, FP16 = 4, 2
DECODE_WINDOW = defaults.OFFICIAL_WINDOW  # the video VAE's window (its overlap: the decoder's own DECODE_WINDOW_OVERLAP)


def windows_per_step(plan: SamplingPlan) -> tuple[float, float]:
    """Average windows per step and frames per window of the plan's steps."""
    count = plan.window_visits / len(plan.steps)
    return count, sum(step.window_frames for step in plan.steps) / plan.window_visits


def coordinator_seconds_per_frame(latent: tuple[int, int], frames: int = 9, repeat: int = 3) -> tuple[float, float]:
    """Measured per frame: the coordinator's own work (gathering eps, drawing the step's noise, DDPM step,
    guidance update) and the guidance gradient itself (what the workers take over), float32 on one CPU core.

    CPU time of this process (``time.process_time``, best of ``repeat``), so other jobs on a shared machine
    do not inflate it."""
    h, w = latent
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(frames, 4, h, w, generator=generator)
    eps, grad = torch.randn_like(x), torch.randn_like(x)
    motion = MotionField(torch.randn(frames - 1, 2, h, w), torch.randn(frames - 1, 2, h, w),
                         torch.zeros(frames - 1, 1, h, w), torch.zeros(frames - 1, 1, h, w),
                         torch.zeros(frames - 1, dtype=torch.bool))
    schedule = respaced_schedule(defaults.OFFICIAL_STEPS)
    step, strength = defaults.OFFICIAL_STEPS // 2, defaults.OFFICIAL_GUIDANCE_STRENGTH
    own, guidance = float("inf"), float("inf")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(repeat):
        with torch.inference_mode():
            start = time.process_time()
            eps_sum = torch.zeros_like(x).index_add_(0, torch.arange(frames), eps)  # gathering the windows' eps
            noise = torch.randn(x.shape, generator=generator)  # the clip's noise stream is drawn here
            y = ddpm_step(schedule, step, x, eps_sum, noise)
            y = y - (-strength) * schedule.log_variance(step) * grad  # the update with the gathered gradient
            middle = time.process_time()
            clip_guidance_step(y, schedule, step, motion, strength, pairs_per_chunk=GUIDANCE_PAIRS_PER_CHUNK)
            end = time.process_time()
        own, guidance = min(own, middle - start), min(guidance, end - middle)
    torch.set_num_threads(threads)
    return own / frames, guidance / frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=100.0, help="assumed sustained TFLOP/s of one GPU (fp16)")
    parser.add_argument("--frames", type=int, default=300, help="frames of the clip (300 = 10 s at 30 fps)")
    parser.add_argument("--steps", type=int, default=defaults.OFFICIAL_STEPS)
    parser.add_argument("--gpus", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--links", type=float, nargs="+", default=[10.0, 100.0], help="coordinator link, Gb/s")
    parser.add_argument("--no-measure", action="store_true", help="leave the coordinator's own work out")
    args = parser.parse_args()
    print(f"torch.__version__ = {torch.__version__}")
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    rate = args.tflops * 1e12
    print(f"clip {args.frames} frames, {args.steps} steps, default mode; GPU rate assumed {args.tflops:g} TFLOP/s "
          f"sustained; links {', '.join(f'{b:g}' for b in args.links)} Gb/s at the coordinator\n")
    nets = Networks()
    rows = []
    for name, (H, W) in CASES.items():
        plan = LRPlan.create(H, W, scale=4)
        h, w = plan.latent_size
        sampling = default_plan(h, w, args.steps, args.frames)
        count, window_frames = windows_per_step(sampling)  # the same at every size: windows do not depend on it
        unet = default_mode_work(nets, sampling) / args.steps  # FLOP per frame per step
        window_flop = unet * window_frames
        latent_bytes = 4 * h * w * FLOAT32  # one frame's latent, float32
        sent, back = 2 * window_frames * latent_bytes, window_frames * latent_bytes
        chunk_frames = (GUIDANCE_PAIRS_PER_CHUNK + 1) / GUIDANCE_PAIRS_PER_CHUNK  # frames sent per pair
        guidance_sent = guidance_back = args.frames * chunk_frames * latent_bytes  # latents out, gradients back
        motion_bytes = args.frames * 6 * h * w * FLOAT32  # 2 flows + 2 masks per pair, once per worker and run
        own, on_cpu = (0.0, 0.0) if args.no_measure else coordinator_seconds_per_frame((h, w))
        coordinator = own * args.frames
        Hp, Wp = plan.padded
        decode_windows = len(plan_windows(args.frames, DECODE_WINDOW, DECODE_WINDOW_OVERLAP, None))
        decode_flop = DECODE_WINDOW * (nets.video_vae_encode(Hp, Wp) + nets.video_vae_decode(Hp, Wp))  # per window
        decode_sent = DECODE_WINDOW * (latent_bytes + 3 * Hp * Wp * FP16)  # float32 latents + fp16 prepared LR frames
        decode_back = DECODE_WINDOW * 3 * Hp * Wp * FLOAT32
        print(f"{name}: LR {H}x{W} -> {plan.output_size[0]}x{plan.output_size[1]}, latent {h}x{w}; "
              f"{count:.1f} windows of {window_frames:.2f} frames per step")
        print(f"  UNet + LR encoder {unet / 1e12:.2f} TFLOP per frame per step = {unet / rate * 1e3:.0f} ms on one GPU; "
              f"per window {sent / 1e6:.1f} MB out, {back / 1e6:.1f} MB back")
        print(f"  guidance chunks: {guidance_sent / 1e6:.0f} MB out, {guidance_back / 1e6:.0f} MB back per step; "
              f"the clip's motion, {motion_bytes / 1e6:.0f} MB, goes to each worker once")
        if not args.no_measure:
            print(f"  coordinator (gather eps, draw noise, DDPM step, guidance update; one CPU core, measured): {own * 1e3:.1f} ms per frame = "
                  f"{coordinator:.2f} s per step; the guidance gradient on that CPU would add {on_cpu * 1e3:.1f} ms "
                  f"per frame = {on_cpu * args.frames:.1f} s per step")
        print(f"  decoder: {decode_windows} windows of {DECODE_WINDOW} frames (overlap {DECODE_WINDOW_OVERLAP}), "
              f"{decode_flop / 1e12:.2f} TFLOP = {decode_flop / rate * 1e3:.0f} ms per window on one GPU; "
              f"{decode_sent / 1e6:.0f} MB out, {decode_back / 1e6:.0f} MB back per window")
        for gpus in args.gpus:
            for gbit in args.links:
                link_rate = gbit * 1e9 / 8
                compute = math.ceil(count / gpus) * window_flop / rate
                link = count * max(sent, back) / link_rate
                guidance = max(guidance_sent, guidance_back) / link_rate
                step = max(compute, link) + (sent + back) / link_rate + guidance + coordinator
                ideal = count * window_flop / rate / gpus
                decode_compute = math.ceil(decode_windows / gpus) * decode_flop / rate
                decode_link = decode_windows * max(decode_sent, decode_back) / link_rate
                decode = max(decode_compute, decode_link) + (decode_sent + decode_back) / link_rate
                rows.append((name, gpus, gbit, (count * (sent + back) + guidance_sent + guidance_back) / 1e9, compute,
                             link + guidance, coordinator, step,
                             ideal / step, decode, decode_windows * decode_flop / rate / gpus / decode))
        print()
    head = (f"{'':<6}{'GPUs':>5}{'Gb/s':>6}{'GB/step':>9}{'compute s':>11}{'link s':>8}{'coord s':>9}{'step s':>8}"
            f"{'sampling eff':>14}{'decode s':>10}{'decode eff':>12}")
    print(head)
    print("-" * len(head))
    for name, gpus, gbit, gb, compute, link, coord, step, eff, decode, deff in rows:
        print(f"{name:<6}{gpus:>5}{gbit:>6g}{gb:>9.2f}{compute:>11.2f}{link:>8.2f}{coord:>9.2f}{step:>8.2f}"
              f"{eff:>13.0%}{decode:>10.1f}{deff:>11.0%}")
    print("\n  GB/step: sent + received by the coordinator per denoising step; compute: the busiest GPU's UNet share;")
    print("  link: the coordinator's link time (windows: pipelined with compute; guidance chunks); coord: its own work;")
    print("  decode s: the whole clip's decoding; eff: ideal (one GPU's time / GPUs) over modelled time.")


if __name__ == "__main__":
    main()
