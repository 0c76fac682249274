"""Progress, latent previews and cooperative interruption, without any host import.

The pipeline calls these at every denoising step; the ComfyUI adapter plugs in its progress bar,
preview and interrupt check, the headless runner a terminal bar. All are optional.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, Optional

import torch


class Interrupted(RuntimeError):
    """Raised by an interrupt check to stop a run between steps."""


@dataclasses.dataclass
class Hooks:
    #: ``progress(done, total, what)``: called after every unit of work (a denoising step of a tile/window).
    progress: Optional[Callable[[int, int, str], None]] = None
    #: ``preview(x0)``: the clean latents ``[T,4,h,w]`` (0.18215-scaled SD latents) predicted for the
    #: window just denoised: what the result will look like, not the noisy current state.
    preview: Optional[Callable[[torch.Tensor], None]] = None
    #: ``check_interrupt()``: raises (e.g. :class:`Interrupted`) when the user asked to stop.
    check_interrupt: Optional[Callable[[], None]] = None
    #: ``message(text)``: something the user should know that does not stop the run (e.g. an
    #: out-of-memory retry with smaller tiles).
    message: Optional[Callable[[str], None]] = None

    def notice(self, text: str) -> None:
        if self.message is not None:
            self.message(text)
        else:
            warnings.warn(text, RuntimeWarning, stacklevel=2)

    def interrupt_point(self) -> None:
        if self.check_interrupt is not None:
            self.check_interrupt()


class ProgressCounter:
    """Turns per-step callbacks of nested loops into one ``done / total`` count."""

    def __init__(self, hooks: Optional[Hooks], total: int, what: str):
        self.hooks, self.total, self.what, self.done = hooks, total, what, 0

    @property
    def wants_preview(self) -> bool:
        """Whether a preview is shown, so callers compute the predicted clean latents only then."""
        return self.hooks is not None and self.hooks.preview is not None

    def step(self, latents: torch.Tensor | None = None, amount: int = 1) -> None:
        """Count ``amount`` units done; ``latents`` (predicted clean latents) go to the preview."""
        self.done += amount
        if self.hooks is None:
            return
        if latents is not None and self.hooks.preview is not None:
            self.hooks.preview(latents)  # first, so the progress update below carries this step's preview
        if self.hooks.progress is not None:
            self.hooks.progress(self.done, self.total, self.what)
        self.hooks.interrupt_point()
