#!/usr/bin/env python3
"""GPU speed, memory and fast paths of the pack on full-size random-weight networks, in one prepared run.

    python benchmarks/gpu.py [--json FILE] [--budget-s 420] [--steps 5] [--compile]
    python benchmarks/gpu.py --tiny [--json FILE]     # the same code on CPU with the tiny fixture networks

GPU time is scarce here (minutes at a time), so this one script turns such a window into every
figure issue #14 asks for, and stops starting new sections when ``--budget-s`` is spent (they are
recorded as skipped). Speed does not depend on the weights, so the networks are built from the
official configs and filled with small random values (no download, no checkpoint). Sampling is
timed over ``--steps`` denoising steps and scaled to 50 (the start and finishing steps of the
default mode are a few of 50 and cost more; the scaled figure says so). Sections:

* ``speed_512``: s/frame at 128x128 -> 512x512, default and official mode, fp16 and bf16, split into
  RAFT, first-stage encode, sampling (50 steps, scaled) and CFW decode, against the paper's 1.113 s/frame (A100);
* ``window_1080p``: s/frame of one 5-frame window at 270x480 -> 1080x1920 with the default settings;
* ``memory``: peak ``torch.cuda.max_memory_allocated`` of each stage at 1080p and 4K (activations
  above what was resident before the stage) against ``pipeline/memory.py``'s estimate of the same;
* ``unet_tflops``: one UNet + LR encoder evaluation of a 64-px latent tile, its FLOPs (counted as
  ``benchmarks/flops.py`` does) over its time, and the fraction of the card's dense fp16 peak;
* ``fast_paths``: each measured with and without: SDPA backends, channels-last, ``torch.compile``
  (only with ``--compile``), the sampler's host round trip per window step, pinned host memory for
  window transfers, tiles batched 1 vs 4.

Where a measurement needs CUDA (memory, pinned copies, flash / memory-efficient kernels) and none
is there, it is recorded as ``{"skipped": "needs CUDA"}`` and the estimate still printed.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import pathlib
import time

from _common import ROOT, machine, tiny_models

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from mgld_vsr.models.attention import attention
from mgld_vsr.models.loader import build_empty, official_config
from mgld_vsr.pipeline.memory import estimate
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.sampling.guidance import GUIDANCE_PAIRS_PER_CHUNK, clip_guidance_step
from mgld_vsr.pipeline.motion.field import clip_flows, flow_chunk_for
from mgld_vsr.pipeline.official import official_decode, official_sample
from mgld_vsr.pipeline.sampling.denoise import predict_eps
from mgld_vsr.pipeline.sampling.schedule import respaced_schedule
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, WindowStep, encode_lr_latents, sample_video, window_eps
from mgld_vsr.pipeline.decoding.cfw import decode_video, decode_window

PAPER_S_PER_FRAME = 1.113  # MGLD-VSR paper, 128x128 -> 512x512, 50 steps, one A100
FULL_STEPS = 50
#: Dense fp16/bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
               "4090": 165.0, "3090": 71.0}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What each section runs on: full-size cases on a GPU, small ones with ``--tiny``."""

    small: tuple[int, int]  # the paper's 128x128 case
    window: tuple[int, int]  # the 1080p window case
    memory: tuple[tuple[int, int], ...]  # 1080p and 4K
    frames: int  # frames of the 512-px clip
    tile: int  # latent tile of the default mode
    min_short_side: int


FULL = Sizes(small=(128, 128), window=(270, 480), memory=((270, 480), (540, 960)), frames=10, tile=64, min_short_side=512)
#: RAFT needs 512-px model frames (128-px flow input), so even the tiny run samples 512-px frames.
TINY = Sizes(small=(128, 128), window=(128, 192), memory=((128, 192),), frames=5, tile=32, min_short_side=512)


class Clock:
    """Wall time of a block, with the device synchronised around it (kernels are asynchronous)."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def time(self, into: dict, key: str):
        self.sync()
        start = time.perf_counter()
        yield
        self.sync()
        into[key] = into.get(key, 0.0) + time.perf_counter() - start


def random_network(name: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A full-size network with small random weights (variance shrinking layer by layer: no overflow)."""
    model = build_empty(name, official_config(name)).to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.5 / math.sqrt(p[0].numel()), generator=g)
            else:
                p.fill_(1.0 if pname.endswith("weight") else 0.0)
        for bname, b in model.named_buffers():
            b.fill_(1 if bname.endswith("running_var") else 0)
    return model.to(dtype if name != "raft" else torch.float32).eval()


def networks(tiny: bool, device: torch.device, dtype: torch.dtype) -> dict:
    if tiny:
        models = {k: v.to(device) for k, v in tiny_models().items()}
        for k in ("unet", "lr_encoder", "first_stage", "video_vae"):
            models[k] = models[k].to(dtype)
    else:
        models = {k: random_network(k, device, dtype) for k in ("unet", "lr_encoder", "first_stage", "video_vae", "raft")}
    context_dim = models["unet"].config.context_dim
    models["context"] = torch.randn(1, 77, context_dim, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    return models


def clip(n: int, lr: tuple[int, int]) -> torch.Tensor:
    """A moving synthetic clip (speed does not depend on the content)."""
    h, w = lr
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frames = [torch.stack([(x + 3 * t) % 256, (y + 2 * t) % 256, (x + y + t) % 256], -1) for t in range(n)]
    return torch.stack(frames).to(torch.uint8)


def speed(models: dict, clock: Clock, lr, n: int, steps: int, sizes: Sizes, mode: str) -> dict:
    """Per-frame seconds of each stage of ``mode`` on an ``n``-frame clip; sampling scaled to 50 steps."""
    frames = clip(n, lr)
    plan = LRPlan.create(*lr, 4, min_short_side=sizes.min_short_side)
    t: dict = {}
    with torch.no_grad():
        with clock.time(t, "raft"):
            flow = clip_flows(models["raft"], frames, plan, cut_threshold=float("inf"))
        with clock.time(t, "encode"):
            encode_lr_latents(models["first_stage"], frames, plan, torch.Generator().manual_seed(0))
        if mode == "official":
            with clock.time(t, "sample"):  # encodes each segment's image tiles itself
                latents = official_sample(frames, flow, unet=models["unet"], lr_encoder=models["lr_encoder"],
                                          first_stage=models["first_stage"], context=models["context"], steps=steps)
            with clock.time(t, "decode"):
                official_decode(latents, frames, models["video_vae"])
        else:
            tile = min(sizes.tile, min(plan.latent_size) - min(plan.latent_size) % 8)
            with clock.time(t, "sample"):  # includes its own encode
                latents = sample_video(frames, flow.motion_for(plan), plan, unet=models["unet"],
                                       lr_encoder=models["lr_encoder"], first_stage=models["first_stage"],
                                       context=models["context"], options=SamplingOptions(steps=steps, tile=tile))
            with clock.time(t, "decode"):
                decode_video(latents, frames, models["video_vae"], tile=96)
    sampling = max(t["sample"] - t["encode"], 0.0) * FULL_STEPS / steps
    out = {"raft_s_per_frame": t["raft"] / n, "encode_s_per_frame": t["encode"] / n,
           "sampling_s_per_frame_50_steps": sampling / n, "decode_s_per_frame": t["decode"] / n,
           "timed_steps": steps, "frames": n, "lr": list(lr)}
    out["total_s_per_frame"] = (t["raft"] + t["encode"] + sampling + t["decode"]) / n
    out["vs_paper_a100"] = out["total_s_per_frame"] / PAPER_S_PER_FRAME
    return out


def stage_memory(models: dict, device: torch.device, dtype: torch.dtype, lr, sizes: Sizes) -> dict:
    """Measured peak bytes above the resident ones, per stage of one window, against the estimate."""
    plan = LRPlan.create(*lr, 4, min_short_side=sizes.min_short_side)
    h, w = plan.latent_size
    hp, wp = plan.padded
    tile = min(sizes.tile, h - h % 8, w - w % 8)
    window = models["video_vae"].num_frames
    frames = clip(window, lr)
    weights = {k: estimate.measure([m], lambda: None)[0] for k, m in models.items() if isinstance(m, torch.nn.Module)}
    flow_pairs = 2 * (min(window, flow_chunk_for(plan)) - 1)
    decode_tile = min(96, h, w)
    stages = {
        "raft": (estimate.flow_peak(models["raft"], flow_pairs, *plan.flow_size) - weights["raft"],
                 lambda: clip_flows(models["raft"], frames, plan, cut_threshold=float("inf"))),
        "encode": (estimate.encode_peak(models["first_stage"], 1, hp, wp, dtype) - weights["first_stage"],
                   lambda: encode_lr_latents(models["first_stage"], frames[:1], plan, torch.Generator(), chunk=1)),
        "sampling_tile": (estimate.sampling_peak(models["unet"], models["lr_encoder"], window, tile, tile, dtype)
                          - weights["unet"] - weights["lr_encoder"],
                          lambda: _one_tile(models, device, dtype, window, tile)),
        "guidance": (estimate.guidance_peak(window, h, w), lambda: _guidance(device, window, h, w)),
        "decode_tile": (estimate.decode_peak(models["video_vae"], window, decode_tile, decode_tile, dtype)
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


def _one_tile(models, device, dtype, frames, tile):
    x = torch.randn(frames, 4, tile, tile, device=device)
    return predict_eps(models["unet"], models["lr_encoder"], x, x.clone(), 500, models["context"], tile, 0,
                       num_frames=frames)


def _guidance(device, frames, h, w):
    from mgld_vsr.pipeline.motion.field import MotionField

    pair = lambda c: torch.zeros(frames - 1, c, h, w, device=device)  # noqa: E731
    motion = MotionField(pair(2), pair(2), pair(1), pair(1), torch.zeros(frames - 1, dtype=torch.bool, device=device))
    schedule = respaced_schedule(50)
    return clip_guidance_step(torch.randn(frames, 4, h, w, device=device), schedule, 25, motion, 10.0, device=device,
                              pairs_per_chunk=GUIDANCE_PAIRS_PER_CHUNK)


def _decode_tile(models, device, dtype, frames, tile):
    z = torch.randn(frames, 4, tile, tile, device=device, dtype=dtype)
    lr = torch.rand(frames, 3, 8 * tile, 8 * tile, device=device, dtype=dtype) * 2 - 1
    return decode_window(models["video_vae"], z, lr, 1.0, tile=0)


def tile_flops(unet, lr_encoder, frames: int, tile: int) -> int:
    """FLOPs of one LR encoder + UNet evaluation of a tile, counted on meta copies (benchmarks/flops.py)."""
    from flops import count, meta

    unet_m, enc_m = build_empty("unet", unet.config).eval(), build_empty("lr_encoder", lr_encoder.config).eval()

    def run(wrap):
        x, lr = wrap(meta(frames, 4, tile, tile)), wrap(meta(frames, 4, tile, tile))
        t, context = wrap(meta(1, dtype=torch.long)), wrap(meta(1, 77, unet.config.context_dim))
        with torch.no_grad():
            unet_m(x, t, context, enc_m(lr, t), num_frames=frames)
    return count(run)


def best_time(clock: Clock, fn, repeats: int) -> float:
    fn()  # warm-up (kernel selection, caches)
    times = []
    for _ in range(repeats):
        clock.sync()
        start = time.perf_counter()
        fn()
        clock.sync()
        times.append(time.perf_counter() - start)
    return min(times)


def unet_throughput(models, clock: Clock, device, sizes: Sizes, repeats: int) -> dict:
    frames, tile = 5, sizes.tile
    flops = tile_flops(models["unet"], models["lr_encoder"], frames, tile)
    with torch.no_grad():
        seconds = best_time(clock, lambda: _one_tile(models, device, None, frames, tile), repeats)
    achieved = flops / seconds / 1e12
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
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


def fast_paths(models, clock: Clock, device, dtype, sizes: Sizes, repeats: int, compile_unet: bool) -> dict:
    """Each fast path measured with and without, on the unit of work it speeds up."""
    out = {}
    frames, tile = 5, sizes.tile
    heads, width = (5, 64) if tile == 64 else (2, 32)
    q = torch.randn(frames, heads, tile * tile, width, device=device, dtype=dtype)
    backends = {}
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                          ("math", SDPBackend.MATH)):
        try:
            with sdpa_kernel(backend), torch.no_grad():
                backends[name] = best_time(clock, lambda: attention(q, q, q), repeats)
        except RuntimeError as exc:  # a backend this device / dtype lacks
            backends[name] = {"skipped": str(exc).splitlines()[0][:120]}
    with torch.no_grad():
        backends["default"] = best_time(clock, lambda: attention(q, q, q), repeats)
    out["sdpa_backends_s"] = {"shape": list(q.shape), "attention_dtype": "float32 (upcast)", **backends}

    def tile_eval():
        return _one_tile(models, device, dtype, frames, tile)

    with torch.no_grad():
        plain = best_time(clock, tile_eval, repeats)
        with channels_last_weights(models["unet"], models["lr_encoder"]):
            channels_last = best_time(clock, tile_eval, repeats)
    out["channels_last_s"] = {"without": plain, "with": channels_last}

    if compile_unet:
        eager = models["unet"]
        compiled = torch.compile(eager)
        models["unet"] = compiled
        start = time.perf_counter()
        with torch.no_grad():
            tile_eval()
        first = time.perf_counter() - start
        with torch.no_grad():
            out["torch_compile_s"] = {"without": plain, "with": best_time(clock, tile_eval, repeats),
                                      "first_call_s": first}
        models["unet"] = eager
    else:
        out["torch_compile_s"] = {"skipped": "pass --compile"}

    # one window step as the sampler runs it (clip state in host RAM, copied to the device and back,
    # interrupt and blend on the host) against the same tiles with everything left on the device
    h = w = 2 * tile
    x_host, lr_host = torch.randn(frames, 4, h, w), torch.randn(frames, 4, h, w)
    unit = WindowStep(x_host, lr_host, 500, tile, None, 1, 3)
    nets = {"unet": models["unet"], "lr_encoder": models["lr_encoder"], "context": models["context"]}
    x_dev, lr_dev = x_host.to(device), lr_host.to(device)
    with torch.no_grad():
        as_is = best_time(clock, lambda: window_eps(nets, unit), repeats)
        resident = best_time(clock, lambda: predict_eps(models["unet"], models["lr_encoder"], x_dev, lr_dev, 500,
                                                        models["context"], tile, 0, num_frames=frames,
                                                        shift_step=3), repeats)
    out["window_step_host_round_trip_s"] = {"with_host_state": as_is, "device_resident": resident}

    if device.type == "cuda":
        window = torch.randn(frames, 4, 136, 244)
        pinned = window.pin_memory()
        out["window_transfer_s"] = {
            "pageable": best_time(clock, lambda: window.to(device), repeats),
            "pinned_non_blocking": best_time(clock, lambda: pinned.to(device, non_blocking=True), repeats)}
    else:
        out["window_transfer_s"] = {"skipped": "needs CUDA"}

    batched = {}
    with torch.no_grad():
        for per_batch in (1, 4):
            batched[f"tiles_per_batch_{per_batch}"] = best_time(clock, lambda: predict_eps(
                models["unet"], models["lr_encoder"], x_dev, lr_dev, 500, models["context"], tile, tile // 2,
                tiles_per_batch=per_batch, num_frames=frames), repeats)
    out["batched_tiles_s"] = {"tiles": "fixed grid, half overlap", **batched}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny fixture networks, small sizes: seconds")
    parser.add_argument("--json", type=pathlib.Path, help="write the figures here (default on CUDA: "
                                                          "benchmarks/results/gpu-<date>.json)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no new section after this many seconds")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps timed (scaled to 50); default 5, tiny 1")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile of the UNet")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    sizes = TINY if args.tiny else FULL
    steps = args.steps or (1 if args.tiny else 5)
    repeats = 1 if args.tiny else 3
    clock = Clock(device)
    dtypes = [torch.float32] if args.tiny else [torch.float16, torch.bfloat16]
    report = {"machine": machine(), "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "tiny": args.tiny, "date": datetime.date.today().isoformat(), "sections": {}}
    print(f"# {report['machine']}; device {report['device']}; {'tiny networks' if args.tiny else 'full-size random weights'}")

    def section(name, fn):
        if time.perf_counter() - start > args.budget_s:
            report["sections"][name] = {"skipped": f"time budget of {args.budget_s:g} s spent"}
        else:
            t0 = time.perf_counter()
            report["sections"][name] = fn()
            report["sections"][name]["section_s"] = time.perf_counter() - t0
        print(f"\n## {name}\n{json.dumps(report['sections'][name], indent=1, default=str)}", flush=True)

    for dtype in dtypes:
        label = str(dtype).replace("torch.", "")
        models = networks(args.tiny, device, dtype)
        for mode in ("default", "official"):
            section(f"speed_512/{mode}/{label}",
                    lambda: speed(models, clock, sizes.small, sizes.frames, steps, sizes, mode))
        if dtype == dtypes[0]:
            section("window_1080p", lambda: speed(models, clock, sizes.window, 5, steps, sizes, "default"))
            for lr in sizes.memory:
                section(f"memory/{lr[0]}x{lr[1]}", lambda: stage_memory(models, device, dtype, lr, sizes))
            section("unet_tflops", lambda: unet_throughput(models, clock, device, sizes, repeats))
            section("fast_paths", lambda: fast_paths(models, clock, device, dtype, sizes, repeats, args.compile))
        del models
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["wall_s"] = time.perf_counter() - start
    path = args.json
    if path is None and device.type == "cuda":
        path = ROOT / "benchmarks" / "results" / f"gpu-{report['date']}.json"
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nwrote {path}")
    print(f"wall time {report['wall_s']:.0f} s")
    return report


if __name__ == "__main__":
    main()
