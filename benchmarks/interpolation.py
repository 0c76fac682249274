#!/usr/bin/env python3
"""Frame interpolation: time and memory per interpolated frame at 1080p, and quality against known truth.

    python benchmarks/interpolation.py [--size 1080x1920] [--frames 3] [--multiplier 2] [--raft-resolution 540]
                                       [--figure docs/interpolation_before_after.png]

Timing streams ``--frames`` frames through ``interpolate_frames`` on the CPU, with the motion from
each source the node offers: the LR clip's flow (``ClipFlowMotion``: 1/4 size, as the flow node
computes it for an x4 upscale) and RAFT on the frames (``RAFTMotion``: the full-size RAFT
architecture with random weights, which cost the same as trained ones). Accelerator memory is
counted exactly for one pair on storage-free (meta) tensors with the pack's live-tensor counter
(``pipeline/memory/estimate.py``): the device holds one pair at a time, whatever the clip length. Host
memory is the process's peak RSS over what it held before the run (``resource.getrusage``).

Quality: PSNR of the frame at tau = 0.5 against the true midpoint, for a sub-pixel translation and
a textured square moving over a textured background, with the true flows (no RAFT): a cross-fade
(what a frame blend does), Super SloMo's linear flow approximation alone, and this pack's splatted
flows with occlusion-aware blending. ``--figure`` writes a before/after strip of the second scene.
"""
import argparse
import math
import resource
import time

from _common import machine

import torch

from mgld_vsr.models.loader import build_empty, official_config
from mgld_vsr.models.raft.raft import sintel_padding
from mgld_vsr.pipeline.motion.flow_ops import flow_warp
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.interpolation import interpolate_frames, linear_intermediate_flows, synthesize
from mgld_vsr.pipeline.memory.estimate import GiB, flow_peak, measure
from mgld_vsr.pipeline.motion.field import ClipFlow
from mgld_vsr.pipeline.motion.pairs import ClipFlowMotion, PairMotion, RAFTMotion, raft_working_size
from interpolation_scenes import square_flows, square_scene, waves  # tests/: the scenes the tests check


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def smooth_field(n, channels, h, w, scale, seed):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, channels, max(2, h // 32), max(2, w // 32), generator=g) * scale
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


def test_clip(frames, h, w):
    """A panning, slightly warping texture: every frame different, as a real clip's are."""
    texture = smooth_field(1, 3, h + 64, w + 64, 0.25, 0).add(0.5).clamp(0, 1)
    return [texture[0, :, 8 * i:8 * i + h, 5 * i:5 * i + w].permute(1, 2, 0).contiguous() for i in range(frames)]


def lr_clip_flow(frames, h, w):
    """The flow node's output for the LR clip (h/4 x w/4) of these frames: smooth random motion."""
    plan = LRPlan.create(h // 4, w // 4, 4.0)
    fh, fw = plan.flow_size
    forward = smooth_field(frames - 1, 2, fh, fw, 3.0, 1)
    return ClipFlow(-forward, forward, forward[:1] * 0, forward[:1] * 0, plan,
                    torch.zeros(frames - 1, dtype=torch.bool), torch.zeros(frames - 1))


def time_stream(frames, multiplier, motion, label):
    inserted = (len(frames) - 1) * (multiplier - 1)
    before = peak_rss()
    start = time.perf_counter()
    with torch.no_grad():
        count = sum(1 for _ in interpolate_frames(iter(frames), multiplier, motion))
    seconds = time.perf_counter() - start
    print(f"| {label} | {seconds / inserted:.2f} s | {len(frames)} -> {count} | "
          f"{max(0, peak_rss() - before) / 2 ** 20:.0f} MiB |")


def device_peak(h, w, motion_size, multiplier):
    """Bytes one pair needs on the device: two frames, the pair's motion, ``m - 1`` frames made one after another."""
    mh, mw = motion_size

    def run():
        frame0, frame1 = (torch.empty(1, 3, h, w, device="meta") for _ in range(2))
        flow = torch.empty(1, 2, mh, mw, device="meta")
        motion = PairMotion.from_flows(flow, flow)
        for k in range(1, multiplier):
            synthesize(frame0, frame1, motion, k / multiplier)

    return measure([], run)[1]


def quality(figure=None):
    def psnr(a, b):
        return 10 * math.log10(1 / float(((a - b) ** 2).mean()))

    h, w, u, v = 120, 200, 5.3, -2.7
    translation = (waves(h, w, 0, 0), waves(h, w, u, v), waves(h, w, u / 2, v / 2),
                   torch.tensor([u, v]).view(1, 2, 1, 1).expand(1, 2, h, w))
    square = dict(h=h, w=w, x0=50, top=30, side=60, speed=24)
    scenes = {"sub-pixel translation (5.3, -2.7) px": (*translation[:3], translation[3], -translation[3]),
              "square moving 24 px over a background": (*(square_scene(t, **square) for t in (0, 1, 0.5)),
                                                        *square_flows(**square))}
    inner = (..., slice(12, -12), slice(12, -12))
    print("\n| scene (PSNR at tau = 0.5, dB, 12 px border left out) | cross-fade | linear flows (Super SloMo eq. 4) "
          "| splatted flows + occlusion (this pack) |\n|---|---|---|---|")
    for name, (frame0, frame1, truth, flow_01, flow_10) in scenes.items():
        motion = PairMotion.from_flows(flow_01.contiguous(), flow_10.contiguous())
        fade = (frame0 + frame1) / 2
        flow_t0, flow_t1 = linear_intermediate_flows(motion, 0.5)
        linear = (flow_warp(frame0, flow_t0) + flow_warp(frame1, flow_t1)) / 2
        ours = synthesize(frame0, frame1, motion, 0.5)
        print(f"| {name} | {psnr(fade[inner], truth[inner]):.1f} | {psnr(linear[inner], truth[inner]):.1f} | "
              f"{psnr(ours[inner], truth[inner]):.1f} |")
        if figure and name.startswith("square"):
            write_strip(figure, [frame0, fade, linear, ours, truth, frame1])


def write_strip(path, images):
    from PIL import Image  # comes with ComfyUI; only this figure needs it

    gap = torch.ones(1, 3, images[0].shape[-2], 4)
    strip = torch.cat([x for image in images for x in (image, gap)][:-1], dim=-1)
    pixels = (strip[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(pixels).resize((pixels.shape[1] * 2, pixels.shape[0] * 2), Image.NEAREST).save(path)
    print(f"\nwrote {path}: frame 0 | cross-fade | linear flows | this pack | truth | frame 1 (tau = 0.5)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1080x1920")
    parser.add_argument("--frames", type=int, default=3, help="frames streamed per motion source")
    parser.add_argument("--multiplier", type=int, default=2)
    parser.add_argument("--raft-resolution", type=int, default=540)
    parser.add_argument("--figure", help="write the before/after strip of the moving-square scene here (PNG)")
    args = parser.parse_args()
    h, w = (int(x) for x in args.size.split("x"))
    m = args.multiplier
    print(f"# Frame interpolation, {h}x{w}, x{m}; {machine()}")
    frames = test_clip(args.frames, h, w)
    clip_flow = lr_clip_flow(args.frames, h, w)
    raft = build_empty("raft", official_config("raft")).to_empty(device="cpu").eval()
    for module in raft.modules():  # PyTorch's default initialisation: random weights cost what trained ones do
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    working = raft_working_size(h, w, args.raft_resolution)
    print("\n| motion | CPU time per interpolated frame | frames in -> out | host RAM (peak RSS growth) |\n|---|---|---|---|")
    time_stream(frames, m, ClipFlowMotion(clip_flow), f"LR clip's flow ({clip_flow.plan.flow_content_size[0]}x"
                                                      f"{clip_flow.plan.flow_content_size[1]}), reused")
    time_stream(frames, m, RAFTMotion(raft, args.raft_resolution), f"RAFT at {working[0]}x{working[1]} "
                                                                    f"({raft.config.iters} iterations)")
    left, right, top, bottom = sintel_padding(*working)
    raft_bytes = flow_peak(raft, 2, working[0] + top + bottom, working[1] + left + right)
    print(f"\nAccelerator memory for one pair, float32 (counted on meta tensors): interpolation "
          f"{device_peak(h, w, clip_flow.plan.flow_content_size, m) / GiB:.2f} GiB with the LR flow, "
          f"{device_peak(h, w, working, m) / GiB:.2f} GiB with RAFT's; RAFT itself (both directions, weights "
          f"included) {raft_bytes / GiB:.2f} GiB.")
    quality(args.figure)


if __name__ == "__main__":
    main()
