#!/usr/bin/env python3
"""How faithful the guidance preview is to the full run, and whether its sweep ranks strengths as the full runs do.

    python benchmarks/preview.py [--margins 0,8,16,24] [--frame-margins 2] [--strengths 0,5,10,20]
                                 [--frames 12] [--steps 13] [--json FILE] [--grid PNG]

On the trained stand-in (``benchmarks/standin/``) with the quality benchmark's held-out clip and
settings (``benchmarks/quality.py``: Big Buck Bunny degraded x4 to 128x128, 512x512 out, a 64x64 latent,
DIS flow through the pack's flow code, seed 0, fusion w 1, AdaIN colour fix, the stand-in's native
32-px latent tile; its decoder study's 12 frames and 13 steps):

* full runs of the default mode (``sample_video`` + ``decode_video``) at every strength;
* previews (``pipeline/preview.py``: the full plan on a box and a run of frames) of two regions, a
  frame corner and a box across the middle of the frame (across the native tile borders of the first,
  unshifted steps), over frames starting mid-clip, at every margin: PSNR and the largest difference
  (8-bit levels) of the preview's frames against the same box cut from the full run at the same strength;
* the sweep at every strength at the shipped margin: the region's warping error (x1000) against the
  full run's on the same box and on the whole frame of the shown frames (the orderings must agree).

The full runs sample every frame and decode the decoder windows that hold the shown frames, blended
as ``decode_frames`` blends them (the last window sits flush with the clip's end), so those frames
come out as ``decode_video`` makes them. "decoder
alone" decodes the full run's own latents through the preview's decoder (the frame around the box
filled with the LR latents, decoded in the full run's decode tiles; "box only": the box decoded on
its own): the part of the difference the decoder and the colour fix make, as opposed to the sampling.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

from _common import ROOT, machine

sys.path.insert(0, str(ROOT / "benchmarks" / "standin"))

import torch  # noqa: E402

import data as standin_data  # noqa: E402
import model as standin_model  # noqa: E402
from flow import DISFlow  # noqa: E402
from mgld_vsr.pipeline import defaults  # noqa: E402
from mgld_vsr.pipeline.frames import LRPlan  # noqa: E402
from mgld_vsr.pipeline.motion.field import clip_flows  # noqa: E402
from mgld_vsr.pipeline.motion.warping_error import warping_errors  # noqa: E402
from mgld_vsr.pipeline.preview import (PreviewRequest, RegionFlow, decode_region, preview_sweep,  # noqa: E402
                                      region_warping_error, strength_grid)
from mgld_vsr.pipeline.decoding.cfw import _finish, decode_window  # noqa: E402
from mgld_vsr.pipeline.sampling.region import RegionNoise, decoder_windows  # noqa: E402
from mgld_vsr.pipeline.preview import encode_with_draws  # noqa: E402
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, sample_video  # noqa: E402

TILE = standin_model.NATIVE_TILE
LR_SIZE = (128, 128)  # the quality benchmark's
MIN_SHORT_SIDE = 8 * TILE  # as quality.py: the stand-in's training size
START, COUNT = 5, 5  # shown frames 5..9: mid-clip, one decoder window (frames 3..11 sampled)
#: (name, output box x, y, w, h)
REGIONS = (("corner", (0, 0, 128, 128)), ("across tiles", (192, 192, 128, 128)))


def to8(frames: torch.Tensor) -> torch.Tensor:
    return (frames * 255.0).round().clamp(0, 255)


def psnr8(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((to8(a) - to8(b)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--margins", default="0,8,16", help="latent pixels around the region")
    parser.add_argument("--frame-margins", default=str(defaults.PREVIEW_FRAME_MARGIN))
    parser.add_argument("--strengths", default="0,5,10,20")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=13)
    parser.add_argument("--shipped-margin", type=int, default=defaults.PREVIEW_MARGIN)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--grid", type=pathlib.Path, help="write the sweep's grid picture (PNG) here")
    args = parser.parse_args()
    margins = [int(m) for m in args.margins.split(",")]
    frame_margins = [int(m) for m in args.frame_margins.split(",")]
    strengths = [float(s) for s in args.strengths.split(",")]
    torch.manual_seed(0)
    nets = standin_model.load()
    hr, lr = standin_data.benchmark_clip(args.frames, LR_SIZE)
    frames = torch.from_numpy(lr)
    plan = LRPlan.create(*LR_SIZE, scale=4, min_short_side=MIN_SHORT_SIDE)
    flow = clip_flows(DISFlow(), frames, plan)
    base = SamplingOptions(steps=args.steps, seed=defaults.SEED, tile=TILE)
    print(f"# {machine()}; torch {torch.__version__}; stand-in, held-out {standin_data.HELD_OUT_CLIP} frames "
          f"{standin_data.BENCHMARK_START}..{standin_data.BENCHMARK_START + args.frames - 1}, {LR_SIZE[0]}x{LR_SIZE[1]} -> "
          f"{plan.output_size[0]}x{plan.output_size[1]} (latent {plan.latent_size[0]}x{plan.latent_size[1]}), "
          f"{args.steps} steps, tile {TILE}, seed {defaults.SEED}, fusion w {defaults.FUSION_W:g}, colour fix "
          f"{defaults.COLOR_FIX}; shown frames {START}..{START + COUNT - 1}", flush=True)
    networks = {k: nets[k] for k in ("unet", "lr_encoder", "first_stage", "context")}
    motion = flow.motion_for(plan)
    windows = [w for w in decoder_windows(args.frames, nets["video_vae"].num_frames, flow.cuts)
               if set(w.frames) & set(range(START, START + COUNT))]
    full, full_latents, full_seconds = {}, {}, {}

    def full_run(s):
        """The default mode at strength ``s``: every frame sampled, the shown frames decoded as decode_video does."""
        began = time.perf_counter()
        with torch.no_grad():
            latents = sample_video(frames, motion, plan, **networks,
                                   options=SamplingOptions(**{**base.__dict__, "strength": s}))
            # decode_video's windows that hold the shown frames, decoded and blended as decode_frames does
            pending = {}
            for window in windows:
                lr_frames = plan.prepare(frames[list(window.frames)])
                out = decode_window(nets["video_vae"], latents.latents[list(window.frames)], lr_frames, defaults.FUSION_W,
                                    defaults.DECODE_TILE_PX // 8)
                for pos, (f, weight) in enumerate(zip(window.frames, window.weights)):
                    if weight > 0:
                        acc = pending.setdefault(f, [0.0, 0.0, lr_frames[pos]])
                        acc[0], acc[1] = acc[0] + out[pos] * weight, acc[1] + weight
        full[s] = torch.stack([_finish(pending[f][0] / pending[f][1], pending[f][2], plan, defaults.COLOR_FIX)
                               for f in range(START, START + COUNT)])
        full_latents[s] = latents
        full_seconds[s] = time.perf_counter() - began
        print(f"full run strength {s:g}: {full_seconds[s]:.1f} s (sampling {args.frames} frames, decoding "
              f"{sum(len(w.frames) for w in windows)})", flush=True)

    def preview(box, margin, frame_margin, values):
        request = PreviewRequest(START, COUNT, box, margin, frame_margin, tuple(values))
        with torch.no_grad():
            return preview_sweep(frames, flow, plan, SamplingOptions(**{**base.__dict__}), request, **networks,
                                 video_vae=nets["video_vae"], dec_w=defaults.FUSION_W, colorfix=defaults.COLOR_FIX,
                                 decode_tile=defaults.DECODE_TILE_PX // 8)

    def cut(clip, box):
        x, y, w, h = box
        return clip[:, y:y + h, x:x + w]

    reference = defaults.OFFICIAL_GUIDANCE_STRENGTH if defaults.OFFICIAL_GUIDANCE_STRENGTH in strengths else strengths[-1]
    full_run(reference)  # first: the faithfulness table needs only this one
    rows = []
    print(f"\nFaithfulness at strength {reference:g}: preview vs the same box of the full run (8-bit)")
    print(f"{'region':<14}{'margin':>7}{'frame margin':>13}{'latent box':>11}{'PSNR dB':>9}{'max diff':>9}{'seconds':>8}"
          f"{'decoder alone dB':>17}{'(box only)':>11}")
    for name, box in REGIONS:
        for frame_margin in frame_margins:
            for margin in margins:
                result = preview(box, margin, frame_margin, [reference])
                ours, theirs = result.clips[reference], cut(full[reference], box)
                row = {"region": name, "box": box, "margin": margin, "frame_margin": frame_margin,
                       "latent_box": list(result.extent.size), "frames_sampled": result.extent.frames,
                       "psnr_db": psnr8(ours, theirs), "max_diff_8bit": float((to8(ours) - to8(theirs)).abs().max()),
                       "seconds": result.seconds[reference] + result.setup_seconds}
                # the same box of the full run's latents through the preview's decoder: what the decoder and colour fix add
                e = result.extent
                with torch.no_grad():
                    noise = RegionNoise.draw(defaults.SEED, args.frames, plan.latent_size, args.steps, e)
                    surround = encode_with_draws(nets["first_stage"], frames[e.start:e.stop], plan, noise.posterior)
                    own = full_latents[reference].latents[e.start:e.stop][(...,) + e.area]
                    shown = list(range(START, START + COUNT))
                    alone = decode_region(own, e, shown, frames, plan, flow.cuts, nets["video_vae"], defaults.FUSION_W,
                                          defaults.COLOR_FIX, box, surround, defaults.DECODE_TILE_PX // 8)
                    boxed = decode_region(own, e, shown, frames, plan, flow.cuts, nets["video_vae"], defaults.FUSION_W,
                                          defaults.COLOR_FIX, box)
                row["decoder_only_psnr_db"] = psnr8(alone, theirs)
                row["decoder_only_box_alone_psnr_db"] = psnr8(boxed, theirs)
                rows.append(row)
                print(f"{name:<14}{margin:>7}{frame_margin:>13}{'x'.join(map(str, row['latent_box'])):>11}"
                      f"{row['psnr_db']:>9.2f}{row['max_diff_8bit']:>9.0f}{row['seconds']:>8.1f}"
                      f"{row['decoder_only_psnr_db']:>17.2f}{row['decoder_only_box_alone_psnr_db']:>11.2f}", flush=True)

    for s in strengths:
        if s not in full:
            full_run(s)
    name, box = REGIONS[1]
    sweep = preview(box, args.shipped_margin, defaults.PREVIEW_FRAME_MARGIN, strengths)
    print(f"\nSweep on '{name}' at margin {args.shipped_margin}: warping error x1000")
    print(f"{'strength':>9}{'preview':>9}{'full, box':>10}{'full, frame':>12}{'PSNR dB':>9}{'preview s':>10}{'full s':>8}")
    usefulness = []
    for s in strengths:
        box_error = region_warping_error(cut(full[s], box), flow, START, box)
        frame_errors = warping_errors(full[s], RegionFlow(flow, START, (0, 0, *plan.output_size[::-1]))) * 1000
        frame_error = float(frame_errors[torch.isfinite(frame_errors)].mean())
        usefulness.append({"strength": s, "preview": sweep.errors[s], "full_box": box_error, "full_frame": frame_error,
                           "psnr_db": psnr8(sweep.clips[s], cut(full[s], box)), "preview_s": sweep.seconds[s],
                           "full_s": full_seconds[s]})
        u = usefulness[-1]
        print(f"{s:>9g}{u['preview']:>9.3f}{u['full_box']:>10.3f}{u['full_frame']:>12.3f}{u['psnr_db']:>9.2f}"
              f"{u['preview_s']:>10.1f}{u['full_s']:>8.1f}")

    def order(key):
        return sorted(strengths, key=lambda s: next(u[key] for u in usefulness if u["strength"] == s))

    agree = {key: order("preview") == order(key) for key in ("full_box", "full_frame")}
    print(f"ordering by preview {order('preview')}; full on the box {order('full_box')} "
          f"({'agrees' if agree['full_box'] else 'DIFFERS'}); full frame {order('full_frame')} "
          f"({'agrees' if agree['full_frame'] else 'DIFFERS'}); sweep setup {sweep.setup_seconds:.1f} s")
    if args.grid:
        from PIL import Image

        grid = strength_grid(sweep, COUNT // 2)
        Image.fromarray((grid[0] * 255).round().byte().numpy()).save(args.grid)
        print(f"grid written to {args.grid}")
    if args.json:
        args.json.write_text(json.dumps({"faithfulness": rows, "sweep": usefulness, "ordering_agrees": agree,
                                         "settings": {"frames": args.frames, "steps": args.steps, "lr": LR_SIZE,
                                                      "shown": [START, START + COUNT], "tile": TILE},
                                         "torch": torch.__version__}, indent=2))


if __name__ == "__main__":
    main()
