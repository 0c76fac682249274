"""Convert the official weight files into per-component ``.safetensors`` files.

Safetensors load without unpickling and can be memory-mapped, so later loads are fast and safe.
Each output holds one component's keys (official names without the prefix) and, in its JSON
header, the component name, its config and the source file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

import torch

from .checkpoint import CheckpointError
from .loader import COMPONENTS, WeightFile, classify_keys, component_classes

DTYPES = {"keep": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def convert_file(path: str, out_dir: str, dtype: torch.dtype | None = None) -> list[str]:
    """Write ``<stem>.<component>.safetensors`` for every component found in ``path``; return the paths."""
    from safetensors.torch import save_file

    weights = WeightFile.read(path)
    groups = classify_keys(weights.tensors)
    present = [name for name in COMPONENTS if groups[name]]
    if weights.metadata.get("mgld_component"):
        raise CheckpointError(f"{path}: already a converted file")
    if not present:
        raise CheckpointError(f"{path}: no MGLD-VSR component found in this file")
    stem = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in present:
        sd, _ = weights.component_state(name)
        config_class, _ = component_classes(name)
        config = config_class.from_state_dict(sd, weights.hints(name))
        ignored = COMPONENTS[name].ignored
        tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
                   for k, v in sd.items() if not (ignored and k.startswith(ignored))}
        tensors = _dedupe_shared(tensors)
        metadata = {
            "mgld_component": name,
            "mgld_config": json.dumps(dataclasses.asdict(config)),
            "source": os.path.basename(path),
        }
        target = os.path.join(out_dir, f"{stem}.{name}.safetensors")
        tmp = target + ".tmp"
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, target)  # never leave a half-written file under the final name
        written.append(target)
    return written


def _dedupe_shared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing storage (RAFT's BatchNorm is stored under two names): copy them."""
    seen, out = set(), {}
    for key, value in tensors.items():
        ptr = (value.untyped_storage().data_ptr(), value.storage_offset()) if value.numel() else None
        out[key] = value.clone() if ptr in seen else value
        if ptr is not None:
            seen.add(ptr)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="run_workflow.py convert-weights", description="Convert official MGLD-VSR weights to per-component .safetensors files.")
    parser.add_argument("files", nargs="+", help="mgldvsr_unet.ckpt, video_vae_cfw.ckpt and/or raft-things.pth")
    parser.add_argument("--out", required=True, help="output folder (e.g. ComfyUI/models/mgld)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="keep", help="store weights in this precision")
    args = parser.parse_args(argv)
    for path in args.files:
        try:
            for target in convert_file(path, args.out, DTYPES[args.dtype]):
                print(target)
        except CheckpointError as exc:
            print(f"error: {exc}")
            return 1
    return 0
