"""Output frames are exactly round(scale x LR) on both sides, in both modes, for every LR size.

A stand-in video VAE returns the LR frame it is given as features, so the decoded picture is the
upsampled LR frame itself: besides the size, the tests see whether the picture lands where it
should (no padded border kept, nothing shifted).
"""
import math

import pytest
import torch
from torch.nn import functional as F

from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.official import OfficialLatents, OfficialTile, image_tiles, official_decode
from mgld_vsr.pipeline.sampling.loop import VideoLatents
from mgld_vsr.pipeline.decoding.cfw import decode_video
from mgld_vsr.pipeline.sampling.windows import official_segments

SIZES = [(96, 128), (90, 160), (33, 17), (17, 33), (45, 31), (128, 140), (130, 67)]


class LRVideoVAE(torch.nn.Module):
    """Decodes to the LR frame it was given: the output picture is the upsampled, padded LR frame."""

    num_frames = 5

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def encode(self, lr):
        return None, [lr]

    def decode(self, z, features, w):
        return features[0]


def _frames(h, w, n=3):
    g = torch.Generator().manual_seed(h * 1000 + w)
    small = torch.rand(n, 3, max(2, h // 4), max(2, w // 4), generator=g)
    smooth = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)  # smooth: resizing is gentle
    return (smooth.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)


def _expected_size(h, w, scale):
    return math.floor(h * scale + 0.5), math.floor(w * scale + 0.5)


def _reference_upscale(frames, size):
    """The LR frames bicubically resized straight to ``size``, in [0, 1]."""
    x = frames.permute(0, 3, 1, 2).float() / 255
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)


@pytest.mark.parametrize("scale", [2.0, 4.0])
@pytest.mark.parametrize("h, w", SIZES)
def test_plan_output_size_is_the_rounded_scaled_lr_size(h, w, scale):
    assert LRPlan.create(h, w, scale).output_size == _expected_size(h, w, scale)


def test_half_pixels_round_up():
    assert LRPlan.create(33, 17, 2.5).output_size == (83, 43)  # 82.5 and 42.5: halves up, not to even
    assert LRPlan.create(35, 33, 1.5).output_size == (53, 50)  # 52.5 and 49.5


@pytest.mark.parametrize("scale", [2.0, 4.0])
@pytest.mark.parametrize("h, w", SIZES)
def test_default_mode_decodes_to_the_exact_size_with_the_picture_in_place(h, w, scale):
    frames = _frames(h, w)
    plan = LRPlan.create(h, w, scale)
    latents = VideoLatents(torch.zeros(frames.shape[0], 4, *plan.latent_size), plan, torch.zeros(2, dtype=torch.bool))
    out = decode_video(latents, frames, LRVideoVAE(), colorfix="none")
    size = _expected_size(h, w, scale)
    assert out.shape == (frames.shape[0], *size, 3)
    # The whole frame is the upscaled picture: a kept padded border or a shift would show up here.
    error = (out - _reference_upscale(frames, size)).abs()
    assert float(error.mean()) < 0.01 and float(error.max()) < 0.12, (float(error.mean()), float(error.max()))


def _official_output(frames, plan):
    """The official script's output rule (reference README 5.4), written from the text: the padded result
    (here the upsampled, padded LR) bicubically resized to int(Hp*upscale/s) when s > upscale, clamped,
    cropped to [:H', :W'] (H' = int(H*s)), truncated to 8 bits."""
    padded = (plan.prepare(frames) + 1) / 2
    hp, wp = padded.shape[-2:]
    s, upscale = plan.factor, plan.scale
    if s > upscale:
        padded = F.interpolate(padded, size=(int(hp * upscale / s), int(wp * upscale / s)), mode="bicubic",
                               align_corners=False).clamp(0, 1)
    h_up, w_up = int(frames.shape[1] * s), int(frames.shape[2] * s)
    return (padded.permute(0, 2, 3, 1) * 255).to(torch.uint8)[:, :h_up, :w_up]


def _official_latents(plan, n):
    segments = official_segments(n, 5)
    origins, _ = image_tiles(plan, 960, 750)
    hp, wp = plan.padded
    tiles = [[OfficialTile(y, x, min(960, hp), min(960, wp), torch.zeros(5, 4, min(960, hp) // 8, min(960, wp) // 8))
              for y, x in origins] for _ in segments]
    return OfficialLatents(plan, segments, tiles, 960, 750)


@pytest.mark.parametrize("scale", [2.0, 4.0])
@pytest.mark.parametrize("h, w", SIZES)
def test_official_mode_keeps_its_shrink_rule_inside_the_exact_size(h, w, scale):
    frames = _frames(h, w, n=3)
    plan = LRPlan.create(h, w, scale)
    out = official_decode(_official_latents(plan, 3), frames, LRVideoVAE(), colorfix="none")
    size = _expected_size(h, w, scale)
    assert out.shape == (3, *size, 3)
    official = _official_output(frames, plan)
    rows, cols = min(size[0], official.shape[1]), min(size[1], official.shape[2])
    # Every pixel the official rule produces inside the picture is kept exactly (its padded border is not).
    assert torch.equal(out[:, :rows, :cols], official[:, :rows, :cols])
    # Where the official rule comes out a pixel or two short, the edge is repeated.
    if rows < size[0]:
        assert torch.equal(out[:, rows:], out[:, rows - 1:rows].expand(-1, size[0] - rows, -1, -1))
    if cols < size[1]:
        assert torch.equal(out[:, :, cols:], out[:, :, cols - 1:cols].expand(-1, -1, size[1] - cols, -1))


def test_the_sample_clip_size_comes_out_384x512():
    plan = LRPlan.create(96, 128, 4.0)
    assert plan.output_size == (384, 512)
    assert plan.official_shrunk_size == (408, 528)  # the official rule keeps the padded border: cropped away
