"""Progress, latent previews and cooperative interruption, without any host import.

The pipeline calls these at every denoising step; the ComfyUI adapter plugs in its progress bar,
preview and interrupt check, the headless runner :class:`TerminalProgress`. All are optional.
"""
from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from typing import Callable, Optional, TextIO

import torch


class Interrupted(RuntimeError):
    """Raised by an interrupt check to stop a run between steps."""


@dataclasses.dataclass
class Hooks:
    #: ``progress(done, total, what)``: called after every unit of work (a denoising step of a tile/window).
    progress: Optional[Callable[[int, int, str], None]] = None
    #: ``preview(x0)``: the clean latents ``[T,4,h,w]`` (SD latents times :data:`~.defaults.LATENT_SCALE`)
    #: predicted for the window just denoised: what the result will look like, not the noisy current state.
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
        if hooks is not None and hooks.progress is not None:
            hooks.progress(0, total, what)  # the stage starts now: its clock (elapsed, rate, ETA) starts here

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


#: The plain progress line (logs): the same figures a terminal bar shows, without the bar.
PLAIN_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f} %), {elapsed} elapsed, {remaining} left, {rate_fmt}"


class TerminalProgress:
    """``Hooks.progress`` for a console: one bar per stage with elapsed time, rate and ETA (tqdm) on a
    terminal; where the output is not a terminal (a log file, a pipe), plain lines with the same figures
    at every tenth of the stage (and at least every ``line_seconds``) instead of ``\\r`` updates.

    A stage is one ``what`` counted from 0 to ``total``; a new ``what`` or a count that starts over
    begins a new one."""

    def __init__(self, stream: Optional[TextIO] = None, line_seconds: float = 60.0):
        self.stream = stream
        self.line_seconds = line_seconds
        self._stage: Optional[tuple[str, int]] = None
        self._bar = None
        self._start = self._last_line = 0.0
        self._last_tenth = -1
        self._done = 0

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _interactive(self) -> bool:
        isatty = getattr(self._out, "isatty", None)
        return bool(isatty and isatty())

    def __call__(self, done: int, total: int, what: str) -> None:
        if self._stage != (what, total) or done < self._done:
            self.close()
            self._begin(what, total)
        self._done = done
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        else:
            now = time.monotonic()
            tenth = 10 * done // max(total, 1)
            if tenth != self._last_tenth or now - self._last_line >= self.line_seconds or done >= total:
                self._line(done, total, what, now)
                self._last_tenth, self._last_line = tenth, now
        if done >= total:
            self.close()

    def _begin(self, what: str, total: int) -> None:
        self._stage, self._done, self._last_tenth = (what, total), 0, -1
        self._start = self._last_line = time.monotonic()
        if self._interactive():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, file=self._out, dynamic_ncols=True, mininterval=0.5, leave=True)

    def _line(self, done: int, total: int, what: str, now: float) -> None:
        from tqdm import tqdm

        text = tqdm.format_meter(done, total, now - self._start, prefix=what, bar_format=PLAIN_FORMAT)
        self._out.write(text + "\n")
        self._out.flush()

    def close(self) -> None:
        """End the current stage (its bar stays on screen)."""
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None
