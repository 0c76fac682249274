"""Shared set-up for benchmarks: import the pack standalone, load the fixture set's tiny weights, print the machine."""
import os
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from run_workflow import load_pack  # noqa: E402

load_pack()

import torch  # noqa: E402


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
