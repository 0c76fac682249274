"""Region preview: the full run's sampling plan executed on a box of the latent grid and a run of frames.

Tuning the guidance strength by re-running the whole clip costs the whole run per value. The preview
samples only a region of the output, with a context margin around it, and does it the way the full
run does it there:

* the same noise at every position: the default mode draws its noise with one CPU generator over
  the whole clip (posterior draw, start noise, one draw per step, in that order, see ``loop.py``);
  the preview makes exactly those full-size draws and keeps its slice (:class:`RegionNoise`);
* the same layout: every step's windows and tiles are the full plan's (``plan.py``), restricted to
  the sampled frames and box (:func:`restrict_plan`); a tile cut by the box edge is run on its
  part inside the box (rounded up to the UNet's 8-pixel unit with context from the box, which only
  serves as context) and keeps the full tile's blending weights there, so a latent pixel is
  predicted by the same set of tiles, windows and weights as in the full run;
* the same guidance: the clip-wide loss restricted to the sampled frames and box
  (:meth:`MotionField.frames`, :meth:`MotionField.crop`);
* the same LR latents: whole frames are encoded (the first-stage encoder has global attention)
  and the box cut from them.

What differs, and why a margin is needed: the UNet of a tile cut by the box sees less context than
the whole tile; the guidance's warps look outside the box; windows cut by the first or last sampled
frame see fewer frames; each step feeds those differences one tile or window further inwards. The
margin keeps them away from the region; ``benchmarks/preview.py`` measures how fast they fade
(docs/preview.md), which is where :data:`~..defaults.PREVIEW_MARGIN` comes from. The official mode has
no preview: its image tiles are re-seeded (each tile's noise depends on the tile's shape, not its
place) and its segments' guidance is per segment; see docs/preview.md.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Sequence

import torch

from ..defaults import LATENT_TILE_STEP
from ..hooks import Hooks, ProgressCounter
from ..motion.field import MotionField
from .denoise import tile_predictor
from .guidance import GUIDANCE_PAIRS_PER_CHUNK, clip_guidance_step
from .plan import SamplingPlan
from .schedule import ddpm_step, q_sample_respace
from .tiling import gaussian_tile_weights
from .windows import Window, plan_windows

__all__ = ["Extent", "RegionStep", "RegionNoise", "region_extent", "restrict_plan", "sample_region",
           "decoder_windows", "most_motion_box"]


@dataclasses.dataclass(frozen=True)
class Extent:
    """What a preview samples: frames ``[start, stop)`` and the latent box ``[y0, y1) x [x0, x1)``."""

    start: int
    stop: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def frames(self) -> int:
        return self.stop - self.start

    @property
    def size(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def area(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def _aligned_side(low: int, high: int, length: int, unit: int = LATENT_TILE_STEP) -> tuple[int, int]:
    """``[a, b)`` covering ``[low, high)`` inside ``[0, length)``: a multiple of ``unit`` long, or the whole side.

    Box sides that are whole units keep every part of a cut tile runnable (:func:`_pieces`)."""
    a, b = max(0, low - low % unit), min(length, -(-high // unit) * unit)
    if (b - a) % unit:
        a = max(0, b - -(-(b - a) // unit) * unit)
    if (b - a) % unit:
        a, b = 0, length
    return a, b


def decoder_windows(num_frames: int, window: int, cuts: Optional[torch.Tensor]) -> list[Window]:
    """The decoder's temporal windows of the whole clip (``decoding/cfw.py``: disjoint, restarting at cuts)."""
    from ..decoding.cfw import DECODE_WINDOW_OVERLAP

    return plan_windows(num_frames, window, min(DECODE_WINDOW_OVERLAP, window - 1), cuts)


def region_extent(plan: SamplingPlan, frames: tuple[int, int], box: tuple[int, int, int, int], margin: int,
                  frame_margin: int, decode_window: int) -> Extent:
    """The frames and latent box a preview of output ``frames [a, b)`` and latent ``box (y, x, h, w)`` samples.

    Frames: every decoder window holding a shown frame (the decoder mixes a window's frames), then
    ``frame_margin`` more on each side, within the shot's clip. Box: ``margin`` latent pixels around
    ``box``, aligned to whole 8-pixel units, within the latent grid.
    """
    n, (h, w) = plan.num_frames, plan.latent_size
    shown = set(range(*frames))
    if not shown or min(shown) < 0 or max(shown) >= n:
        raise ValueError(f"frames {frames[0]}..{frames[1] - 1} are not inside a clip of {n} frames")
    covering = [f for win in decoder_windows(n, decode_window, plan.cuts) if shown & set(win.frames)
                for f in win.frames]
    start = max(0, min(covering) - frame_margin)
    stop = min(n, max(covering) + 1 + frame_margin)
    y, x, bh, bw = box
    y0, y1 = _aligned_side(y - margin, y + bh + margin, h)
    x0, x1 = _aligned_side(x - margin, x + bw + margin, w)
    return Extent(start, stop, y0, y1, x0, x1)


@dataclasses.dataclass(frozen=True)
class Piece:
    """A full-plan tile's part inside the box, in box coordinates: run on ``(y, x, h, w)``, kept where ``weight > 0``."""

    y: int
    x: int
    h: int
    w: int
    weight: torch.Tensor  # [h, w] float64: the full tile's blending weight on its own part, 0 on borrowed context


@dataclasses.dataclass(frozen=True)
class RegionStep:
    """One step of the full plan restricted to an :class:`Extent` (frames local to the extent)."""

    index: int
    j: int
    t_model: int
    windows: tuple[Window, ...]
    pieces: tuple[Piece, ...]


def _restrict_window(window: Window, extent: Extent) -> Optional[Window]:
    kept = [(f - extent.start, wt) for f, wt in zip(window.frames, window.weights) if extent.start <= f < extent.stop]
    if not kept:
        return None
    if len(kept) == 1:  # a window cut to one frame: shown twice, as short shots are mirrored (the copy has no weight)
        kept.append((kept[0][0], 0.0))
    return Window(tuple(f for f, _ in kept), tuple(wt for _, wt in kept))


def _side_piece(t0: int, t1: int, b0: int, b1: int, unit: int = LATENT_TILE_STEP) -> Optional[tuple[int, int, int, int]]:
    """``(run_start, run_stop, own_start, own_stop)`` in box coordinates of tile side ``[t0, t1)`` cut by ``[b0, b1)``."""
    c0, c1 = max(t0, b0), min(t1, b1)
    if c0 >= c1:
        return None
    size = c1 - c0
    if size % unit and (c0, c1) != (t0, t1):
        size = min(-(-size // unit) * unit, b1 - b0)
    r0 = c0 if c0 + size <= b1 else b1 - size
    return r0 - b0, r0 - b0 + size, c0 - b0, c1 - b0


def _pieces(step_tiles, blended: bool, extent: Extent) -> tuple[Piece, ...]:
    pieces = []
    weights_of = {}
    for ty, tx, th, tw in step_tiles:
        ys = _side_piece(ty, ty + th, extent.y0, extent.y1)
        xs = _side_piece(tx, tx + tw, extent.x0, extent.x1)
        if ys is None or xs is None:
            continue
        (ry0, ry1, oy0, oy1), (rx0, rx1, ox0, ox1) = ys, xs
        if blended:
            if (th, tw) not in weights_of:
                weights_of[(th, tw)] = gaussian_tile_weights(th, tw)
            full = weights_of[(th, tw)]
        else:
            full = torch.ones(th, tw, dtype=torch.float64)
        weight = torch.zeros(ry1 - ry0, rx1 - rx0, dtype=torch.float64)
        # the own part [o0, o1) of the run part, in the full tile's coordinates at o0 + box origin - tile origin
        gy, gx = oy0 + extent.y0 - ty, ox0 + extent.x0 - tx
        weight[oy0 - ry0:oy1 - ry0, ox0 - rx0:ox1 - rx0] = full[gy:gy + oy1 - oy0, gx:gx + ox1 - ox0]
        pieces.append(Piece(ry0, rx0, ry1 - ry0, rx1 - rx0, weight))
    return tuple(pieces)


def restrict_plan(plan: SamplingPlan, extent: Extent) -> list[RegionStep]:
    """Every step of ``plan`` on ``extent``: its windows cut to the sampled frames, its tiles to the box."""
    steps = []
    for step in plan.steps:
        windows = tuple(w for w in (_restrict_window(win, extent) for win in step.windows) if w is not None)
        steps.append(RegionStep(step.index, step.j, step.t_model, windows,
                                _pieces(step.tiles.tiles, step.tiles.blended, extent)))
    return steps


@dataclasses.dataclass
class RegionNoise:
    """The full run's draws on the extent: posterior, start and per-step noise, drawn full size and sliced.

    The default mode's generator hands out whole-clip tensors in a fixed order, so the only way to get
    the same number at a position is to make the same draws; drawing is cheap next to the networks (a
    100-frame 1080p clip: 13 M numbers per draw). Kept for every step, so a sweep draws once.
    """

    posterior: torch.Tensor  # [frames, 4, h, w] of the whole frames (the encoder sees whole frames)
    start: torch.Tensor  # [frames, 4, bh, bw]
    steps: list[torch.Tensor]

    @classmethod
    def draw(cls, seed: int, num_frames: int, latent_size: tuple[int, int], steps: int, extent: Extent) -> "RegionNoise":
        generator = torch.Generator().manual_seed(int(seed))
        shape = (num_frames, 4, *latent_size)
        frames = slice(extent.start, extent.stop)
        posterior = torch.randn(shape, generator=generator)[frames].clone()
        start = torch.randn(shape, generator=generator)[frames][(...,) + extent.area].clone()
        per_step = [torch.randn(shape, generator=generator)[frames][(...,) + extent.area].clone() for _ in range(steps)]
        return cls(posterior, start, per_step)


def region_eps(networks: dict, x: torch.Tensor, lr_latent: torch.Tensor, step: RegionStep, device: torch.device,
               between: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """The step's noise prediction on the box: every restricted window's pieces, blended as the full run blends them."""
    eps_sum = torch.zeros_like(x)
    weight_sum = torch.zeros(x.shape[0])
    for window in step.windows:
        index = torch.tensor(window.frames)
        xw, lw = x[index].to(device), lr_latent[index].to(device)
        predict = tile_predictor(networks["unet"], networks["lr_encoder"], xw, lw, step.t_model, networks["context"],
                                 num_frames=len(window.frames), between_tiles=between)
        numerator = torch.zeros(xw.shape, dtype=torch.float64)
        denominator = torch.zeros((1, 1, *xw.shape[-2:]), dtype=torch.float64)
        for piece in step.pieces:
            (pred,) = predict([(piece.y, piece.x)], piece.h, piece.w)
            area = (slice(None), slice(None), slice(piece.y, piece.y + piece.h), slice(piece.x, piece.x + piece.w))
            numerator[area] += pred.to("cpu", torch.float64) * piece.weight
            denominator[area] += piece.weight
        eps = (numerator / denominator).float()
        frame_weights = torch.tensor(window.weights)
        eps_sum.index_add_(0, index, eps * frame_weights.view(-1, 1, 1, 1))
        weight_sum.index_add_(0, index, frame_weights)
    return eps_sum / weight_sum.view(-1, 1, 1, 1)


def sample_region(plan: SamplingPlan, extent: Extent, lr_latent: torch.Tensor, noise: RegionNoise,
                  motion: MotionField, strength: float, *, networks: dict, device: torch.device,
                  hooks: Optional[Hooks] = None) -> torch.Tensor:
    """Clean latents ``[frames, 4, bh, bw]`` of the extent at guidance ``strength``: the loop of ``sample_video``
    (denoise, DDPM step, guidance) over the restricted plan.

    ``lr_latent`` is the extent's box of the LR latents; ``motion`` the whole clip's (cut here).
    """
    strength = float(strength)
    if not (math.isfinite(strength) and strength >= 0):
        raise ValueError(f"guidance strength must be a finite number >= 0, got {strength}")
    steps = restrict_plan(plan, extent)
    local_motion = motion.frames(extent.start, extent.stop).crop(extent.y0, extent.x0, *extent.size) \
        if extent.frames > 1 else None
    progress = ProgressCounter(hooks, len(steps), f"preview (strength {strength:g})")
    between = hooks.interrupt_point if hooks is not None else None
    x = q_sample_respace(plan.schedule, lr_latent, noise.start)
    for step, draw in zip(steps, noise.steps):
        eps = region_eps(networks, x, lr_latent, step, device, between)
        x = ddpm_step(plan.schedule, step.j, x, eps, draw)
        if local_motion is not None:
            x, _ = clip_guidance_step(x, plan.schedule, step.j, local_motion, strength, device=device,
                                      pairs_per_chunk=GUIDANCE_PAIRS_PER_CHUNK)
        progress.step()
    return x


def most_motion_box(motion: MotionField, frames: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """``(y, x)`` of the latent box of ``size`` with the largest mean flow magnitude over ``frames [a, b)``:
    where guidance has the most to do (``auto`` region)."""
    a, b = frames
    h, w = motion.size
    bh, bw = min(size[0], h), min(size[1], w)
    if motion.num_frames < 2 or b - a < 2:
        return (h - bh) // 2, (w - bw) // 2
    pick = slice(a, max(a + 1, b - 1))
    magnitude = (motion.flows_forward[pick].float().norm(dim=1).mean(0)
                 + motion.flows_backward[pick].float().norm(dim=1).mean(0))
    pooled = torch.nn.functional.avg_pool2d(magnitude[None, None], (bh, bw), stride=1)[0, 0]
    flat = int(torch.argmax(pooled))
    return flat // pooled.shape[1], flat % pooled.shape[1]

