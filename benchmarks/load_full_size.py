#!/usr/bin/env python3
"""Load time and peak RAM for the full-size networks built on the meta device.

    python benchmarks/load_full_size.py [--dtype fp16] [--workdir /tmp]

Writes a checkpoint with the real key names and shapes (random values; no weights can be
downloaded here) as ``.safetensors`` and as a Lightning-style ``.ckpt``, then loads every
diffusion component from it in a fresh process and reports wall time and peak RSS.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, machine

import torch

from mgld_vsr.models.loader import COMPONENTS, build_empty, official_config

PARTS = ["unet", "lr_encoder", "first_stage", "text_encoder"]
DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}


def write_checkpoints(folder: str, dtype: torch.dtype) -> tuple[str, str]:
    state = {}
    generator = torch.Generator().manual_seed(0)
    for name in PARTS:
        prefix = COMPONENTS[name].prefixes[0]
        for key, meta in build_empty(name, official_config(name)).state_dict().items():
            value = torch.empty(meta.shape, dtype=dtype if meta.is_floating_point() else meta.dtype)
            if value.is_floating_point():
                value.normal_(0, 0.02, generator=generator)
            state[prefix + key] = value
    from safetensors.torch import save_file

    st_path, ckpt_path = os.path.join(folder, "full.safetensors"), os.path.join(folder, "mgldvsr_unet.ckpt")
    save_file(state, st_path)
    torch.save({"state_dict": state}, ckpt_path)
    return st_path, ckpt_path


def measure(path: str) -> dict:
    """Run the load in a child process so peak RSS belongs to it alone."""
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r}); from run_workflow import load_pack; load_pack()
import torch
start = time.perf_counter()
from mgld_vsr.models.loader import load_components
models = load_components({path!r}, {PARTS!r}, dtype=torch.float16)
seconds = time.perf_counter() - start
params = sum(p.numel() for m in models.values() for p in m.parameters())
print(json.dumps({{"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "params": params}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16", help="precision stored in the test files")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    args = parser.parse_args()
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        start = time.perf_counter()
        st_path, ckpt_path = write_checkpoints(folder, DTYPES[args.dtype])
        print(f"# wrote full-size {args.dtype} checkpoints in {time.perf_counter() - start:.0f} s "
              f"({os.path.getsize(st_path) / 2**30:.2f} GiB each)")
        for label, path in (("safetensors", st_path), (".ckpt (weights_only, mmap)", ckpt_path)):
            result = measure(path)
            print(f"{label:28s} UNet+LR encoder+VAE encoder+text encoder ({result['params'] / 1e9:.2f} B params): "
                  f"{result['seconds']:.1f} s, peak RSS {result['peak_rss_gb']:.2f} GiB")


if __name__ == "__main__":
    main()
