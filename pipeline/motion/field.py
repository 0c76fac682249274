"""Motion between neighbouring frames on the latent grid: flows, occlusion masks and scene cuts.

MGLD's guidance needs, for every pair of neighbouring frames (i, i+1), the RAFT flows in both
directions resized to the latent grid and the forward-backward consistency masks. A
:class:`MotionField` holds them for a whole clip, so the sampler can cut out any window or tile,
and it marks scene cuts so nothing is ever warped across a shot boundary.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from ...models.placement import compute_device
from ..defaults import CUT_DETECTOR, CUT_THRESHOLD, OFFICIAL_OCCLUSION_ALPHA, OFFICIAL_OCCLUSION_BETA
from .cuts import colour_histogram_jumps, find_shots, threshold_value  # noqa: F401 (colour_histogram_jumps: re-exported)
from .flow_ops import compute_flows, occlusion_masks, resize_flow
from ..numerics import RAFT_LOADER, check_finite


@dataclasses.dataclass(frozen=True)
class MotionField:
    """Per-pair motion of an N-frame clip, ``[N-1, C, h, w]`` each (official naming).

    ``flows_forward[i]``: RAFT(frame i+1, frame i), on frame i+1's grid. ``flows_backward[i]``:
    RAFT(frame i, frame i+1), on frame i's grid. ``fwd_occ[i]``/``bwd_occ[i]``: 1 = occluded, on
    frame i's / frame i+1's grid. ``cuts[i]`` is True when frames i and i+1 must not be guided onto each
    other (a scene cut between them, or either inside a transition or a flash: ``cuts.py``).
    ``window_cuts[i]`` is True where temporal windows restart (None: at ``cuts``); a flash blocks its two
    pairs without splitting windows, so the two can differ.
    """

    flows_forward: torch.Tensor
    flows_backward: torch.Tensor
    fwd_occ: torch.Tensor
    bwd_occ: torch.Tensor
    cuts: torch.Tensor
    window_cuts: Optional[torch.Tensor] = None

    def __post_init__(self):
        pairs = self.flows_forward.shape[0]
        for name in ("flows_backward", "fwd_occ", "bwd_occ"):
            value = getattr(self, name)
            if value.shape[0] != pairs or value.shape[-2:] != self.flows_forward.shape[-2:]:
                raise ValueError(f"motion field: {name} {tuple(value.shape)} does not match flows_forward "
                                 f"{tuple(self.flows_forward.shape)}")
        if self.cuts.shape != (pairs,):
            raise ValueError(f"motion field: cuts {tuple(self.cuts.shape)} should be ({pairs},)")
        if self.window_cuts is not None and self.window_cuts.shape != (pairs,):
            raise ValueError(f"motion field: window_cuts {tuple(self.window_cuts.shape)} should be ({pairs},)")

    @property
    def splits(self) -> torch.Tensor:
        """``[N-1]`` bool: where temporal windows restart."""
        return self.cuts if self.window_cuts is None else self.window_cuts

    @property
    def num_frames(self) -> int:
        return self.flows_forward.shape[0] + 1

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.flows_forward.shape[-2:])

    @classmethod
    def still(cls, num_frames: int, size: tuple[int, int], device=None) -> "MotionField":
        """No motion, nothing occluded, no cuts (for single frames and tests)."""
        pairs, (h, w) = max(num_frames - 1, 0), size
        zeros = torch.zeros(pairs, 2, h, w, device=device)
        mask = torch.zeros(pairs, 1, h, w, device=device)
        return cls(zeros, zeros.clone(), mask, mask.clone(), torch.zeros(pairs, dtype=torch.bool, device=device))

    def frames(self, start: int, stop: int) -> "MotionField":
        """The motion of frames ``start .. stop-1`` (their stop-start-1 pairs)."""
        if not 0 <= start < stop <= self.num_frames:
            raise IndexError(f"frames {start}..{stop - 1} outside a clip of {self.num_frames}")
        pick = slice(start, stop - 1)
        return MotionField(self.flows_forward[pick], self.flows_backward[pick], self.fwd_occ[pick],
                           self.bwd_occ[pick], self.cuts[pick],
                           None if self.window_cuts is None else self.window_cuts[pick])

    def crop(self, y: int, x: int, height: int, width: int) -> "MotionField":
        """A spatial window of the latent grid (flow vectors are offsets, so they need no change)."""
        area = (slice(None), slice(None), slice(y, y + height), slice(x, x + width))
        return MotionField(self.flows_forward[area], self.flows_backward[area], self.fwd_occ[area],
                           self.bwd_occ[area], self.cuts, self.window_cuts)

    def batched(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(flows_forward, flows_backward, fwd_occ, bwd_occ)`` as one video ``[1, N-1, C, h, w]``."""
        return tuple(t.unsqueeze(0) for t in (self.flows_forward, self.flows_backward, self.fwd_occ, self.bwd_occ))

    def to(self, device) -> "MotionField":
        return MotionField(*(None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                             for f in dataclasses.fields(self)))


def occlusion_for_pairs(flows_forward: torch.Tensor, flows_backward: torch.Tensor,
                        alpha: float = OFFICIAL_OCCLUSION_ALPHA,
                        beta: float = OFFICIAL_OCCLUSION_BETA) -> tuple[torch.Tensor, torch.Tensor]:
    """Consistency check of every pair, called as the official code does: ``fwd`` = i -> i+1 flows."""
    fwd_occ, bwd_occ = occlusion_masks(flows_backward, flows_forward, alpha=alpha, beta=beta)
    if fwd_occ.dim() == 3:
        fwd_occ, bwd_occ = fwd_occ.unsqueeze(1), bwd_occ.unsqueeze(1)
    return fwd_occ, bwd_occ


#: Pairs resized and occlusion-checked at a time when a clip's latent-grid motion is derived.
MOTION_PAIRS_PER_CHUNK = 16


@dataclasses.dataclass(frozen=True)
class ClipFlow:
    """Flows of a whole clip at RAFT resolution for one :class:`~.frames.LRPlan`, plus scene cuts.

    This is what the flow node outputs: samplers with another scale or mode derive their
    latent-grid :class:`MotionField` from it without running RAFT again. ``tail_*`` hold RAFT of
    the last frame against itself, which the official mode needs for its repeated-frame padding.
    """

    flows_forward: torch.Tensor  # [N-1, 2, hf, wf]
    flows_backward: torch.Tensor
    tail_forward: torch.Tensor  # [1, 2, hf, wf]
    tail_backward: torch.Tensor
    plan: object  # the LRPlan the flows were computed for
    cuts: torch.Tensor  # [N-1] bool: pairs never guided (cuts, transitions, flashes)
    cut_scores: torch.Tensor  # [N-1] the detector's score per pair
    shots: Optional[object] = None  # the cuts.Shots they come from (None: cuts split windows too)

    @property
    def window_cuts(self) -> torch.Tensor:
        """``[N-1]`` bool: where temporal windows restart (hard cuts, and both ends of a transition)."""
        return self.cuts if self.shots is None else self.shots.window_cuts().to(self.cuts.device)

    @property
    def num_frames(self) -> int:
        return self.flows_forward.shape[0] + 1

    def motion_for(self, plan) -> MotionField:
        """Latent-grid motion of all neighbouring pairs for ``plan`` (occlusion checked on that grid)."""
        if self.num_frames < 2:
            return MotionField.still(self.num_frames, plan.latent_size, device=self.flows_forward.device)
        return self._motion(self.flows_forward, self.flows_backward, self.cuts, plan, self.window_cuts)

    def segment_motion(self, frames: list[int], plan) -> MotionField:
        """Motion of an arbitrary run of frames, e.g. an official segment ``[a, a+1, ..., N-1, N-1]``."""
        ff, fb = [], []
        for a, b in zip(frames[:-1], frames[1:]):
            if b == a + 1:
                ff.append(self.flows_forward[a])
                fb.append(self.flows_backward[a])
            elif a == b == self.num_frames - 1:
                ff.append(self.tail_forward[0])
                fb.append(self.tail_backward[0])
            else:
                raise ValueError(f"frames {a} and {b} are not neighbours")
        if not ff:
            return MotionField.still(1, plan.latent_size, device=self.flows_forward.device)
        cuts = torch.zeros(len(ff), dtype=torch.bool, device=self.flows_forward.device)
        return self._motion(torch.stack(ff), torch.stack(fb), cuts, plan)

    def _motion(self, ff: torch.Tensor, fb: torch.Tensor, cuts: torch.Tensor, plan,
                window_cuts: Optional[torch.Tensor] = None) -> MotionField:
        """Every pair is resized and checked on its own, ``MOTION_PAIRS_PER_CHUNK`` pairs at a time, into
        preallocated outputs: a long clip's temporaries stay the size of one chunk."""
        pairs = ff.shape[0]
        h, w = plan.latent_size
        out = {name: ff.new_empty(pairs, c, h, w) for name, c in (("ff", 2), ("fb", 2), ("fo", 1), ("bo", 1))}
        for a in range(0, pairs, MOTION_PAIRS_PER_CHUNK):
            part = slice(a, a + MOTION_PAIRS_PER_CHUNK)
            if plan.padded == self.plan.padded:
                cf, cb = resize_flow(ff[part], (h, w)), resize_flow(fb[part], (h, w))
            else:  # another scale: map the picture area onto the picture area, replicate into the padding
                cf, cb = _content_resize(ff[part], self.plan, plan), _content_resize(fb[part], self.plan, plan)
            fo, bo = occlusion_for_pairs(cf, cb)
            for name, value in (("ff", cf), ("fb", cb), ("fo", fo), ("bo", bo)):
                out[name][part] = value
        return MotionField(out["ff"], out["fb"], out["fo"], out["bo"], cuts.to(ff.device),
                           None if window_cuts is None else window_cuts.to(ff.device))

    def to(self, device) -> "ClipFlow":
        moved = {f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **moved)


def _content_resize(flow: torch.Tensor, source, target) -> torch.Tensor:
    ch, cw = source.flow_content_size
    th, tw = target.latent_size
    dh = max(1, min(th, round(target.upsampled[0] / 8)))
    dw = max(1, min(tw, round(target.upsampled[1] / 8)))
    content = resize_flow(flow[..., :ch, :cw], (dh, dw))
    return torch.nn.functional.pad(content, (0, tw - dw, 0, th - dh), mode="replicate")


#: RAFT input pixels per call (frames x height x width): its correlation volumes grow with the
#: frame size, so 4K clips are sent 8 frames at a time (about 4 GB) and 1080p ones 16.
FLOW_PIXELS_PER_CALL = 4_300_000


def flow_chunk_for(plan) -> int:
    """Frames per RAFT call for frames of ``plan``: 16, fewer when they are large."""
    return max(2, min(16, FLOW_PIXELS_PER_CALL // (plan.flow_size[0] * plan.flow_size[1])))


#: Where the clip-long flows are kept: host RAM, so the accelerator holds one chunk at a time.
HOST = torch.device("cpu")


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in host RAM. A storage-free (meta) tensor, as used to count accelerator memory, has no
    values to copy: it gets a zero-filled host twin of its shape and dtype."""
    if tensor.is_meta:
        return torch.zeros(tensor.shape, dtype=tensor.dtype, device=HOST)
    return tensor.to(HOST)


@dataclasses.dataclass(frozen=True)
class FlowChunk:
    """A unit of the flow stage: consecutive LR frames (a chunk shares its first frame with the previous one)."""

    frames: torch.Tensor  # [c,H,W,3]
    plan: object
    tail: bool  # the clip's last chunk: also RAFT of its last frame against itself (official padding)


def estimator_placement(raft) -> tuple[torch.device, torch.dtype]:
    """Device and precision of the flow estimator: RAFT's, or the CPU in float32 for an estimator
    without parameters (a classical flow method, as the quality benchmark's stand-in uses)."""
    if isinstance(raft, torch.nn.Module) and next(raft.parameters(), None) is not None:
        return compute_device(raft), next(raft.parameters()).dtype
    return torch.device("cpu"), torch.float32


def flow_chunk(networks, unit: FlowChunk) -> dict:
    """RAFT both ways between the chunk's neighbours, and the tail flows (scene cuts are found once per clip
    by :func:`clip_flows`, not per chunk: a shot-boundary network needs 50 frames of context either side)."""
    from ..frames import flow_network_input

    raft = networks["raft"]
    device, raft_dtype = estimator_placement(raft)
    prepared = flow_network_input(unit.plan.prepare(unit.frames, device))
    out = {}
    if unit.frames.shape[0] > 1:
        pair_ff, pair_fb = compute_flows(raft, prepared.unsqueeze(0))
        check_finite(pair_ff, "optical flow (RAFT)", raft_dtype, RAFT_LOADER)
        check_finite(pair_fb, "optical flow (RAFT)", raft_dtype, RAFT_LOADER)
        out["ff"], out["fb"] = to_host(pair_ff[0]), to_host(pair_fb[0])
        del pair_ff, pair_fb
    if unit.tail:
        tail_ff, tail_fb = compute_flows(raft, torch.stack([prepared[-1], prepared[-1]]).unsqueeze(0))
        out["tail_ff"], out["tail_fb"] = to_host(tail_ff[0].float()), to_host(tail_fb[0].float())
    return out


def clip_flows(raft, frames: torch.Tensor, plan, *, cut_threshold: float = CUT_THRESHOLD, chunk: int | None = None,
               hooks=None, executor=None, cut_detector: str = CUT_DETECTOR, manual_cuts=None) -> ClipFlow:
    """RAFT flows between all neighbouring frames of ``frames [N,H,W,3]``, in chunks of ``chunk`` frames.

    ``raft`` is the RAFT network, or any flow estimator called the same way (``flow_ops.compute_flows``:
    two ``[n,3,h,w]`` batches in [0, 1] -> ``[n,2,h,w]``); one without parameters runs on the CPU.

    ``chunk`` defaults to 16 frames, fewer for large frames (``FLOW_PIXELS_PER_CALL``). ``executor``
    (default: this process) computes the chunks.

    Frames are prepared as the official script prepares them (upsample, pad, quarter size) so the
    official mode gets exactly its flows; consecutive chunks share one frame so every pair is seen once.
    RAFT runs on its own device one chunk at a time; the clip's flows and cut scores are collected
    in host RAM (:data:`HOST`), so the accelerator's memory does not grow with the clip.

    Scene cuts are found here, once per clip and in this process whatever the executor (``cuts.find_shots``:
    ``cut_detector`` at ``cut_threshold``, corrected by ``manual_cuts``), before RAFT runs, so a bad manual
    list is refused before any work; ``cut_threshold`` 1 or above finds none.
    """
    from ..workers.executor import LOCAL
    from ..hooks import ProgressCounter

    if chunk is None:
        chunk = flow_chunk_for(plan)
    if chunk < 2:
        raise ValueError(f"flow chunk must hold at least 2 frames, got {chunk}")
    n = frames.shape[0]
    if n < 1:
        raise ValueError("no frames to compute flow for")
    detector = cut_detector if threshold_value(cut_threshold) < float("inf") else "none"
    device = estimator_placement(raft)[0]  # TransNetV2 runs where RAFT does (the CPU for a storage-free count)
    shots = find_shots(frames, detector, cut_threshold, manual_cuts, hooks=hooks,
                       device=device if device.type in ("cuda", "mps", "xpu") else None)
    progress = ProgressCounter(hooks, n, "optical flow")
    # Filled chunk by chunk in host RAM: the clip's flows exist once (no list of chunks concatenated at the end).
    hf, wf = plan.flow_size
    ff = torch.empty(n - 1, 2, hf, wf, device=HOST)
    fb = torch.empty(n - 1, 2, hf, wf, device=HOST)
    starts = [0]
    while starts[-1] + chunk < n:
        starts.append(starts[-1] + chunk - 1)
    units = (FlowChunk(frames[start:min(n, start + chunk)], plan, start == starts[-1]) for start in starts)
    for start, out in zip(starts, (executor or LOCAL).map(flow_chunk, units, {"raft": raft})):
        stop = min(n, start + chunk)
        if stop - start > 1:
            ff[start:stop - 1] = out["ff"]
            fb[start:stop - 1] = out["fb"]
        progress.step(amount=stop - start - (start > 0))
    return ClipFlow(ff, fb, out["tail_ff"], out["tail_fb"], plan, shots.blocked_pairs(), shots.pair_scores(), shots)
