"""The sampler node at its default settings executes the sampling plan (with stand-in networks: the tiny
fixture UNet runs the same check in tests/system/test_default_settings_tiny_unet.py); and the pairing of
frames with flows.
"""
import torch

from node_plan_check import LR, check_node_defaults_execute_the_plan
from stub_models import stub_models
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.sampling.guidance import aligned_warping_loss
from mgld_vsr.pipeline.motion.field import ClipFlow


def test_node_defaults_denoise_every_pixel_once_per_step_with_moving_borders(monkeypatch):
    """Stand-in networks (tests/stub_models.py) instead of the UNet: the node, the loop and the tiling are the
    real ones, and every tile the stand-in UNet receives is located in its window."""
    check_node_defaults_execute_the_plan(stub_models(), torch.zeros(1, 77, 4), monkeypatch)


def _textured_motion(n, plan, d=(1, 2), seed=3):
    """Latents of a texture moving d = (dy, dx) latent px per frame, and its true flows at RAFT resolution."""
    h, w = plan.latent_size
    dy, dx = d
    g = torch.Generator().manual_seed(seed)
    texture = torch.randn(4, h + n * dy, w + n * dx, generator=g)
    z = torch.stack([texture[:, n * dy - i * dy:n * dy - i * dy + h, n * dx - i * dx:n * dx - i * dx + w]
                     for i in range(n)])
    hf, wf = plan.flow_size  # RAFT resolution: twice the latent grid
    scale = hf / h
    forward = torch.zeros(n - 1, 2, hf, wf)  # official naming: frame i+1 -> i
    forward[:, 0], forward[:, 1] = -dx * scale, -dy * scale
    backward = -forward  # frame i -> i+1
    return z, forward, backward


def test_flow_pairing_a_pattern_moving_with_its_flow_has_near_zero_loss_and_swapped_flows_do_not():
    """Through the flow node's output type (ClipFlow -> latent-grid motion -> the default mode's clip loss)."""
    n = 6
    plan = LRPlan.create(LR, LR, 4)
    z, forward, backward = _textured_motion(n, plan)
    cuts = torch.zeros(n - 1, dtype=torch.bool)

    def loss(ff, fb):
        tail = torch.zeros(1, *ff.shape[1:])
        motion = ClipFlow(ff, fb, tail, tail, plan, cuts, torch.zeros(n - 1)).motion_for(plan)
        return aligned_warping_loss(z, motion.flows_forward, motion.flows_backward, motion.fwd_occ, motion.bwd_occ,
                                    torch.ones(n - 1)), motion

    right, motion = loss(forward, backward)
    swapped, _ = loss(backward, forward)
    assert float(motion.fwd_occ.mean()) < 0.1  # only the strips the pattern leaves are occluded
    assert float(right) < 1e-5 * float(swapped), (float(right), float(swapped))
    assert float(swapped) > 0.1
