"""Motion-compensated frame interpolation: m times the frame rate from the clip's own motion.

Between every pair of neighbouring frames (0, 1), ``m - 1`` frames are inserted at times
``tau = k/m``. Each is made as Super SloMo (Jiang et al., CVPR 2018, eq. 1-4) makes its frames, with
the learned parts replaced by what the pack already computes (RAFT flows both ways and the
forward-backward consistency masks, ``pairs.py``):

1. **Flows from time tau** (``F_t->0``, ``F_t->1``): a backward warp needs flows on the grid of the
   frame being made, which no estimator sees. Each known frame's flow is forward-splatted to time
   tau (the pixel p of frame 0 is at ``p + tau * F_0->1(p)`` then; ``flow_ops.forward_splat``),
   carrying the two flows from that point; where pixels of both frames land on one spot, the one
   the consistency check marks occluded (about to be covered, so behind the other) gives way
   (``OCCLUDED_SPLAT_WEIGHT``), as depth orders softmax splatting (Niklaus & Liu, CVPR 2020).
   Where nothing lands (holes of diverging motion), the linear combination of Super SloMo eq. 4,
   ``F_t->0 = -(1-t) t F_0->1 + t^2 F_1->0`` and ``F_t->1 = (1-t)^2 F_0->1 - t(1-t) F_1->0``, fills
   in. That approximation alone assumes the flow at p does not change between the frames, which
   fails exactly at the edges of moving objects; the splatted flows do not. All of this happens on
   the grid the motion was estimated on (LR or RAFT's working size: it has no finer detail), and the
   flows from time tau are then resized to the frames (16 times fewer pixels splatted at x4).
2. **Warp and blend** (Super SloMo eq. 1): both frames are backward-warped to tau and blended with
   weights ``(1-t) V_0`` and ``t V_1``. The visibility ``V`` comes from the consistency masks carried
   by the splat: a spot that only frame 1 sees (revealed behind a moving object, or entering the
   picture) takes nothing from frame 0, and the reverse; samples outside a frame take no weight.
3. **Scene cuts**: across a cut the two frames show different shots and any blend is a ghost of
   both, so the inserted frames repeat the nearer frame (the earlier one at exactly half way). The
   same holds on either side of a one-frame flash (the flash stays one frame long).
4. **Dissolves and fades** (``cuts.py``): no motion is synthesised into or inside a transition (its
   frames are a blend of two shots, whose flow means nothing); the inserted frames cross-fade
   linearly between the pair, which is exactly what the source does between its frames.

Frames stream through :func:`interpolate_frames` one pair at a time (the device holds two frames
and one pair's motion), so the output clip, m times longer, never has to exist in memory.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Iterator, Optional, Protocol

import torch

from .flow_ops import flow_warp, forward_splat
from ..hooks import Hooks, ProgressCounter
from .pairs import PairMotion, to_size
from ..video_io import to_fraction

#: Frame-rate multipliers offered: 2-8 (1 passes the clip through).
MAX_MULTIPLIER = 8
#: Splat weight of a pixel the consistency check marks occluded, relative to a consistent one: where both
#: land on one spot, what is about to be covered lies behind what covers it. Small against the smallest
#: blend weight (1/8 at m = 8) and a bilinear share, yet non-zero, so an occluded pixel still fills a spot
#: that no consistent pixel reaches.
OCCLUDED_SPLAT_WEIGHT = 1e-3
#: Blend weight below which neither warped frame is trusted at a pixel (both samples fall outside the
#: picture, or each frame sees something the other does not): the nearer frame is used there as it is.
MIN_BLEND_WEIGHT = 1e-4


class MotionSource(Protocol):
    """Per-pair motion (``pair_motion.ClipFlowMotion``, ``pair_motion.RAFTMotion`` or a test's exact flows)."""

    num_frames: Optional[int]  # frames the source covers (None: any clip)

    def is_cut(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> bool: ...

    # Optional: ``"motion"``, ``"cut"`` or ``"crossfade"`` (a source without it has only motion and cuts).
    # def pair_kind(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> str: ...

    def __call__(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> PairMotion: ...


def check_multiplier(multiplier: int) -> int:
    """``multiplier`` as an int, or a ValueError naming the allowed range."""
    if isinstance(multiplier, bool) or int(multiplier) != multiplier or not 1 <= multiplier <= MAX_MULTIPLIER:
        raise ValueError(f"frame-rate multiplier must be a whole number from 1 to {MAX_MULTIPLIER}, got {multiplier}")
    return int(multiplier)


def interpolated_count(frames: int, multiplier: int) -> int:
    """Frames out for ``frames`` in: every pair gains ``m - 1`` frames; the ends stay ends (1 frame stays 1)."""
    return frames + (check_multiplier(multiplier) - 1) * max(frames - 1, 0)


def interpolated_fps(fps, multiplier: int) -> Fraction:
    """The exact new frame rate: 30000/1001 x 2 is 60000/1001, not 59.94."""
    return to_fraction(fps) * check_multiplier(multiplier)


def intermediate_times(multiplier: int) -> list[float]:
    """The times ``k/m`` (k = 1 .. m-1) of the frames inserted between two known ones."""
    m = check_multiplier(multiplier)
    return [k / m for k in range(1, m)]


def linear_intermediate_flows(motion: PairMotion, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Super SloMo eq. 4: ``(F_t->0, F_t->1)`` assuming the flow at each pixel is the same at times 0, t and 1."""
    f01, f10 = motion.flow_01, motion.flow_10
    return -(1 - tau) * tau * f01 + tau * tau * f10, (1 - tau) ** 2 * f01 - tau * (1 - tau) * f10


def intermediate_flows(motion: PairMotion, tau: float) -> tuple[torch.Tensor, ...]:
    """``(F_t->0, F_t->1, seen only by 0, seen only by 1)`` on the grid of the frame at time ``tau``.

    Frame 0's pixel p moves to ``p + tau F_0->1(p)`` and carries ``F_t->0 = -tau F_0->1(p)``, ``F_t->1 =
    (1-tau) F_0->1(p)``; frame 1's pixel q moves to ``q + (1-tau) F_1->0(q)`` and carries ``F_t->0 = tau
    F_1->0(q)``, ``F_t->1 = -(1-tau) F_1->0(q)``. Each splat is weighted by its frame's blend weight (the
    nearer frame's motion is the more accurate) and by consistency; each frame's occlusion mask rides
    along as "seen only by this frame". Holes get the linear approximation.
    """
    f01, f10 = motion.flow_01, motion.flow_10
    zero = torch.zeros_like(motion.occlusion_0)
    sums, weights, coverage = [], [], []
    for shift, carried, occlusion, blend in (
            (tau * f01, [-tau * f01, (1 - tau) * f01, motion.occlusion_0, zero], motion.occlusion_0, 1 - tau),
            ((1 - tau) * f10, [tau * f10, -(1 - tau) * f10, zero, motion.occlusion_1], motion.occlusion_1, tau)):
        weight = blend * (1 - occlusion + OCCLUDED_SPLAT_WEIGHT)
        total, weight_sum, covered = forward_splat(torch.cat(carried, 1), shift, weight)
        sums.append(total), weights.append(weight_sum), coverage.append(covered)
    splatted = (sums[0] + sums[1]) / (weights[0] + weights[1]).clamp(min=1e-12)
    linear = torch.cat([*linear_intermediate_flows(motion, tau), zero, zero], 1)
    reached = (coverage[0] + coverage[1]).clamp(0, 1)  # 0 in a hole, 1 where any pixel fully lands
    flows = reached * splatted + (1 - reached) * linear
    return flows[:, 0:2], flows[:, 2:4], flows[:, 4:5], flows[:, 5:6]


def nearer_frame(frame0: torch.Tensor, frame1: torch.Tensor, tau: float) -> torch.Tensor:
    """What a cut pair shows at ``tau``: the nearer frame, the earlier one at exactly half way."""
    return frame0 if tau <= 0.5 else frame1


def synthesize(frame0: torch.Tensor, frame1: torch.Tensor, motion: PairMotion, tau: float) -> torch.Tensor:
    """The frame at time ``tau`` (0 < tau < 1) between ``frame0`` and ``frame1`` (``[1,3,H,W]`` in [0, 1])."""
    flow_t0, flow_t1, only_0, only_1 = intermediate_flows(motion, tau)
    flows, masks = to_size(torch.cat([flow_t0, flow_t1], 1), torch.cat([only_0, only_1], 1), frame0.shape[-2:])
    (flow_t0, flow_t1), (only_0, only_1) = flows.split(2, dim=1), masks.split(1, dim=1)
    ones = torch.ones_like(frame0[:, :1])
    # A channel of ones warped along tells how much of each bilinear sample lies inside the picture
    # (the warp reads zeros outside); dividing by it weighs a sample half outside by its inside half.
    warped_0 = flow_warp(torch.cat([frame0, ones], 1), flow_t0)
    warped_1 = flow_warp(torch.cat([frame1, ones], 1), flow_t1)
    visible_0 = (1 - tau) * (1 - only_1).clamp(0, 1)  # Super SloMo's (1 - t) V_t<-0
    visible_1 = tau * (1 - only_0).clamp(0, 1)  # and t V_t<-1
    blended = visible_0 * warped_0[:, :3] + visible_1 * warped_1[:, :3]
    total = visible_0 * warped_0[:, 3:] + visible_1 * warped_1[:, 3:]
    blended = blended / total.clamp(min=MIN_BLEND_WEIGHT)
    return torch.where(total > MIN_BLEND_WEIGHT, blended, nearer_frame(frame0, frame1, tau)).clamp(0, 1)


def interpolate_pair(frame0: torch.Tensor, frame1: torch.Tensor, motion: Optional[PairMotion],
                     multiplier: int, crossfade: bool = False) -> list[torch.Tensor]:
    """The ``m - 1`` frames between ``frame0`` and ``frame1`` ``[1,3,H,W]``; ``motion=None`` marks a scene cut
    (or, with ``crossfade``, a pair inside a dissolve or fade: a linear blend)."""
    times = intermediate_times(multiplier)
    if motion is None and crossfade:
        return [(1 - tau) * frame0 + tau * frame1 for tau in times]
    if motion is None:
        return [nearer_frame(frame0, frame1, tau) for tau in times]
    return [synthesize(frame0, frame1, motion, tau) for tau in times]


def _as_model_frame(frame: torch.Tensor, device) -> torch.Tensor:
    """``[H,W,3]`` (float in [0, 1] or uint8) -> ``[1,3,H,W]`` float on ``device``."""
    if frame.dim() != 3 or frame.shape[-1] != 3:
        raise ValueError(f"expected RGB frames [H,W,3], got shape {tuple(frame.shape)}")
    x = frame.to(device)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(2, 0, 1).unsqueeze(0)


def interpolate_frames(frames: Iterable[torch.Tensor], multiplier: int, motion: MotionSource, *, device=None,
                       hooks: Optional[Hooks] = None, total: Optional[int] = None) -> Iterator[torch.Tensor]:
    """Yield the clip at m times the frame rate, frame by frame, as the input frames arrive.

    ``frames`` yields ``[H,W,3]`` frames (float in [0, 1] or uint8); the known frames are passed through
    unchanged and each pair's ``m - 1`` inserted ones (float ``[H,W,3]`` on the CPU) follow the earlier
    frame of the pair. ``motion`` gives each pair's motion and scene cuts; ``device`` is where the pair is
    worked on (default: the frames' own). ``total`` (the input frame count, when known) sizes the progress.
    """
    m = check_multiplier(multiplier)
    progress = ProgressCounter(hooks, max((total or 0) - 1, 0), "interpolating frames")
    previous, previous_frame, index = None, None, -1
    for index, frame in enumerate(frames):
        if motion.num_frames is not None and index >= motion.num_frames:
            raise ValueError(f"the motion covers {motion.num_frames} frames but more frames were given")
        current = _as_model_frame(frame, device if device is not None else frame.device)
        if previous is not None:
            if previous.shape != current.shape:
                raise ValueError(f"frame {index} is {tuple(frame.shape)}, frame {index - 1} "
                                 f"{tuple(previous_frame.shape)}: all frames of a clip must have the same size")
            yield previous_frame
            if m > 1:
                pair = index - 1
                kind = pair_kind(motion, pair, previous, current)
                moving = motion(pair, previous, current) if kind == "motion" else None
                inserted = interpolate_pair(previous, current, moving, m, crossfade=kind == "crossfade")
                for image in inserted:
                    yield image[0].permute(1, 2, 0).cpu()
                del inserted
            progress.step()  # also the host's interrupt point, between pairs
        previous, previous_frame = current, frame
    if previous_frame is not None:
        yield previous_frame
    if motion.num_frames is not None and 0 < index + 1 < motion.num_frames:
        raise ValueError(f"the motion covers {motion.num_frames} frames but {index + 1} frames were given")


def pair_kind(motion: MotionSource, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> str:
    """``"motion"``, ``"cut"`` or ``"crossfade"`` for pair ``index`` of ``motion``."""
    if hasattr(motion, "pair_kind"):
        return motion.pair_kind(index, frame0, frame1)
    return "cut" if motion.is_cut(index, frame0, frame1) else "motion"


def interpolate_video(frames: torch.Tensor, multiplier: int, motion: MotionSource, *, device=None,
                      hooks: Optional[Hooks] = None) -> torch.Tensor:
    """All of :func:`interpolate_frames` as one float ``[N + (m-1)(N-1), H, W, 3]`` tensor (allocated once)."""
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"expected RGB frames [N,H,W,3] with N >= 1, got shape {tuple(frames.shape)}")
    check_motion_covers(motion, frames.shape[0])
    n = frames.shape[0]
    out = torch.empty(interpolated_count(n, multiplier), *frames.shape[1:], dtype=torch.float32)
    stream = interpolate_frames((frames[i] for i in range(n)), multiplier, motion, device=device, hooks=hooks,
                                total=n)
    for k, frame in enumerate(stream):
        out[k] = frame.float() / 255.0 if frame.dtype == torch.uint8 else frame
    return out


def check_motion_covers(motion: MotionSource, frames: int) -> None:
    """Refuse before any work when the motion was computed for another clip (its frame count differs)."""
    if motion.num_frames is not None and motion.num_frames != frames:
        raise ValueError(f"the flow covers {motion.num_frames} frames but the clip has {frames}: connect the flow "
                         "of the clip these frames were made from, or RAFT (flows computed from the frames)")
