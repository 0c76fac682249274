#!/usr/bin/env python3
"""What a missed scene cut does to the output: the stand-in's default mode across a same-colour cut.

    python benchmarks/cuts_effect.py [--frames 5] [--steps 10] [--picture PNG]

The clip: ``--frames`` frames of the held-out Big Buck Bunny shot (from frame 8), then ``--frames`` frames
of the same shot 82 frames later: the same grass and sky, so the colour histogram does not change (its
jump stays under 0.5), but the bunny has moved on: a jump cut. The stand-in (``benchmarks/standin``) runs
the pack's default mode on it (``sample_video`` + ``decode_video``, DIS flow through ``clip_flows``, as
``benchmarks/quality.py`` runs it) three ways: with the histogram detector (the cut is missed), with
TransNetV2 (found), and each shot alone (the reference: nothing can leak). For the frames on either side
of the cut it prints PSNR against the HR frames and the mean difference from the shot processed alone,
and it saves a picture: HR before and after the cut, then the first frame after the cut from each run.
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import ROOT, machine  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks" / "standin"))
import torch  # noqa: E402

import data as standin_data  # noqa: E402
import model as standin_model  # noqa: E402
from flow import DISFlow  # noqa: E402
from mgld_vsr.pipeline import defaults  # noqa: E402
from mgld_vsr.pipeline.decoding.cfw import decode_video  # noqa: E402
from mgld_vsr.pipeline.frames import LRPlan  # noqa: E402
from mgld_vsr.pipeline.motion.field import clip_flows  # noqa: E402
from mgld_vsr.pipeline.sampling.loop import sample_video  # noqa: E402
from mgld_vsr.pipeline.sampling.plan import SamplingOptions  # noqa: E402

LR = (128, 128)  # RAFT's (hence the flow code's) minimum, as benchmarks/quality.py --quick
FIRST, LATER = 8, 90  # frames of the held-out shot: the two moments joined by the cut


def run(nets, frames: torch.Tensor, detector: str, steps: int) -> torch.Tensor:
    plan = LRPlan.create(*LR, scale=4, min_short_side=8 * standin_model.NATIVE_TILE)
    flow = clip_flows(DISFlow(), frames, plan, cut_detector=detector)
    options = dataclasses.replace(SamplingOptions(), steps=steps, seed=defaults.SEED, tile=standin_model.NATIVE_TILE)
    with torch.no_grad():
        latents = sample_video(frames, flow.motion_for(plan), plan, unet=nets["unet"], lr_encoder=nets["lr_encoder"],
                               first_stage=nets["first_stage"], context=nets["context"], options=options)
        video = decode_video(latents, frames, nets["video_vae"], dec_w=defaults.FUSION_W)
    found = [(b.kind, b.first) for b in flow.shots.boundaries]
    return video.float().clamp(0, 1), found


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp(min=1e-10)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5, help="frames of each shot")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--picture", help="save the before/after picture here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.frames
    hr_a, lr_a = standin_data.benchmark_clip(n, LR, start=FIRST)
    hr_b, lr_b = standin_data.benchmark_clip(n, LR, start=LATER)
    frames = torch.from_numpy(np.concatenate([lr_a, lr_b]))
    truth = torch.from_numpy(np.concatenate([hr_a, hr_b])).float() / 255
    nets = standin_model.load()
    print(f"# {machine()}; stand-in, held-out frames {FIRST}..{FIRST + n - 1} then {LATER}..{LATER + n - 1} "
          f"(cut after frame {n - 1}), LR {LR[0]}x{LR[1]} -> x4, {args.steps} steps, default mode")
    start = time.perf_counter()
    outputs = {}
    for detector in ("histogram", "transnetv2"):
        outputs[detector], found = run(nets, frames, detector, args.steps)
        print(f"{detector:10s}: boundaries found {found}")
    alone_a, _ = run(nets, frames[:n], "none", args.steps)
    alone_b, _ = run(nets, frames[n:], "none", args.steps)
    alone = torch.cat([alone_a, alone_b])
    print(f"{'run':10s} {'PSNR last before':>17s} {'PSNR first after':>17s} {'|diff| vs alone, before':>24s} "
          f"{'after':>7s} {'whole shot after':>17s}")
    for name, video in [*outputs.items(), ("alone", alone)]:
        before, after = n - 1, n
        print(f"{name:10s} {psnr(video[before], truth[before]):17.2f} {psnr(video[after], truth[after]):17.2f} "
              f"{float((video[before] - alone[before]).abs().mean() * 255):24.2f} "
              f"{float((video[after] - alone[after]).abs().mean() * 255):7.2f} "
              f"{float((video[n:] - alone[n:]).abs().mean() * 255):17.2f}")
    print(f"({time.perf_counter() - start:.0f} s; differences in 8-bit levels)")
    if args.picture:
        from PIL import Image, ImageDraw

        tiles = [("HR before the cut", truth[n - 1]), ("HR after the cut", truth[n]),
                 ("histogram (cut missed)", outputs["histogram"][n]), ("TransNetV2 (cut found)", outputs["transnetv2"][n]),
                 ("shot processed alone", alone[n])]
        size = truth.shape[1]
        sheet = Image.new("RGB", (len(tiles) * (size + 8), size + 28), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (label, image) in enumerate(tiles):
            sheet.paste(Image.fromarray((image.numpy() * 255).round().astype(np.uint8)), (k * (size + 8), 24))
            draw.text((k * (size + 8) + 4, 6), label, fill="black")
        sheet.save(args.picture)
        print(f"picture: {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
