"""The warping-error metric on clips whose true motion is known."""
import math

import torch

from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.warping_error import plot_errors, warping_errors
from mgld_vsr.pipeline.motion.field import ClipFlow


def _sliding_clip(n=5, size=32):
    """Frame i+1 is frame i moved one pixel left (a smooth texture), with its exact flows."""
    g = torch.Generator().manual_seed(0)
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8 + n, generator=g), size=(size, size + n),
                                              mode="bicubic", align_corners=False).clamp(0, 1)
    frames = torch.stack([texture[0, :, :, i:i + size].permute(1, 2, 0) for i in range(n)])
    plan = LRPlan.create(size, size, 4)
    hf, wf = plan.flow_size
    shift = 1.0 * wf / size  # one LR pixel in flow-grid pixels
    backward = torch.zeros(n - 1, 2, hf, wf)
    backward[:, 0] = -shift  # pixel p of frame i is at p - 1 in frame i+1
    flow = ClipFlow(-backward, backward, backward[:1] * 0, backward[:1] * 0, plan,
                    torch.zeros(n - 1, dtype=torch.bool), torch.zeros(n - 1))
    return frames, flow


def test_consistent_motion_scores_low_and_a_flicker_stands_out():
    frames, flow = _sliding_clip()
    clean = warping_errors(frames, flow)
    flicker = frames.clone()
    flicker[2] = (flicker[2] + 0.2).clamp(0, 1)
    bad = warping_errors(flicker, flow)
    assert clean.max() < 0.02
    assert bad[1] > 5 * clean[1] and bad[2] > 5 * clean[2]  # the pairs touching frame 2
    assert abs(float(bad[0]) - float(clean[0])) < 1e-6


def test_cuts_and_fully_occluded_pairs_are_not_scored():
    frames, flow = _sliding_clip()
    cut = ClipFlow(flow.flows_forward, flow.flows_backward, flow.tail_forward, flow.tail_backward, flow.plan,
                   torch.tensor([False, True, False, False]), flow.cut_scores)
    assert math.isnan(float(warping_errors(frames, cut)[1]))
    wild = ClipFlow(flow.flows_forward * 0 + 40, flow.flows_backward * 0 + 40, flow.tail_forward, flow.tail_backward,
                    flow.plan, flow.cuts, flow.cut_scores)
    assert torch.isnan(warping_errors(frames, wild)).all()
    assert plot_errors({"a": torch.tensor([1.0, float("nan"), 2.0])}).shape == (1, 256, 512, 3)
