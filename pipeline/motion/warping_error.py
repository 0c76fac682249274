"""Temporal consistency metric of the paper: the mean flow-warping error between neighbouring frames.

E_i = mean over non-occluded pixels of |W(frame_{i+1}, flow_{i->i+1}) - frame_i|, frames in [0, 1],
flows resized to the frames' size. Lower is more temporally consistent. The flows are those of the
LR clip the frames were upscaled from (an MGLD_FLOW), or RAFT's on the frames themselves for clips
with another frame count (an interpolated one); see ``pairs.py``. Pairs are measured one at
a time, so a long clip at 1080p never has all its flows at full size at once.
"""
from __future__ import annotations

import torch

from .flow_ops import flow_warp, resize_flow
from .field import ClipFlow, occlusion_for_pairs
from .pairs import ClipFlowMotion

#: Pairs with fewer consistent (non-occluded) pixels than this share are left out of the metric.
MIN_VALID_FRACTION = 0.01


def warping_errors(frames: torch.Tensor, flow) -> torch.Tensor:
    """Per-pair warping error of ``frames [N,H,W,3]`` (float in [0, 1]); ``[N-1]``, NaN across cuts.

    ``flow`` is the LR clip's :class:`~.motion.ClipFlow` (its own cuts) or a per-pair motion source
    (``pair_motion.RAFTMotion``).
    """
    motion = ClipFlowMotion(flow) if isinstance(flow, ClipFlow) else flow
    n, h, w = frames.shape[:3]
    if motion.num_frames is not None and motion.num_frames != n:
        raise ValueError(f"the flow covers {motion.num_frames} frames but {n} frames were given")
    errors = torch.full((max(n - 1, 0),), float("nan"))
    for i in range(n - 1):
        image_i, image_j = (frames[k].permute(2, 0, 1).unsqueeze(0).float() for k in (i, i + 1))
        # A pair across a cut has no meaningful error.
        if motion.is_cut(i, image_i, image_j):
            continue
        flow_ij, flow_ji = (resize_flow(f, (h, w)) for f in motion.native_flows(i, image_i, image_j))
        occluded, _ = occlusion_for_pairs(flow_ji, flow_ij)
        valid = 1 - occluded
        diff = (flow_warp(image_j, flow_ij) - image_i).abs().mean(dim=1, keepdim=True) * valid
        counted = float(valid.sum())
        # Nor does one whose flow is inconsistent almost everywhere.
        if counted >= MIN_VALID_FRACTION * h * w:
            errors[i] = float(diff.sum()) / counted
    return errors


def plot_errors(series: dict[str, torch.Tensor], height: int = 256, width: int = 512) -> torch.Tensor:
    """A small line plot ``[1,H,W,3]`` of one or more per-pair error series (no plotting library needed)."""
    image = torch.ones(height, width, 3)
    colours = [(0.85, 0.2, 0.2), (0.2, 0.4, 0.85), (0.2, 0.65, 0.3), (0.6, 0.3, 0.7)]
    finite = [s[torch.isfinite(s)] for s in series.values() if s.numel()]
    top = max((float(s.max()) for s in finite if s.numel()), default=1.0) or 1.0
    margin = 16
    image[height - margin, margin:width - margin] = 0.0
    image[margin:height - margin, margin] = 0.0
    for (label, values), colour in zip(series.items(), colours):
        if values.numel() == 0:
            continue
        xs = torch.linspace(margin, width - margin - 1, max(values.numel(), 2))[: values.numel()]
        ys = (height - margin) - (values.nan_to_num(0) / top) * (height - 2 * margin)
        for k in range(values.numel()):
            x0, y0 = int(xs[k]), int(ys[k])
            x1, y1 = (int(xs[k + 1]), int(ys[k + 1])) if k + 1 < values.numel() else (x0, y0)
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for t in range(steps + 1):
                x = x0 + (x1 - x0) * t // steps
                y = y0 + (y1 - y0) * t // steps
                image[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = torch.tensor(colour)
    return image.unsqueeze(0)
