#!/usr/bin/env python3
"""Seconds per frame of default vs official mode, and where the time goes, on the device this runs on.

    python benchmarks/speed.py [--frames 12] [--steps 10] [--lr 256x256] [--json FILE]   # CPU: tiny networks
    python benchmarks/speed.py --cpu ...     # the same where CUDA is at hand
    python benchmarks/speed.py [--json FILE] [--budget-s 420] [--steps 5] [--compile]    # on a CUDA device
    python benchmarks/speed.py --tiny [--json FILE]     # the CUDA sections on CPU with the tiny networks
    python benchmarks/speed.py --attention [--repeats 3]

Every figure times the same two functions, ``sample_video`` + ``decode_video`` (default mode) and
``official_sample`` + ``official_decode`` (official mode), on the same clip; only the networks, sizes
and what each figure splits out depend on the device.

On a CPU (the default without CUDA; ``--cpu`` where there is one): the fixture set's tiny networks sample and decode a random
clip of ``--frames`` frames of ``--lr`` pixels in both modes, each with its own tiling (official:
960-px image tiles with 64/32 latent tiles inside; default: shifted disjoint tiles and windows with
blended start and finishing steps, 768-px decode tiles). The flow is computed once and shared. The
default size, 256x256 -> 1024x1024, is the smallest where the official script needs several image
tiles: the case that decides whether 1080p is practical (issue #5's target). 12 frames are enough
for several temporal windows (and decoder windows) in both modes, and 10 steps include the default
mode's blended start and finishing steps at their share of a run. Time is reported as wall time and
as process CPU time (all threads): on a shared machine the CPU time is the steadier figure.

On CUDA (or with ``--tiny``, the same code on CPU with the tiny networks): full-size networks with
random weights (speed does not depend on the weights), each section recorded as JSON
(``_common.run_device_sections``; ``--budget-s`` stops it starting new ones):

* ``speed_512/<mode>/<dtype>``: s/frame at 128x128 -> 512x512 in fp16 and bf16, split into RAFT,
  first-stage encode, sampling (``--steps`` timed, scaled to 50) and CFW decode, against the paper's
  1.113 s/frame (A100);
* ``window_1080p``: s/frame of one 5-frame window at 270x480 -> 1080x1920 with the default settings;
* ``unet_tflops``: one UNet + LR encoder evaluation of a 64-px latent tile, its FLOPs (counted as
  ``flops.py`` does) over its time, and the fraction of the card's dense fp16 peak;
* ``fast_paths``: each measured with and without: SDPA backends, channels-last, ``torch.compile``
  (only with ``--compile``), the sampler's host round trip per window step, pinned host memory for
  window transfers, tiles batched 1 vs 4.

``--attention``: the UNet's largest attention calls (level-0 spatial self-attention of one 5-frame
window tile: 5 frames x 5 heads x tokens x 64; 4096 tokens at a 64-px latent tile, 9216 at 96 px, in
float32 as the pack attends), split into query chunks whose score matrix stays under
``SCORE_CHUNK_BYTES`` (what ``models/attention.py`` did even where a fused kernel runs) against the
one fused call it makes now; both give the same numbers (``tests/unit/test_attention_chunking.py``),
this measures what the split cost.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json

from _common import (DenoiseFlops, DeviceRun, Stopwatch, add_device_arguments, machine, one_tile_eval,
                     run_device_sections, synthetic_clip, tiny_models)

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from mgld_vsr.models.attention import attention, fused_kernel, query_chunk_rows
from mgld_vsr.pipeline import defaults, official
from mgld_vsr.pipeline.decoding.cfw import decode_video
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.field import clip_flows
from mgld_vsr.pipeline.sampling import loop
from mgld_vsr.pipeline.sampling.denoise import predict_eps
from mgld_vsr.pipeline.sampling.loop import WindowStep, encode_lr_latents, sample_video, window_eps
from mgld_vsr.pipeline.sampling.plan import SamplingOptions
from mgld_vsr.pipeline.sampling.tiling import blended_layout, shifted_layout

PAPER_S_PER_FRAME = 1.113  # MGLD-VSR paper, 128x128 -> 512x512, 50 steps, one A100
FULL_STEPS = defaults.OFFICIAL_STEPS
DECODE_TILE = defaults.DECODE_TILE_PX // 8  # the decoder node's default decode tile, in latent pixels
#: Dense fp16/bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
               "4090": 165.0, "3090": 71.0}
CPU_FRAMES, CPU_STEPS, CPU_LR = 12, 10, "256x256"  # the CPU comparison's defaults (see the module docstring)


def sample_and_decode(models: dict, frames: torch.Tensor, flow, plan: LRPlan, mode: str, steps: int, tile: int,
                      watch: Stopwatch, timed: dict | None = None) -> None:
    """Sample and decode ``frames`` in ``mode``, timed into ``watch`` as ``sample`` and ``decode``.
    ``timed`` replaces the UNet and LR encoder by wrappers that time their calls."""
    nets = {**models, **(timed or {})}
    with torch.no_grad():
        with watch.time("sample"):
            if mode == "official":  # encodes each segment's image tiles itself
                latents = official.official_sample(frames, flow, unet=nets["unet"], lr_encoder=nets["lr_encoder"],
                                                   first_stage=nets["first_stage"], context=nets["context"], steps=steps)
            else:
                latents = sample_video(frames, flow.motion_for(plan), plan, unet=nets["unet"],
                                       lr_encoder=nets["lr_encoder"], first_stage=nets["first_stage"],
                                       context=nets["context"], options=SamplingOptions(steps=steps, tile=tile))
        with watch.time("decode"):
            if mode == "official":
                official.official_decode(latents, frames, nets["video_vae"])
            else:
                decode_video(latents, frames, nets["video_vae"], tile=DECODE_TILE)


# ------------------------------------------------------------------------------- CPU: tiny networks

class TimedModule(nn.Module):
    """``inner`` with every forward call timed under ``key`` (its parameters stay visible to the pipeline)."""

    def __init__(self, inner: nn.Module, watch: Stopwatch, key: str):
        super().__init__()
        self.inner, self.forward = inner, watch.wrap(key, inner.forward)


@contextlib.contextmanager
def timed_guidance(watch: Stopwatch):
    """Time the motion guidance where each sampler calls it (the module attributes are put back after)."""
    saved = official.motion_guidance_step, loop.clip_guidance_step
    official.motion_guidance_step = watch.wrap("guidance", saved[0])
    loop.clip_guidance_step = watch.wrap("guidance", saved[1])
    try:
        yield
    finally:
        official.motion_guidance_step, loop.clip_guidance_step = saved


def compare_on_cpu(args: argparse.Namespace) -> dict:
    """Per-frame wall and CPU time of both modes on the tiny networks, split into sampling and decoding,
    with the UNet's and the guidance's shares (issue #5's speed target at 256x256)."""
    h, w = map(int, args.lr.split("x"))
    steps = args.steps or CPU_STEPS
    models = tiny_models()
    models["context"] = torch.randn(1, 77, models["unet"].config.context_dim, generator=torch.Generator().manual_seed(0))
    frames = (torch.rand(args.frames, h, w, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    plan = LRPlan.create(h, w, 4)
    with torch.no_grad():
        flow = clip_flows(models["raft"], frames, plan)
    print(f"# {machine()}")
    print(f"# clip {args.frames} frames {h}x{w} -> {plan.output_size[0]}x{plan.output_size[1]}, latent {plan.latent_size}, "
          f"{steps} steps, tiny models, float32")
    report = {}
    for mode in ("official", "default"):
        watch = Stopwatch()
        timed = {"unet": TimedModule(models["unet"], watch, "unet"),
                 "lr_encoder": TimedModule(models["lr_encoder"], watch, "unet")}
        with timed_guidance(watch):
            sample_and_decode(models, frames, flow, plan, mode, steps, SamplingOptions().tile, watch, timed)
        total, cpu_total = watch.wall["sample"] + watch.wall["decode"], watch.cpu["sample"] + watch.cpu["decode"]
        r = report[mode] = {"wall_s_per_frame": total / args.frames, "cpu_s_per_frame": cpu_total / args.frames,
                            "sampling_cpu_s_per_frame": watch.cpu["sample"] / args.frames,
                            "decoding_cpu_s_per_frame": watch.cpu["decode"] / args.frames,
                            "unet_share": watch.wall.get("unet", 0.0) / total,
                            "guidance_share": watch.wall.get("guidance", 0.0) / total}
        print(f"{mode:8s} {r['wall_s_per_frame']:8.2f} s/frame wall, {r['cpu_s_per_frame']:8.2f} CPU-s/frame "
              f"(sampling {r['sampling_cpu_s_per_frame']:.2f}, decoding {r['decoding_cpu_s_per_frame']:.2f} CPU-s) | "
              f"UNet+LR encoder {r['unet_share']:5.1%} | motion guidance {r['guidance_share']:5.1%} | "
              f"other {1 - r['unet_share'] - r['guidance_share']:5.1%}")
    speedup = report["official"]["wall_s_per_frame"] / report["default"]["wall_s_per_frame"]
    cpu_speedup = report["official"]["cpu_s_per_frame"] / report["default"]["cpu_s_per_frame"]
    # issue #5's target is for 256x256, the smallest size where the official script needs several image tiles
    target = f"issue #5 target >= 2.5x: {'PASS' if cpu_speedup >= 2.5 else 'FAIL'}" if (h, w) == (256, 256) else \
        "issue #5's target is for 256x256"
    print(f"default mode is {cpu_speedup:.2f}x faster per frame than official mode in CPU time, {speedup:.2f}x in wall "
          f"time ({target})")
    record = {"frames": args.frames, "steps": steps, "lr": [h, w], "modes": report, "speedup_cpu": cpu_speedup,
              "speedup_wall": speedup, "machine": machine()}
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
    return record


# ------------------------------------------------------------------------------- CUDA (or --tiny) sections

def stage_speed(models: dict, run: DeviceRun, lr: tuple[int, int], n: int, mode: str) -> dict:
    """Per-frame seconds of each stage of ``mode`` on an ``n``-frame clip; sampling scaled to 50 steps."""
    frames = synthetic_clip(n, lr)
    plan = LRPlan.create(*lr, 4, min_short_side=run.sizes.min_short_side)
    watch = run.stopwatch()
    with torch.no_grad():
        with watch.time("raft"):
            flow = clip_flows(models["raft"], frames, plan, cut_threshold=float("inf"))
        with watch.time("encode"):
            encode_lr_latents(models["first_stage"], frames, plan, torch.Generator().manual_seed(0))
    tile = min(run.sizes.tile, min(plan.latent_size) - min(plan.latent_size) % 8)
    sample_and_decode(models, frames, flow, plan, mode, run.steps, tile, watch)
    t = watch.wall
    sampling = max(t["sample"] - t["encode"], 0.0) * FULL_STEPS / run.steps  # both samplers encode inside
    out = {"raft_s_per_frame": t["raft"] / n, "encode_s_per_frame": t["encode"] / n,
           "sampling_s_per_frame_50_steps": sampling / n, "decode_s_per_frame": t["decode"] / n,
           "timed_steps": run.steps, "frames": n, "lr": list(lr)}
    out["total_s_per_frame"] = (t["raft"] + t["encode"] + sampling + t["decode"]) / n
    out["vs_paper_a100"] = out["total_s_per_frame"] / PAPER_S_PER_FRAME
    return out


def unet_throughput(models: dict, run: DeviceRun) -> dict:
    frames, tile = defaults.OFFICIAL_WINDOW, run.sizes.tile
    flops = DenoiseFlops(models["unet"].config, models["lr_encoder"].config)(frames, frames, tile, tile)
    with torch.no_grad():
        seconds = run.stopwatch().best(lambda: one_tile_eval(models, run.device, frames, tile), run.repeats)
    achieved = flops / seconds / 1e12
    name = torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return {"tile": tile, "frames": frames, "tflop_per_eval": flops / 1e12, "s_per_eval": seconds,
            "achieved_tflops": achieved, "device": name, "peak_tflops": peak,
            "fraction_of_peak": achieved / peak if peak else "unknown"}


@contextlib.contextmanager
def channels_last_weights(*modules):
    """4-D (convolution) weights in channels-last layout for the block (``Module.to`` refuses the
    networks' other ranks), then back."""
    params = [p for m in modules for p in m.parameters() if p.dim() == 4]
    for p in params:
        p.data = p.data.contiguous(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for p in params:
            p.data = p.data.contiguous()


def fast_paths(models: dict, run: DeviceRun, dtype: torch.dtype) -> dict:
    """Each fast path measured with and without, on the unit of work it speeds up."""
    out = {}
    device, repeats, watch = run.device, run.repeats, run.stopwatch()
    frames, tile = defaults.OFFICIAL_WINDOW, run.sizes.tile
    heads, width = (5, 64) if tile == 64 else (2, 32)
    q = torch.randn(frames, heads, tile * tile, width, device=device, dtype=dtype)
    backends = {}
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                          ("math", SDPBackend.MATH)):
        try:
            with sdpa_kernel(backend), torch.no_grad():
                backends[name] = watch.best(lambda: attention(q, q, q), repeats)
        except RuntimeError as exc:  # a backend this device / dtype lacks
            backends[name] = {"skipped": str(exc).splitlines()[0][:120]}
    with torch.no_grad():
        backends["default"] = watch.best(lambda: attention(q, q, q), repeats)
    out["sdpa_backends_s"] = {"shape": list(q.shape), "attention_dtype": "float32 (upcast)", **backends}

    def tile_eval():
        return one_tile_eval(models, device, frames, tile)

    with torch.no_grad():
        plain = watch.best(tile_eval, repeats)
        with channels_last_weights(models["unet"], models["lr_encoder"]):
            channels_last = watch.best(tile_eval, repeats)
    out["channels_last_s"] = {"without": plain, "with": channels_last}

    if run.compile:
        eager = models["unet"]
        compiled = torch.compile(eager)
        models["unet"] = compiled
        first = Stopwatch(device)
        with torch.no_grad(), first.time("first"):
            tile_eval()
        with torch.no_grad():
            out["torch_compile_s"] = {"without": plain, "with": watch.best(tile_eval, repeats),
                                      "first_call_s": first.wall["first"]}
        models["unet"] = eager
    else:
        out["torch_compile_s"] = {"skipped": "pass --compile"}

    # one window step as the sampler runs it (clip state in host RAM, copied to the device and back,
    # interrupt and blend on the host) against the same tiles with everything left on the device
    h = w = 2 * tile
    x_host, lr_host = torch.randn(frames, 4, h, w), torch.randn(frames, 4, h, w)
    shifted = shifted_layout(h, w, tile, 3)
    unit = WindowStep(x_host, lr_host, 500, shifted, 1)
    nets = {"unet": models["unet"], "lr_encoder": models["lr_encoder"], "context": models["context"]}
    x_dev, lr_dev = x_host.to(device), lr_host.to(device)
    with torch.no_grad():
        as_is = watch.best(lambda: window_eps(nets, unit), repeats)
        resident = watch.best(lambda: predict_eps(models["unet"], models["lr_encoder"], x_dev, lr_dev, 500,
                                                  models["context"], shifted, num_frames=frames), repeats)
    out["window_step_host_round_trip_s"] = {"with_host_state": as_is, "device_resident": resident}

    if device.type == "cuda":
        window = torch.randn(frames, 4, 136, 244)
        pinned = window.pin_memory()
        out["window_transfer_s"] = {
            "pageable": watch.best(lambda: window.to(device), repeats),
            "pinned_non_blocking": watch.best(lambda: pinned.to(device, non_blocking=True), repeats)}
    else:
        out["window_transfer_s"] = {"skipped": "needs CUDA"}

    batched = {}
    grid = blended_layout(h, w, tile, tile // 2)
    with torch.no_grad():
        for per_batch in (1, 4):
            batched[f"tiles_per_batch_{per_batch}"] = watch.best(lambda: predict_eps(
                models["unet"], models["lr_encoder"], x_dev, lr_dev, 500, models["context"], grid,
                tiles_per_batch=per_batch, num_frames=frames), repeats)
    out["batched_tiles_s"] = {"tiles": "fixed grid, half overlap", **batched}
    return out


def timing_sections(models: dict, run: DeviceRun, dtype: torch.dtype, first: bool) -> list:
    """Both modes at 128 -> 512 in ``dtype``; in the first dtype also the 1080p window."""
    label = str(dtype).replace("torch.", "")
    out = [(f"speed_512/{mode}/{label}", functools.partial(stage_speed, models, run, run.sizes.small, run.sizes.frames, mode))
           for mode in ("default", "official")]
    if first:
        out.append(("window_1080p", functools.partial(stage_speed, models, run, run.sizes.window,
                                                      defaults.OFFICIAL_WINDOW, "default")))
    return out


def throughput_sections(models: dict, run: DeviceRun, dtype: torch.dtype) -> list:
    """The UNet's achieved TFLOP/s and the fast paths, measured in one dtype."""
    return [("unet_tflops", functools.partial(unet_throughput, models, run)),
            ("fast_paths", functools.partial(fast_paths, models, run, dtype))]


def device_sections(models: dict, run: DeviceRun, dtype: torch.dtype, first: bool) -> list:
    return timing_sections(models, run, dtype, first) + (throughput_sections(models, run, dtype) if first else [])


# ------------------------------------------------------------------------------- --attention

def split_attention(q, k, v):
    """Attention in query chunks whose score matrix stays under ``SCORE_CHUNK_BYTES`` (the former way)."""
    rows = query_chunk_rows(q, k)
    out = torch.empty_like(q)
    for start in range(0, q.shape[-2], rows):
        out[..., start:start + rows, :] = F.scaled_dot_product_attention(q[..., start:start + rows, :], k, v)
    return out


def attention_split(tiles=(64, 96), repeats: int = 3) -> dict:
    """Seconds of the split and of the one fused call, per latent tile side; same outputs checked first."""
    print(f"machine: {machine()}")
    print(f"{'latent tile':<12}{'shape':<22}{'calls split':>12}{'split s':>9}{'one call s':>11}{'split/one':>10}")
    g = torch.Generator().manual_seed(0)
    watch, rows = Stopwatch(), {}
    for tile in tiles:
        shape = (defaults.OFFICIAL_WINDOW, 5, tile * tile, 64)
        q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
        assert fused_kernel(q, k, v)
        calls = -(-shape[2] // query_chunk_rows(q, k))
        with torch.no_grad():
            torch.testing.assert_close(attention(q, k, v), split_attention(q, k, v), rtol=1e-5, atol=1e-5)
            t_split = watch.best(lambda: split_attention(q, k, v), repeats)
            t_one = watch.best(lambda: attention(q, k, v), repeats)
        rows[str(tile)] = {"shape": list(shape), "calls_split": calls, "split_s": t_split, "one_call_s": t_one}
        print(f"{tile:<12}{str(list(shape)):<22}{calls:>12}{t_split:>9.3f}{t_one:>11.3f}{t_split / t_one:>9.2f}x")
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=CPU_FRAMES, help="CPU comparison: frames of the clip")
    parser.add_argument("--lr", default=CPU_LR, help="CPU comparison: LR frame size HxW (upsampled x4 to >= 512)")
    parser.add_argument("--cpu", action="store_true", help="the CPU comparison on the tiny networks even where CUDA is")
    parser.add_argument("--attention", action="store_true", help="only the attention split against one fused call")
    parser.add_argument("--repeats", type=int, default=3, help="--attention: best of this many timings")
    add_device_arguments(parser, f"denoising steps timed: CPU comparison {CPU_STEPS}; on CUDA 5, --tiny 1 "
                                 "(scaled to 50)")
    args = parser.parse_args(argv)
    if args.attention:
        report = attention_split(repeats=args.repeats)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return report
    if args.tiny or (torch.cuda.is_available() and not args.cpu):
        return run_device_sections(args, device_sections)
    return compare_on_cpu(args)


if __name__ == "__main__":
    main()
