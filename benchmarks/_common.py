"""What the benchmark scripts share, so each script holds only the question it answers.

* set-up: import the pack standalone (as ``mgld_vsr``), load the fixture set's tiny weights, print the machine;
* FLOP counting on the ``meta`` device (``flops.py``, ``quality.py``, the UNet throughput of ``speed.py``);
* the device runs (``speed.py``, ``memory.py`` and ``gpu.py``, which strings their device sections into the
  one prepared command for a lent GPU): the networks (full size with random weights, or the tiny ones), the
  synthetic clip, a stopwatch that waits for the device, and a section runner that stops starting sections
  when the time budget is spent and writes what it measured as JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import sys
import time
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from run_workflow import load_pack  # noqa: E402

load_pack()

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from mgld_vsr.models.loader import build_empty, official_config  # noqa: E402


def golden_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("MGLD_GOLDEN_DIR", ROOT / ".." / "shared" / "reference" / "golden")).resolve()


def tiny_models() -> dict:
    from weights_index import weights_file_with_prefix
    from mgld_vsr.models.loader import load_component, load_components

    weights = golden_dir() / "weights"
    models = load_components(weights_file_with_prefix(weights, "model.diffusion_model."), ["unet", "lr_encoder", "first_stage"])
    models["video_vae"] = load_component(weights_file_with_prefix(weights, "decoder."), "video_vae")
    models["raft"] = load_component(weights_file_with_prefix(weights, "module."), "raft")
    return models


def machine() -> str:
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, python {platform.python_version()}")


# ------------------------------------------------------------------------------------------ FLOP counting

def meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


def count(fn) -> int:
    """FLOPs of ``fn(wrap)`` on meta tensors (``wrap`` turns each input into what the run needs); retried
    under FakeTensorMode if an op has no meta kernel."""
    try:
        with FlopCounterMode(display=False) as counter:
            fn(lambda t: t)
        return counter.get_total_flops()
    except (NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "meta" not in str(exc).lower():
            raise  # a real shape error, not a missing meta kernel
        from torch._subclasses.fake_tensor import FakeTensorMode

        print(f"  (meta run failed: {type(exc).__name__}: {str(exc)[:80]}; retrying with FakeTensorMode)")
        mode = FakeTensorMode(allow_non_fake_inputs=True)
        with FlopCounterMode(display=False) as counter, mode:
            fn(lambda t: mode.from_tensor(t))
        return counter.get_total_flops()


class DenoiseFlops:
    """FLOPs of one denoising evaluation (LR encoder + UNet) of a given input shape, counted once on
    meta copies of the networks and cached: every script that prices UNet work prices it the same way."""

    def __init__(self, unet_config, lr_encoder_config):
        self.unet = build_empty("unet", unet_config).eval()
        self.lr_encoder = build_empty("lr_encoder", lr_encoder_config).eval()
        self.context_dim = unet_config.context_dim
        self.cache: dict = {}

    @classmethod
    def full_size(cls) -> "DenoiseFlops":
        return cls(official_config("unet"), official_config("lr_encoder"))

    def __call__(self, batch: int, frames: int, h: int, w: int) -> int:
        """``batch`` latent tiles of ``h x w`` (windows of ``frames`` frames stacked along the batch)."""
        key = (batch, frames, h, w)
        if key not in self.cache:
            def run(wrap):
                x, lr = wrap(meta(batch, 4, h, w)), wrap(meta(batch, 4, h, w))
                t, context = wrap(meta(1, dtype=torch.long)), wrap(meta(1, 77, self.context_dim))
                with torch.no_grad():
                    self.unet(x, t, context, self.lr_encoder(lr, t), num_frames=frames)
            self.cache[key] = count(run)
        return self.cache[key]


# ------------------------------------------------------------------------------------------ device runs

@dataclasses.dataclass(frozen=True)
class Sizes:
    """What each device section runs on: full-size cases on a GPU, small ones with ``--tiny``."""

    small: tuple[int, int]  # the paper's 128x128 case
    window: tuple[int, int]  # the 1080p window case
    memory: tuple[tuple[int, int], ...]  # 1080p and 4K
    frames: int  # frames of the 512-px clip
    tile: int  # latent tile of the default mode
    min_short_side: int


FULL = Sizes(small=(128, 128), window=(270, 480), memory=((270, 480), (540, 960)), frames=10, tile=64, min_short_side=512)
#: RAFT needs 512-px model frames (128-px flow input), so even the tiny run samples 512-px frames.
TINY = Sizes(small=(128, 128), window=(128, 192), memory=((128, 192),), frames=5, tile=32, min_short_side=512)


class Stopwatch:
    """Wall and process CPU seconds of named blocks, summed per name. ``time`` waits for the device
    around its block (kernels are asynchronous); ``wrap`` times every call of a function without
    waiting, so its shares are only meaningful on the CPU."""

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.device = device
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _add(self, key: str, wall: float, cpu: float):
        self.wall[key] = self.wall.get(key, 0.0) + wall
        self.cpu[key] = self.cpu.get(key, 0.0) + cpu

    @contextlib.contextmanager
    def time(self, key: str):
        self.sync()
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.sync()
        self._add(key, time.perf_counter() - wall, time.process_time() - cpu)

    def wrap(self, key: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(key, time.perf_counter() - wall, time.process_time() - cpu)
        return timed

    def best(self, fn: Callable, repeats: int) -> float:
        """Fastest of ``repeats`` wall times of ``fn()`` after one warm-up call (kernel selection, caches)."""
        fn()
        times = []
        for _ in range(repeats):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return min(times)


def random_network(name: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A full-size network with small random weights (variance shrinking layer by layer: no overflow).
    Speed and memory do not depend on the weights, so no checkpoint is needed."""
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


def device_networks(tiny: bool, device: torch.device, dtype: torch.dtype) -> dict:
    """The five networks and a text context on ``device``: the fixture set's tiny ones, or full size
    with random weights (RAFT stays float32, as the pipeline runs it)."""
    if tiny:
        models = {k: v.to(device) for k, v in tiny_models().items()}
        for k in ("unet", "lr_encoder", "first_stage", "video_vae"):
            models[k] = models[k].to(dtype)
    else:
        models = {k: random_network(k, device, dtype) for k in ("unet", "lr_encoder", "first_stage", "video_vae", "raft")}
    context_dim = models["unet"].config.context_dim
    models["context"] = torch.randn(1, 77, context_dim, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    return models


def synthetic_clip(n: int, lr: tuple[int, int]) -> torch.Tensor:
    """A moving synthetic ``[n,H,W,3]`` uint8 clip (speed and memory do not depend on the content)."""
    h, w = lr
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frames = [torch.stack([(x + 3 * t) % 256, (y + 2 * t) % 256, (x + y + t) % 256], -1) for t in range(n)]
    return torch.stack(frames).to(torch.uint8)


def one_tile_eval(models: dict, device: torch.device, frames: int, tile: int) -> torch.Tensor:
    """One denoising evaluation (LR encoder + UNet) of a ``frames``-frame window on one ``tile`` x ``tile``
    latent tile: the unit of the sampler's work, timed by ``speed.py`` and measured by ``memory.py``."""
    from mgld_vsr.pipeline.sampling.denoise import predict_eps
    from mgld_vsr.pipeline.sampling.tiling import TileLayout

    x = torch.randn(frames, 4, tile, tile, device=device)
    return predict_eps(models["unet"], models["lr_encoder"], x, x.clone(), 500, models["context"],
                       TileLayout(((0, 0, tile, tile),), None), num_frames=frames)


@dataclasses.dataclass(frozen=True)
class DeviceRun:
    """The settings every device section reads: where it runs, at which sizes, how long it times."""

    device: torch.device
    tiny: bool
    sizes: Sizes
    steps: int  # denoising steps timed (scaled to 50)
    repeats: int  # best of this many timings of a unit of work
    compile: bool  # also measure torch.compile of the UNet
    budget_s: float
    dtypes: tuple[torch.dtype, ...]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DeviceRun":
        device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
        return cls(device=device, tiny=args.tiny, sizes=TINY if args.tiny else FULL,
                   steps=args.steps or (1 if args.tiny else 5), repeats=1 if args.tiny else 3,
                   compile=args.compile, budget_s=args.budget_s,
                   dtypes=(torch.float32,) if args.tiny else (torch.float16, torch.bfloat16))

    def stopwatch(self) -> Stopwatch:
        return Stopwatch(self.device)


def add_device_arguments(parser: argparse.ArgumentParser, steps_help: str) -> None:
    """The options of a run of device sections (``gpu.py``; ``speed.py`` and ``memory.py`` on a GPU)."""
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny fixture networks, small sizes: seconds")
    parser.add_argument("--json", type=pathlib.Path, help="write the figures to this file")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no new section after this many seconds")
    parser.add_argument("--steps", type=int, default=None, help=steps_help)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile of the UNet")


#: ``sections(models, run, dtype, first)``: the ``(name, thunk)`` sections to run with the networks in
#: ``dtype`` (``first``: the first dtype, which runs the sections measured in one dtype only).
Sections = Callable[[dict, DeviceRun, torch.dtype, bool], list]


def run_device_sections(args: argparse.Namespace, sections: Sections, default_json: pathlib.Path | None = None) -> dict:
    """Run the sections in order for each dtype, each printed as it finishes; once ``--budget-s`` is
    spent the remaining ones are recorded as skipped (a scarce GPU window still yields the figures
    that came first). Writes the report to ``--json``, or on CUDA to ``default_json`` when given."""
    start = time.perf_counter()
    run = DeviceRun.from_args(args)
    report = {"machine": machine(), "device": torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu",
              "tiny": run.tiny, "date": datetime.date.today().isoformat(), "sections": {}}
    print(f"# {report['machine']}; device {report['device']}; {'tiny networks' if run.tiny else 'full-size random weights'}")
    for dtype in run.dtypes:
        models = device_networks(run.tiny, run.device, dtype)
        for name, thunk in sections(models, run, dtype, dtype == run.dtypes[0]):
            if time.perf_counter() - start > run.budget_s:
                report["sections"][name] = {"skipped": f"time budget of {run.budget_s:g} s spent"}
            else:
                began = time.perf_counter()
                report["sections"][name] = thunk()
                report["sections"][name]["section_s"] = time.perf_counter() - began
            print(f"\n## {name}\n{json.dumps(report['sections'][name], indent=1, default=str)}", flush=True)
        del models
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
    report["wall_s"] = time.perf_counter() - start
    path = args.json
    if path is None and run.device.type == "cuda" and default_json is not None:
        path = default_json.parent / default_json.name.replace("<date>", report["date"])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nwrote {path}")
    print(f"wall time {report['wall_s']:.0f} s")
    return report
