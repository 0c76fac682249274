"""Reading weight files safely: Lightning ``.ckpt``, RAFT ``.pth`` and ``.safetensors``.

Pickles are opened with ``weights_only=True`` only, so a file carrying code cannot run it.
Every failure becomes a :class:`CheckpointError` naming the file and what is wrong with it.
"""
from __future__ import annotations

import json
import os
import pickle
import zipfile

import torch


class CheckpointError(RuntimeError):
    """A weight file is missing, unreadable or not what the slot expects (message says which)."""


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return ``(tensors by official key, metadata)`` of a weight file, on the CPU.

    Lightning checkpoints are unwrapped from ``["state_dict"]``; plain ``.pth`` dicts (RAFT) are
    returned as stored. ``metadata`` is the safetensors header metadata (empty for pickles).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: the file is empty (an interrupted download?)")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    return _read_pickle(path), {}


def _read_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({exc}); the file may be truncated or corrupt") from exc
    return tensors, metadata


def _read_pickle(path: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled objects other than tensors "
            f"(only weights are accepted, code in checkpoints is never executed). Details: {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{path}: could not read the checkpoint ({str(exc).splitlines()[0]}); the file may be truncated or corrupt") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: the file holds no tensors")
    return tensors


def _is_zip(path: str) -> bool:
    return zipfile.is_zipfile(path)
