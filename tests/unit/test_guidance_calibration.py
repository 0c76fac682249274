"""Default-mode guidance is calibrated per latent pixel: one strength, one step size, at any size and length.

The clips are built from textures with a period of 8 latent pixels moving by whole pixels with
their true flow, plus a per-frame periodic error, so the step a pixel receives depends only on its
neighbourhood; away from the borders it must be the same whatever the frame size or clip length.
"""
import pytest
import torch

from mgld_vsr.pipeline.sampling.guidance import (GUIDANCE_PAIRS_PER_CHUNK, GUIDANCE_REFERENCE_AREA, clip_guidance_step,
                                                 motion_guidance_step)
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.sampling.schedule import respaced_schedule

PERIOD = 8
SHIFT = (1, 2)  # (dy, dx): frame i+1 is frame i moved down 1 and right 2 latent pixels
SCHEDULE = respaced_schedule(50)


def _periodic(seed: int, channels: int) -> torch.Tensor:
    return torch.randn(channels, PERIOD, PERIOD, generator=torch.Generator().manual_seed(seed))


def _tile(texture: torch.Tensor, h: int, w: int, dy: int = 0, dx: int = 0) -> torch.Tensor:
    """``texture`` repeated over an h x w grid, moved by (dy, dx) pixels."""
    ys = (torch.arange(h) - dy) % PERIOD
    xs = (torch.arange(w) - dx) % PERIOD
    return texture[:, ys][:, :, xs]


def periodic_clip(n: int, h: int, w: int):
    """Latents of a moving texture with per-frame errors and the motion (true flows, periodic occlusion)."""
    base = _periodic(0, 4)
    dy, dx = SHIFT
    z = torch.stack([_tile(base, h, w, i * dy, i * dx) + 0.3 * _tile(_periodic(100 + i, 4), h, w) for i in range(n)])
    flows_backward = torch.zeros(n - 1, 2, h, w)  # frame i -> i+1: the content of p is found at p + d
    flows_backward[:, 0], flows_backward[:, 1] = dx, dy
    occ = [(_tile(_periodic(200 + i, 2), h, w) > 0.85).float() for i in range(n - 1)]
    fwd_occ = torch.stack([o[:1] for o in occ])
    bwd_occ = torch.stack([o[1:] for o in occ])
    return z, MotionField(-flows_backward, flows_backward, fwd_occ, bwd_occ, torch.zeros(n - 1, dtype=torch.bool))


def _interior_patch(t: torch.Tensor) -> torch.Tensor:
    """Latent pixels 16..31 of each side: two texture periods, far from any border (flows move 2 px)."""
    return t[..., 16:32, 16:32]


def _default_step(z, motion, j=0, strength=10.0):
    out, _ = clip_guidance_step(z, SCHEDULE, j, motion, strength, pairs_per_chunk=GUIDANCE_PAIRS_PER_CHUNK)
    return out - z


def test_same_step_per_pixel_at_three_resolutions_and_two_clip_lengths(j=0):
    """120x120 (one official tile), 1080p's 136x244 latent and a small 40x56 one; 6 and 24 frames (two guidance chunks)."""
    steps = {}
    for n in (6, 24):
        for h, w in ((40, 56), (120, 120), (136, 244)):
            z, motion = periodic_clip(n, h, w)
            steps[(n, h, w)] = _default_step(z, motion, j)
    reference = _interior_patch(steps[(6, 120, 120)][1:5])
    assert reference.abs().mean() > 1e-4  # a real step, not zero everywhere
    for key, step in steps.items():
        # Frames 1..4 have both neighbours in every clip: their steps must agree pixel for pixel.
        torch.testing.assert_close(_interior_patch(step[1:5]), reference, rtol=1e-5, atol=1e-6, msg=str(key))
    # Whole-frame figures too: the mean step size hardly moves with size (only the border share changes).
    means = {key: float(step.abs().mean()) for key, step in steps.items() if key[1] >= 120}
    assert max(means.values()) / min(means.values()) < 1.1, means


def test_strength_scales_the_step_linearly():
    z, motion = periodic_clip(6, 40, 56)
    torch.testing.assert_close(_default_step(z, motion, strength=5.0), _default_step(z, motion, strength=10.0) / 2,
                               rtol=1e-5, atol=1e-6)


def _official_window(z, motion):
    """The official loss's two "against zero" terms removed by occluding those pairs (fwd_occ[T-2], bwd_occ[0])."""
    fwd_occ, bwd_occ = motion.fwd_occ.clone(), motion.bwd_occ.clone()
    fwd_occ[-1] = 1
    bwd_occ[0] = 1
    return MotionField(motion.flows_forward, motion.flows_backward, fwd_occ, bwd_occ, motion.cuts)


def _official_step(z, motion, j=0, strength=10.0):
    out = motion_guidance_step(z, SCHEDULE, j, *motion.batched(), strength=strength)
    return out - z


def test_equals_official_guidance_where_one_official_tile_covers_the_frame():
    """A 960-px frame (120x120 latent) is exactly one official image tile. With motion that is the same for
    every pair (so the official shifted flow indices pick equal flows) and the two zero terms occluded, the
    official loss is term for term the clip loss: the steps must be equal on every pixel of every frame."""
    z, motion = periodic_clip(5, 120, 120)
    g = torch.Generator().manual_seed(4)
    smooth = torch.nn.functional.interpolate(torch.randn(1, 2, 8, 8, generator=g), size=(120, 120), mode="bilinear")
    flows_backward = 1.5 * smooth.expand(4, -1, -1, -1).contiguous()  # non-integer, varying across the frame
    motion = MotionField(-flows_backward, flows_backward, motion.fwd_occ, motion.bwd_occ, motion.cuts)
    motion = _official_window(z, motion)
    for j in (0, 30):
        official, ours = _official_step(z, motion, j), _default_step(z, motion, j)
        assert official.abs().mean() > 1e-4
        torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, origin", [((136, 244), (8, 64)), ((272, 488), (152, 368))])
def test_equals_official_step_inside_each_official_tile_of_a_larger_frame(size, origin):
    """At 1080p and 4K the official mode guides 120x120 tiles: inside a tile its per-pixel step is ours."""
    z, motion = periodic_clip(5, *size)
    motion = _official_window(z, motion)
    y, x = origin
    tile = (Ellipsis, slice(y, y + 120), slice(x, x + 120))
    official = _official_step(z[tile].contiguous(), motion.crop(y, x, 120, 120))
    ours = _default_step(z, motion)[tile]
    assert _interior_patch(official).abs().mean() > 1e-4
    torch.testing.assert_close(_interior_patch(ours), _interior_patch(official), rtol=1e-5, atol=1e-6)


def test_official_mode_on_a_frame_smaller_than_its_tile_steps_harder_by_the_area_ratio():
    """The documented difference: official terms average over a small frame, ours keep the tile's divisor."""
    z, motion = periodic_clip(5, 64, 64)
    motion = _official_window(z, motion)
    torch.testing.assert_close(_official_step(z, motion), _default_step(z, motion) * (GUIDANCE_REFERENCE_AREA / 64 ** 2),
                               rtol=1e-5, atol=1e-6)
