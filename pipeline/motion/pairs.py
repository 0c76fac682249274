"""Motion of one pair of neighbouring frames at the frames' own size, for any clip, one pair at a time.

Frame interpolation and the warping-error metric work on output frames (often 1080p or 4K) and
need, for each neighbouring pair (i, i+1), the flows both ways on those frames' grids and whether
a scene cut separates them. Two sources give it:

* :class:`ClipFlowMotion`: the MGLD_FLOW of the LR clip the frames were upscaled from. RAFT already
  ran on those frames (at about LR size), so the flows cost nothing more: crop RAFT's padding,
  scale the vectors and resize (``flow_ops.resize_flow``). Only valid for frames of that clip;
* :class:`RAFTMotion`: RAFT on the frames themselves at a chosen working resolution (any clip,
  e.g. one already interpolated), the flows scaled up the same way.

Both answer per pair, so a caller holds one pair's motion at a time, whatever the clip length. The
motion stays on the grid it was estimated on (LR size, or RAFT's working size): the occlusion check
runs there (its 0.5-pixel tolerance is in that grid's pixels, as the flow node uses it), and so can
anything else that works on the motion alone; only what touches the frames is done at their size.
"""
from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional as F

from ..defaults import CUT_THRESHOLD, RAFT_SHORT_SIDE
from .flow_ops import MIN_FLOW_INPUT_SIDE, compute_flows, occlusion_masks, resize_flow
from .field import ClipFlow, colour_histogram_jumps


@dataclasses.dataclass(frozen=True)
class PairMotion:
    """Flows and occlusion of frames 0 and 1 of a pair, on the grid they were estimated on (``[1, C, h, w]``).

    ``flow_01`` maps pixel p of frame 0 to ``p + flow_01(p)`` in frame 1 (in pixels of that grid);
    ``flow_10`` the reverse, on frame 1's grid. ``occlusion_0`` is 1 where a pixel of frame 0 has no
    consistent match in frame 1 (it is covered, or leaves the picture, by frame 1); ``occlusion_1``
    likewise for frame 1 (it was hidden in frame 0). The frames may be larger: :func:`to_size` resizes.
    """

    flow_01: torch.Tensor
    flow_10: torch.Tensor
    occlusion_0: torch.Tensor
    occlusion_1: torch.Tensor

    @classmethod
    def from_flows(cls, flow_01: torch.Tensor, flow_10: torch.Tensor) -> "PairMotion":
        """The pair's motion from its ``[1,2,h,w]`` flows, consistency-checked on their grid (1 = occluded)."""
        flow_01, flow_10 = flow_01.float(), flow_10.float()
        occlusion_0, occlusion_1 = occlusion_masks(flow_01, flow_10)  # the official thresholds
        return cls(flow_01, flow_10, occlusion_0.unsqueeze(1), occlusion_1.unsqueeze(1))


def to_size(flows: torch.Tensor, masks: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows ``[1,2k,h,w]`` (k flows: vectors scaled) and masks ``[1,c,h,w]`` (soft after resizing) at ``size``."""
    if tuple(size) == tuple(flows.shape[-2:]):
        return flows, masks
    flows = resize_flow(flows.view(-1, 2, *flows.shape[-2:]), size).view(1, -1, *size)
    return flows, F.interpolate(masks, size=tuple(size), mode="bilinear", align_corners=False)


def cut_threshold_value(threshold: float) -> float:
    """The widget's threshold as compared: 1 (a jump no pair can exceed) and above disable cut detection."""
    return float("inf") if threshold >= 1.0 else float(threshold)


def kinds_of(cuts: torch.Tensor) -> list[str]:
    """Pair kinds (``cuts.Shots.pair_kinds``) of a plain ``[N-1]`` cut mask: ``"cut"`` or ``"motion"``."""
    return ["cut" if c else "motion" for c in cuts.tolist()]


class ClipFlowMotion:
    """Per-pair motion from the LR clip's :class:`~.motion.ClipFlow`, resized to the frames being processed.

    ``cut_threshold`` re-decides the boundaries from the detector scores the flow keeps (``None``: keep the
    flow node's own decision; the flow node's manual corrections are applied again either way).
    """

    def __init__(self, flow: ClipFlow, cut_threshold: float | None = None):
        self.flow = flow
        if flow.shots is not None:
            shots = flow.shots if cut_threshold is None else flow.shots.with_threshold(cut_threshold)
            self.cuts, self.kinds = shots.blocked_pairs(), shots.pair_kinds()
        else:
            self.cuts = flow.cuts if cut_threshold is None else flow.cut_scores > cut_threshold_value(cut_threshold)
            self.kinds = kinds_of(self.cuts)

    def pair_kind(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> str:
        return self.kinds[index]

    @property
    def num_frames(self) -> int | None:
        return self.flow.num_frames

    def is_cut(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> bool:
        return bool(self.cuts[index])

    def native_flows(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flow_01, flow_10)`` of pair ``index`` on RAFT's grid with its padding cropped (``[1,2,h,w]``)."""
        ch, cw = self.flow.plan.flow_content_size
        device = frame0.device
        # The official naming: flows_backward[i] goes from frame i to i+1, flows_forward[i] from i+1 to i.
        flow_01 = self.flow.flows_backward[index:index + 1, :, :ch, :cw].to(device, torch.float32)
        flow_10 = self.flow.flows_forward[index:index + 1, :, :ch, :cw].to(device, torch.float32)
        return flow_01, flow_10

    def __call__(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> PairMotion:
        return PairMotion.from_flows(*self.native_flows(index, frame0, frame1))


def raft_working_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Frame size RAFT runs at: the short side shrunk to ``short_side`` (0 = as it is), never enlarged, but
    at least RAFT's minimum input side (smaller inputs make its coarsest correlation level degenerate)."""
    scale = 1.0 if short_side <= 0 else min(1.0, short_side / min(height, width))
    scale = max(scale, MIN_FLOW_INPUT_SIDE / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class RAFTMotion:
    """Per-pair motion from RAFT run on the frames themselves at a working resolution.

    Frames are resized (area-averaged when shrunk) so their short side is ``short_side`` pixels, RAFT runs
    both ways on the pair in one batch, and the flows go back to the frames' size. Scene cuts come from
    ``shots`` (``cuts.Shots`` of the whole clip, found once before the pairs stream through), or without it
    from the colour-histogram jump of each pair; they are checked first so that RAFT never runs across a cut.
    """

    num_frames = None  # any clip

    def __init__(self, raft, short_side: int = RAFT_SHORT_SIDE, cut_threshold: float = CUT_THRESHOLD, shots=None):
        if short_side < 0:
            raise ValueError(f"RAFT working resolution must be >= 0 pixels (0 = full size), got {short_side}")
        self.raft, self.short_side, self.cut_threshold = raft, int(short_side), cut_threshold_value(cut_threshold)
        self.kinds = None if shots is None else shots.pair_kinds()
        self._pair: tuple | None = None  # (frame0, frame1, their working-size copy) of the last pair asked about

    def pair_kind(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> str:
        if self.kinds is not None:
            if index >= len(self.kinds):
                raise ValueError(f"the scene cuts cover {len(self.kinds) + 1} frames but more frames were given")
            return self.kinds[index]
        return "cut" if self.is_cut(index, frame0, frame1) else "motion"

    def _working(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        """``[2, 3, h, w]`` working-size frames of the pair (kept for the flow call that follows the cut check)."""
        if self._pair is None or self._pair[0] is not frame0 or self._pair[1] is not frame1:
            size = raft_working_size(*frame0.shape[-2:], self.short_side)
            pair = torch.cat([frame0, frame1]).float()
            if size != tuple(pair.shape[-2:]):
                pair = F.interpolate(pair, size=size, mode="area" if size[0] < pair.shape[-2] else "bilinear")
            self._pair = (frame0, frame1, pair.clamp(0, 1))
        return self._pair[2]

    def is_cut(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> bool:
        if self.kinds is not None:
            return self.pair_kind(index, frame0, frame1) != "motion"
        return bool(colour_histogram_jumps(self._working(frame0, frame1))[0] > self.cut_threshold)

    def native_flows(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flow_01, flow_10)`` at the working resolution (``[1,2,h,w]``)."""
        pair = self._working(frame0, frame1)
        self._pair = None
        from_1_to_0, from_0_to_1 = compute_flows(self.raft, pair.unsqueeze(0))
        return from_0_to_1[0].float().to(frame0.device), from_1_to_0[0].float().to(frame0.device)

    def __call__(self, index: int, frame0: torch.Tensor, frame1: torch.Tensor) -> PairMotion:
        return PairMotion.from_flows(*self.native_flows(index, frame0, frame1))
