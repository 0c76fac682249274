"""Helpers for inferring architecture hyper-parameters from a state dict's own tensor shapes.

Inferring from shapes lets the full released checkpoints and the tiny fixture models load
through the same code with no per-size configuration.
"""
from __future__ import annotations

import re

import torch


def indices(sd: dict[str, torch.Tensor], prefix: str) -> list[int]:
    """Sorted integer indices ``i`` of keys starting with ``prefix + 'i.'``."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})


def shape(sd: dict[str, torch.Tensor], key: str, component: str) -> tuple[int, ...]:
    if key not in sd:
        raise ValueError(f"{component}: key '{key}' is missing, so the architecture cannot be inferred; "
                         "this file does not hold this component")
    return tuple(sd[key].shape)


def has_prefix(sd: dict[str, torch.Tensor], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in sd)


def hint_int(hints: dict, name: str, default: int) -> int:
    value = hints.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config value {name}={value!r} is not an integer") from exc
