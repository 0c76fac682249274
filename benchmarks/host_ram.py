#!/usr/bin/env python3
"""Host RAM against clip length: peak RSS of a long clip over that of a short clip (target <= 1.2).

    python benchmarks/host_ram.py [--frames 30 300] [--size 128x128] [--steps 1] [--routes headless nodes]
                                  [--jobs 1] [--threads 0] [--save DIR]

Every measurement runs in a fresh subprocess, so its ``ru_maxrss`` covers that run only. At
512x512 the tiny models still cost about 4 s per frame on 2 idle CPU cores (the CFW decoder most
of it), so 300 frames take about 20 minutes per route: ``--save DIR`` keeps each finished
measurement and a rerun with the same settings skips it. Routes:

* ``headless``: ``run_workflow.main`` on the README's main-job workflow (``example_workflows/mgld_vsr_basic.json``),
  exactly as the command line runs it (the runner streams the decoder into the saver);
* ``nodes``: the node classes called one after another as ComfyUI calls them for
  ``example_workflows/mgld_vsr_long_video.json`` (loaders, Load LR Video, Flow, Sampler, Decode + Save), under
  ``torch.inference_mode`` and with every output kept alive, as ComfyUI's output cache keeps them;
* ``headless-nostream`` (not run by default): the runner with ``--no-stream``, i.e. a separate Decode
  and Save with the whole upscaled clip as an IMAGE in between: the "before" figure.

The clip is synthetic (a sliding texture with a tone), the models are the fixture set's tiny random
networks in release format (``make_release.py``), ``steps`` is lowered. The default 128x128 clip
comes out at 512x512, the smallest size the pipeline works at (shorter sides are upsampled to 512
px), so every output frame is full size and nothing is computed at a size it is not kept at.
Per node, the child also prints the peak RSS after the node ran and the bytes of what it returned.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = 1.2
ROUTES = ("headless", "nodes", "headless-nostream")


# ------------------------------------------------------------------------------------------------ child

def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _held_bytes(value, seen: set) -> int:
    """Bytes of the distinct tensor storages reachable from a node's output (tensors, dicts, lists, dataclasses)."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            return 0
        storage = value.untyped_storage()
        key = storage.data_ptr()
        if key in seen or key == 0:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(value, dict):
        return sum(_held_bytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_held_bytes(v, seen) for v in value)
    if isinstance(value, torch.nn.Module):
        return 0  # weights are constant; count what grows with the clip
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_held_bytes(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    return 0


def _instrument(classes: dict, log: list) -> None:
    """Record, after each node call: peak RSS so far, current RSS, seconds, and bytes of the returned values."""
    for name, cls in classes.items():
        original = getattr(cls, cls.FUNCTION)

        def wrapped(self, *args, __original=original, __name=name, **kwargs):
            start = time.perf_counter()
            out = __original(self, *args, **kwargs)
            result = out.get("result", ()) if isinstance(out, dict) else out
            log.append({"node": __name, "seconds": time.perf_counter() - start, "peak": _peak_rss(),
                        "rss": _rss_now(), "returned": _held_bytes(result, set())})
            return out

        setattr(cls, cls.FUNCTION, wrapped)


def _defaults(cls) -> dict:
    """Widget defaults of a node class, by input name."""
    out = {}
    for section in ("required", "optional"):
        for name, spec in cls.INPUT_TYPES().get(section, {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if "default" in options:
                out[name] = options["default"]
    return out


def _run_nodes(classes: dict, clip: str, steps: int) -> None:
    """The long-video workflow, node by node, as ComfyUI executes it (every output kept, as its cache does)."""
    import torch

    outputs = {}

    def call(node_id, kind, **inputs):
        cls = classes[kind]
        kwargs = {**{k: v for k, v in _defaults(cls).items() if k not in inputs}, **inputs}
        with torch.inference_mode():
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
        outputs[node_id] = out["result"] if isinstance(out, dict) else out
        return outputs[node_id]

    model, = call(1, "MGLDDiffusionModelLoader", ckpt_name="mgldvsr_unet.ckpt")
    vae, = call(2, "MGLDVideoVAELoader", vae_name="video_vae_cfw.ckpt")
    raft, = call(3, "MGLDRAFTLoader", raft_name="raft-things.pth")
    frames, fps, audio, _ = call(4, "MGLDLoadVideo", video=clip)
    flow, _, _ = call(5, "MGLDFlow", raft=raft, frames=frames)
    latent, = call(6, "MGLDSampler", model=model, frames=frames, flow=flow, steps=steps)
    call(7, "MGLDDecodeAndSave", video_vae=vae, latent=latent, frames=frames, fps=fps, audio=audio,
         filename_prefix="MGLD/host_ram")


def child(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    os.environ["MGLD_MODELS_DIR"] = args.models
    os.environ["MGLD_HOME"] = args.home
    from run_workflow import load_pack

    pack = load_pack()
    from mgld_vsr.nodes import host

    host.Progress.quiet = True
    log: list = []
    _instrument(pack.NODE_CLASS_MAPPINGS, log)
    start = time.perf_counter()
    if args.child == "nodes":
        _run_nodes(pack.NODE_CLASS_MAPPINGS, args.clip, args.steps)
    else:
        import run_workflow

        argv = [str(ROOT / "example_workflows" / "mgld_vsr_basic.json"), "--input", args.clip, "--output",
                os.path.join(args.home, "out.mp4"), "--models", args.models, "--set", f"MGLDSampler.steps={args.steps}"]
        if args.child == "headless-nostream":
            argv.append("--no-stream")
        code = run_workflow.main(argv)
        if code != 0:
            raise SystemExit(f"run_workflow exited with {code}")
    print(json.dumps({"peak": _peak_rss(), "seconds": time.perf_counter() - start, "nodes": log}))


# ------------------------------------------------------------------------------------------------ parent

def make_clip(path: pathlib.Path, frames: int, height: int, width: int) -> None:
    """A texture sliding 2 px per frame at 24 fps with a 440 Hz tone, written frame by frame."""
    import torch

    from mgld_vsr.pipeline import video_io

    g = torch.Generator().manual_seed(0)
    span = width + 2 * frames
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, max(2, height // 4), max(2, span // 4), generator=g),
                                              size=(height, span), mode="bicubic").clamp(0, 1)
    source = ((texture[0, :, :, 2 * i:2 * i + width].permute(1, 2, 0) * 255).round().to(torch.uint8)
              for i in range(frames))
    t = torch.arange(int(48000 * frames / 24)) / 48000
    audio = video_io.AudioTrack((0.3 * torch.sin(2 * math.pi * 440 * t))[None], 48000)
    video_io.write_video(path, source, 24, audio=audio, codec="ffv1")


def make_models(folder: pathlib.Path) -> None:
    from _common import golden_dir

    golden = golden_dir()
    subprocess.run([sys.executable, str(golden.parent / "make_release.py"), str(folder), "--golden-dir", str(golden)],
                   check=True, stdout=subprocess.DEVNULL)
    (folder / "mgldvsr_unet.yaml").write_text((golden / "weights" / "tiny_mgldvsr.yaml").read_text())


def measure(route: str, n: int, clip: pathlib.Path, models: pathlib.Path, work: pathlib.Path,
            args) -> subprocess.Popen:
    home = work / f"home-{route}-{n}"
    if home.exists():
        shutil.rmtree(home)  # a run that did not finish (its partial output included)
    home.mkdir()
    command = [sys.executable, __file__, "--child", route, "--clip", str(clip), "--models", str(models),
               "--home", str(home), "--steps", str(args.steps), "--threads", str(args.threads)]
    # output goes to files: a child that finishes while another is awaited must not block on a full pipe
    stdout, stderr = open(home / "stdout.txt", "w+"), open(home / "stderr.txt", "w+")
    proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
    proc.files = (stdout, stderr)
    return proc


def _read_all(files) -> list[str]:
    texts = []
    for f in files:
        f.seek(0)
        texts.append(f.read())
        f.close()
    return texts


def mib(n: float) -> str:
    return f"{n / 2 ** 20:8.1f} MiB"


def print_run(route: str, n: int, report: dict, note: str = "") -> None:
    print(f"\n{route}, {n} frames: peak RSS {mib(report['peak'])}, {report['seconds']:.0f} s{note}", flush=True)
    for entry in report["nodes"]:
        print(f"  {entry['node']:<26s} peak {mib(entry['peak'])}  rss after {mib(entry['rss'])}  "
              f"returned {mib(entry['returned'])}  {entry['seconds']:6.1f} s")


def run_all(work: pathlib.Path, args, height: int, width: int) -> dict:
    """Every (route, frames) measurement; with ``--save``, stored ones are reused (a long run can resume)."""
    settings = {"size": [height, width], "steps": args.steps, "threads": args.threads}
    models = work / "models"
    if not (models / "video_vae_cfw.ckpt").exists():
        make_models(models)
    clips = {n: work / f"clip{n}x{height}x{width}.mkv" for n in args.frames}
    for n, path in clips.items():
        if not path.exists():
            make_clip(path, n, height, width)
    results, jobs = {}, []
    for route in args.routes:
        for n in args.frames:
            stored = work / f"result-{route}-{n}.json"
            if stored.exists() and json.loads(stored.read_text()).get("settings") == settings:
                results[(route, n)] = json.loads(stored.read_text())
                print_run(route, n, results[(route, n)], " (stored by an earlier run with the same settings)")
            else:
                jobs.append((route, n))
    jobs.sort(key=lambda job: -job[1])  # longest runs first, so parallel jobs finish together
    running = {}
    while jobs or running:
        while jobs and len(running) < max(1, args.jobs):
            route, n = jobs.pop(0)
            running[(route, n)] = measure(route, n, clips[n], models, work, args)
        done = [key for key, proc in running.items() if proc.poll() is not None]
        if not done:
            time.sleep(1.0)
            continue
        key = done[0]
        proc = running.pop(key)
        out, err = _read_all(proc.files)
        if proc.returncode != 0 or not out.strip():
            for other in running.values():
                other.kill()
            raise SystemExit(f"{key[0]}, {key[1]} frames: failed (exit {proc.returncode})\n{err[-3000:]}")
        report = {**json.loads(out.strip().splitlines()[-1]), "settings": settings}
        (work / f"result-{key[0]}-{key[1]}.json").write_text(json.dumps(report))
        results[key] = report
        print_run(*key, report)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs=2, default=[30, 300], metavar=("SHORT", "LONG"))
    parser.add_argument("--size", default="128x128", help="LR frame size HxW")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--routes", nargs="+", default=["headless", "nodes"], choices=ROUTES)
    parser.add_argument("--jobs", type=int, default=1, help="measurements run at the same time")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per measurement (0 = torch's default)")
    parser.add_argument("--save", help="keep models, clips and results in this folder; measurements already stored "
                                       "there with the same settings are not repeated (resume a long run)")
    parser.add_argument("--child", choices=ROUTES, help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    sys.path.insert(0, str(HERE))
    from _common import machine

    height, width = (int(v) for v in args.size.lower().split("x"))
    print(f"host RAM vs clip length: LR {height}x{width}, {args.frames[0]} vs {args.frames[1]} frames, "
          f"{args.steps} step(s), tiny random-weight models, target ratio <= {TARGET}")
    print(f"machine: {machine()}" + (f"; {args.threads} thread(s) per run" if args.threads else ""))
    if args.save:
        pathlib.Path(args.save).mkdir(parents=True, exist_ok=True)
        results = run_all(pathlib.Path(args.save).resolve(), args, height, width)
    else:
        with tempfile.TemporaryDirectory(prefix="mgld_host_ram_") as tmp:
            results = run_all(pathlib.Path(tmp), args, height, width)
    print("\nsummary (peak RSS of the whole run)")
    verdicts = []
    for route in args.routes:
        short, long = results[(route, args.frames[0])]["peak"], results[(route, args.frames[1])]["peak"]
        ratio = long / short
        verdicts.append(ratio <= TARGET)
        print(f"  {route:<18s} {args.frames[0]:4d} frames {mib(short)}   {args.frames[1]:4d} frames {mib(long)}   "
              f"ratio {ratio:.3f}   {'PASS' if ratio <= TARGET else 'FAIL'} (<= {TARGET})")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
