"""Data-driven golden fixtures: discovery, loading and comparison.

A fixture is any ``.safetensors`` file under the golden directory whose metadata has a
``fixture`` key naming its kind; names of files and folders carry no meaning. Each kind has a
runner in ``golden_runners/<kind>.py`` exposing ``run(fixture) -> list[Check]``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Callable

import torch
from safetensors import safe_open

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Kinds whose issue is still open: a missing runner for these reports NOT-YET, for any other kind FAIL.
#: Every kind is implemented now, so nothing may report NOT-YET.
PENDING_KINDS: frozenset[str] = frozenset()

ALL_KINDS = (
    "unet_step", "vae_encode", "video_decoder", "raft", "occlusion", "text_encoder", "colorfix",
    "guidance", "schedule", "sampler", "end_to_end",
)


def default_golden_dir() -> pathlib.Path:
    env = os.environ.get("MGLD_GOLDEN_DIR")
    if env:
        return pathlib.Path(env).resolve()
    return (REPO_ROOT / ".." / "shared" / "reference" / "golden").resolve()


@dataclasses.dataclass
class Fixture:
    path: pathlib.Path
    kind: str
    golden_dir: pathlib.Path
    metadata: dict
    _tensors: dict | None = None

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            with safe_open(str(self.path), framework="pt") as f:
                self._tensors = {k: f.get_tensor(k) for k in f.keys()}
        return self._tensors

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def meta(self, key: str, default=None):
        """Metadata value, JSON-decoded where it parses (numbers, lists, dicts)."""
        raw = self.metadata.get(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            return raw

    @property
    def weights_dir(self) -> pathlib.Path:
        """The ``weights/`` folder of this fixture set (the golden dir, else the nearest ancestor)."""
        for parent in [self.golden_dir, *self.path.parents]:
            candidate = parent / "weights"
            if candidate.is_dir():
                return candidate
            if parent == self.golden_dir.parent:
                break
        raise FileNotFoundError(f"no weights/ folder found for fixture {self.path}")


def discover(golden_dir: pathlib.Path) -> list[Fixture]:
    fixtures = []
    for path in sorted(golden_dir.rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        kind = metadata.get("fixture")
        if kind:
            fixtures.append(Fixture(path=path, kind=kind, golden_dir=golden_dir, metadata=metadata))
    return fixtures


@dataclasses.dataclass
class Check:
    """One stored tensor compared with ours.

    ``rel`` bounds max_abs / max|expected|; ``max_abs`` bounds the absolute difference;
    ``mask_flip`` allows that fraction of 0/1 values to differ; ``uint8`` applies the README's
    end-to-end rule (|d| <= 1 on >= 99 % of values, <= 3 everywhere); ``exact`` means identical.
    """

    name: str
    actual: torch.Tensor
    expected: torch.Tensor
    rel: float | None = None
    max_abs: float | None = None
    mask_flip: float | None = None
    uint8: bool = False
    exact: bool = False

    def evaluate(self) -> "Result":
        a, e = self.actual.detach().cpu(), self.expected.detach().cpu()
        if a.shape != e.shape:
            return Result(self.name, float("inf"), float("inf"), False, f"shape {tuple(a.shape)} != {tuple(e.shape)}")
        diff = (a.double() - e.double()).abs()
        max_abs = float(diff.max()) if diff.numel() else 0.0
        scale = float(e.double().abs().max()) if e.numel() else 0.0
        rel = max_abs / scale if scale > 0 else max_abs
        if not torch.isfinite(a.double()).all():
            return Result(self.name, max_abs, rel, False, "non-finite values")
        ok, note = True, ""
        if self.exact:
            ok = max_abs == 0
        elif self.mask_flip is not None:
            frac = float((diff > 0.5).double().mean())
            ok, note = frac <= self.mask_flip, f"flipped={frac:.4%}"
        elif self.uint8:
            frac = float((diff > 1).double().mean())
            ok, note = frac <= 0.01 and max_abs <= 3, f">1 on {frac:.4%}"
        else:
            if self.rel is not None:
                ok &= rel <= self.rel
            if self.max_abs is not None:
                ok &= max_abs <= self.max_abs
        return Result(self.name, max_abs, rel, ok, note)


@dataclasses.dataclass
class Result:
    name: str
    max_abs: float
    rel: float
    ok: bool
    note: str = ""


def runner_for(kind: str) -> Callable[[Fixture], list[Check]] | None:
    """The ``run`` function of ``golden_runners/<kind>.py``, or None if that runner is not written."""
    import importlib

    if kind not in ALL_KINDS:
        return None
    try:
        module = importlib.import_module(f"golden_runners.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name == f"golden_runners.{kind}":
            return None
        raise
    return module.run


def summarize(results: list[Result]) -> tuple[float, float, bool]:
    worst_abs = max((r.max_abs for r in results), default=0.0)
    worst_rel = max((r.rel for r in results), default=0.0)
    return worst_abs, worst_rel, all(r.ok for r in results) and bool(results)
