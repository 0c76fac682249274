"""Temporal consistency metric of the paper: the mean flow-warping error between neighbouring frames.

E_i = mean over non-occluded pixels of |W(frame_{i+1}, flow_{i->i+1}) - frame_i|, frames in [0, 1],
flows resized from the LR analysis to the frames' size. Lower is more temporally consistent.
"""
from __future__ import annotations

import torch

from .flow_ops import flow_warp, resize_flow
from .motion import ClipFlow, occlusion_for_pairs

#: Pairs with fewer consistent (non-occluded) pixels than this share are left out of the metric.
MIN_VALID_FRACTION = 0.01


def warping_errors(frames: torch.Tensor, flow: ClipFlow) -> torch.Tensor:
    """Per-pair warping error of ``frames [N,H,W,3]`` (float in [0, 1]) under ``flow``; ``[N-1]`` (cuts: NaN)."""
    n, h, w = frames.shape[:3]
    if flow.num_frames != n:
        raise ValueError(f"the flow covers {flow.num_frames} frames but {n} frames were given")
    if n < 2:
        return torch.zeros(0)
    plan = flow.plan
    fh, fw = plan.flow_size
    ch = max(1, round(plan.upsampled[0] * fh / plan.padded[0]))
    cw = max(1, round(plan.upsampled[1] * fw / plan.padded[1]))
    forward = resize_flow(flow.flows_forward[..., :ch, :cw].float(), (h, w))
    backward = resize_flow(flow.flows_backward[..., :ch, :cw].float(), (h, w))
    fwd_occ, _ = occlusion_for_pairs(forward, backward)
    images = frames.permute(0, 3, 1, 2).float()
    valid = 1 - fwd_occ
    diff = (flow_warp(images[1:], backward) - images[:-1]).abs().mean(dim=1, keepdim=True) * valid
    counted = valid.sum(dim=(1, 2, 3))
    errors = diff.sum(dim=(1, 2, 3)) / counted.clamp(min=1)
    # A pair across a cut, or one whose flow is inconsistent almost everywhere, has no meaningful error.
    errors[flow.cuts.to(errors.device) | (counted < MIN_VALID_FRACTION * h * w)] = float("nan")
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
