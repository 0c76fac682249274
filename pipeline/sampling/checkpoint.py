"""Resumable sampling: the clip's sampling state saved every few denoising steps, atomically.

A long clip samples for hours; a crash, a lost machine or a reboot should cost at most a few
steps. After every ``every``-th step (and after the last) the sampler saves what the rest of the
run depends on: the latents, the LR latents, the index of the next step and the state of the
clip's noise generator. Restoring them and continuing the plain loop gives exactly the latents an
uninterrupted run gives. Each file is written under a temporary name and renamed, so a run killed
while saving leaves the previous checkpoint intact.

A checkpoint belongs to one set of inputs and settings: its file name is a hash of the LR frames,
the scene cuts, the LR plan and every sampling option, so a different clip or setting starts from
the beginning (the networks' weights are not hashed: resume with the same model files).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Optional

import torch

from ..defaults import CHECKPOINT_EVERY
from ..hooks import Hooks

FORMAT = 1


@dataclasses.dataclass
class SamplingState:
    step: int  # the next denoising step to run (0-based)
    x: torch.Tensor
    lr_latent: torch.Tensor
    generator_state: torch.Tensor


def _digest(hasher, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    hasher.update(repr((str(tensor.dtype), tuple(tensor.shape))).encode())
    hasher.update(tensor.view(torch.uint8).numpy() if tensor.numel() else b"")


class SamplingCheckpoint:
    """Checkpoints of sampling runs in ``folder``, one file per run key, saved every ``every`` steps."""

    def __init__(self, folder: str, every: int = CHECKPOINT_EVERY):
        if every < 1:
            raise ValueError(f"checkpoint interval must be at least 1 step, got {every}")
        self.folder, self.every = folder, int(every)

    @staticmethod
    def run_key(frames: torch.Tensor, cuts: torch.Tensor, plan, options) -> str:
        hasher = hashlib.blake2b(digest_size=16)
        hasher.update(f"{FORMAT} {plan!r} {options!r}".encode())
        _digest(hasher, frames)
        _digest(hasher, cuts.to(torch.uint8))
        return hasher.hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.folder, f"sampling-{key}.pt")

    def due(self, step: int, total: int) -> bool:
        """Whether to save after ``step`` (0-based): every ``every`` steps and after the last."""
        return (step + 1) % self.every == 0 or step + 1 == total

    def load(self, key: str, hooks: Optional[Hooks] = None) -> Optional[SamplingState]:
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            state = SamplingState(int(saved["step"]), saved["x"], saved["lr_latent"], saved["generator_state"])
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint only costs the steps it held
            (hooks or Hooks()).notice(f"checkpoint {path} cannot be read ({exc}); sampling from the first step")
            return None
        (hooks or Hooks()).notice(f"resuming from {path}: {state.step} denoising step(s) already done")
        return state

    def save(self, key: str, step: int, x: torch.Tensor, lr_latent: torch.Tensor, generator_state: torch.Tensor) -> None:
        """Write the state after ``step`` steps under a temporary name, flush it to disk, then rename it."""
        os.makedirs(self.folder, exist_ok=True)
        path = self.path(key)
        temporary = f"{path}.{os.getpid()}.partial"
        state = {"format": FORMAT, "step": int(step), "x": x.cpu(), "lr_latent": lr_latent.cpu(),
                 "generator_state": generator_state}
        try:
            with open(temporary, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
