"""Motion between neighbouring frames on the latent grid: flows, occlusion masks and scene cuts.

MGLD's guidance needs, for every pair of neighbouring frames (i, i+1), the RAFT flows in both
directions resized to the latent grid and the forward-backward consistency masks. A
:class:`MotionField` holds them for a whole clip, so the sampler can cut out any window or tile,
and it marks scene cuts so nothing is ever warped across a shot boundary.
"""
from __future__ import annotations

import dataclasses

import torch

from .flow_ops import compute_flows, occlusion_masks, resize_flow

#: The official consistency-check constants.
OCCLUSION_ALPHA = 0.01
OCCLUSION_BETA = 0.5


@dataclasses.dataclass(frozen=True)
class MotionField:
    """Per-pair motion of an N-frame clip, ``[N-1, C, h, w]`` each (official naming).

    ``flows_forward[i]``: RAFT(frame i+1, frame i), on frame i+1's grid. ``flows_backward[i]``:
    RAFT(frame i, frame i+1), on frame i's grid. ``fwd_occ[i]``/``bwd_occ[i]``: 1 = occluded, on
    frame i's / frame i+1's grid. ``cuts[i]`` is True when frames i and i+1 belong to different shots.
    """

    flows_forward: torch.Tensor
    flows_backward: torch.Tensor
    fwd_occ: torch.Tensor
    bwd_occ: torch.Tensor
    cuts: torch.Tensor

    def __post_init__(self):
        pairs = self.flows_forward.shape[0]
        for name in ("flows_backward", "fwd_occ", "bwd_occ"):
            value = getattr(self, name)
            if value.shape[0] != pairs or value.shape[-2:] != self.flows_forward.shape[-2:]:
                raise ValueError(f"motion field: {name} {tuple(value.shape)} does not match flows_forward "
                                 f"{tuple(self.flows_forward.shape)}")
        if self.cuts.shape != (pairs,):
            raise ValueError(f"motion field: cuts {tuple(self.cuts.shape)} should be ({pairs},)")

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
                           self.bwd_occ[pick], self.cuts[pick])

    def crop(self, y: int, x: int, height: int, width: int) -> "MotionField":
        """A spatial window of the latent grid (flow vectors are offsets, so they need no change)."""
        area = (slice(None), slice(None), slice(y, y + height), slice(x, x + width))
        return MotionField(self.flows_forward[area], self.flows_backward[area], self.fwd_occ[area],
                           self.bwd_occ[area], self.cuts)

    def batched(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(flows_forward, flows_backward, fwd_occ, bwd_occ)`` as one video ``[1, N-1, C, h, w]``."""
        return tuple(t.unsqueeze(0) for t in (self.flows_forward, self.flows_backward, self.fwd_occ, self.bwd_occ))

    def to(self, device) -> "MotionField":
        return MotionField(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def occlusion_for_pairs(flows_forward: torch.Tensor, flows_backward: torch.Tensor,
                        alpha: float = OCCLUSION_ALPHA, beta: float = OCCLUSION_BETA) -> tuple[torch.Tensor, torch.Tensor]:
    """Consistency check of every pair, called as the official code does: ``fwd`` = i -> i+1 flows."""
    fwd_occ, bwd_occ = occlusion_masks(flows_backward, flows_forward, alpha=alpha, beta=beta)
    if fwd_occ.dim() == 3:
        fwd_occ, bwd_occ = fwd_occ.unsqueeze(1), bwd_occ.unsqueeze(1)
    return fwd_occ, bwd_occ


def colour_histogram_jumps(frames01: torch.Tensor, bins: int = 32) -> torch.Tensor:
    """Per neighbouring pair, half the L1 distance of the normalised RGB histograms (0 = same, 1 = disjoint).

    Shot boundaries change the colour distribution abruptly, while motion inside a shot barely does.
    """
    if frames01.shape[0] < 2:
        return torch.zeros(0, device=frames01.device)
    n = frames01.shape[0]
    q = (frames01.clamp(0, 1) * (bins - 1)).round().long().reshape(n, 3, -1)
    q = q + torch.arange(3, device=q.device).view(1, 3, 1) * bins
    hist = torch.zeros(n, 3 * bins, device=frames01.device).scatter_add_(1, q.reshape(n, -1), torch.ones_like(q.reshape(n, -1), dtype=torch.float32))
    hist = hist / (3 * q.shape[-1])
    return (hist[1:] - hist[:-1]).abs().sum(dim=1) / 2


def estimate_motion(raft, flow_frames: torch.Tensor, latent_size: tuple[int, int], *, cut_threshold: float = 0.5,
                    pairs_per_call: int | None = None, cut_frames: torch.Tensor | None = None) -> MotionField:
    """RAFT flows between neighbouring frames ``flow_frames [N,3,H,W]`` (RGB in [0,1]) -> latent-grid motion.

    Flows are resized to ``latent_size`` with their vectors rescaled, then checked for consistency.
    Pairs whose colour-histogram jump (on ``cut_frames``, default the flow frames) exceeds
    ``cut_threshold`` are marked as scene cuts; ``cut_threshold >= 1`` disables detection.
    """
    n = flow_frames.shape[0]
    h, w = latent_size
    if n < 2:
        return MotionField.still(n, latent_size, device=flow_frames.device)
    flows_forward, flows_backward = compute_flows(raft, flow_frames.unsqueeze(0), max_pairs_per_call=pairs_per_call)
    flows_forward = resize_flow(flows_forward[0].float(), (h, w))
    flows_backward = resize_flow(flows_backward[0].float(), (h, w))
    fwd_occ, bwd_occ = occlusion_for_pairs(flows_forward, flows_backward)
    jumps = colour_histogram_jumps(flow_frames if cut_frames is None else cut_frames)
    cuts = (jumps > cut_threshold).to(flows_forward.device)
    return MotionField(flows_forward, flows_backward, fwd_occ, bwd_occ, cuts)
