"""The guidance preview: the full run's plan on a region, its sweep, and its input checks.

The denoiser here has spatial and temporal context like the real UNet: each tile's prediction blurs
its neighbourhood (zero-padded at the tile's edge), mixes in the tile's mean (as a GroupNorm does)
and the window's mean LR latent, so a cut tile or window changes what it predicts and the preview
must carry that difference away from the region with its margin.
"""
import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from stub_models import ABAR, PassThroughEncoder, PoolingFirstStage
from mgld_vsr.nodes.validation import InputError, check_node, parse_region, parse_strengths
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.preview import encode_with_draws
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, sample_video
from mgld_vsr.pipeline.sampling.plan import SamplingPlan
from mgld_vsr.pipeline.sampling.region import RegionNoise, region_extent, restrict_plan, sample_region


class ContextDenoiser(nn.Module):
    """x0 = blur(window-mean LR) + 0.3 * blur(x) + 0.2 * tile mean of x: neighbours, the tile and the window matter."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, context, cond, num_frames=None):
        frames = num_frames or 5
        a = ABAR[t].view(-1, 1, 1, 1).to(x)
        lr = cond["lr"].reshape(-1, frames, *x.shape[1:]).mean(1, keepdim=True).expand(-1, frames, -1, -1, -1)
        blur = lambda z: F.avg_pool2d(z, 3, stride=1, padding=1)  # noqa: E731 (zero padding: the tile's edge shows)
        x_scaled = x / (1 - a).sqrt().clamp(min=0.1)
        x0 = blur(lr.reshape_as(x)) + 0.3 * blur(x_scaled).tanh() + 0.2 * x_scaled.mean((2, 3), keepdim=True).tanh()
        return (x - a.sqrt() * x0) / (1 - a).sqrt()


N, LR = 12, (48, 96)  # a 24x48 latent


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = (torch.rand(N, *LR, 3, generator=g) * 255).to(torch.uint8)
    plan = LRPlan.create(*LR, 4, min_short_side=64)
    h, w = plan.latent_size
    flow = torch.randn(N - 1, 2, h, w, generator=g) * 0.7
    occ = torch.zeros(N - 1, 1, h, w)
    motion = MotionField(flow, -flow, occ, occ.clone(), torch.zeros(N - 1, dtype=torch.bool))
    nets = {"unet": ContextDenoiser(), "lr_encoder": PassThroughEncoder(), "first_stage": PoolingFirstStage()}
    return frames, plan, motion, nets


OPTIONS = SamplingOptions(steps=13, tile=8, window=3, seed=3, strength=10.0)  # blended start and finish steps


def _preview(frames, plan, motion, nets, shown, box, margin, frame_margin, options=OPTIONS):
    sampling = SamplingPlan.create(options, N, plan.latent_size, motion.cuts)
    extent = region_extent(sampling, shown, box, margin, frame_margin, 3)
    noise = RegionNoise.draw(options.seed, N, plan.latent_size, len(sampling.steps), extent)
    lr = encode_with_draws(nets["first_stage"], frames[extent.start:extent.stop], plan, noise.posterior)
    networks = {"unet": nets["unet"], "lr_encoder": nets["lr_encoder"], "context": torch.zeros(1, 1, 1)}
    x = sample_region(sampling, extent, lr[(...,) + extent.area], noise, motion, options.strength,
                      networks=networks, device=torch.device("cpu"))
    return x, extent


@pytest.fixture(scope="module")
def full_run():
    frames, plan, motion, nets = _setup()
    with torch.no_grad():
        latents = sample_video(frames, motion, plan, **nets, context=torch.zeros(1, 1, 1), options=OPTIONS).latents
    return frames, plan, motion, nets, latents


def test_a_region_covering_everything_is_the_full_run(full_run):
    """Same noise at every position, same windows, tiles, weights and guidance: the whole clip as the region
    reproduces the full run up to float rounding."""
    frames, plan, motion, nets, full = full_run
    h, w = plan.latent_size
    with torch.no_grad():
        x, extent = _preview(frames, plan, motion, nets, (0, N), (0, 0, h, w), 0, 0)
    assert (extent.start, extent.stop, extent.size) == (0, N, (h, w))
    assert float((x - full).abs().max()) < 1e-4 * float(full.abs().max())


def test_the_preview_gets_closer_to_the_full_run_as_the_margin_grows(full_run):
    frames, plan, motion, nets, full = full_run
    shown, box = (5, 8), (8, 20, 8, 8)  # frames 5..7 mid-clip; a box across the 8-px tile borders
    errors = {}
    for margin, frame_margin in ((0, 0), (4, 1), (8, 2), (16, 3)):
        with torch.no_grad():
            x, e = _preview(frames, plan, motion, nets, shown, box, margin, frame_margin)
        y, xo, bh, bw = box
        ours = x[shown[0] - e.start:shown[1] - e.start, :, y - e.y0:y - e.y0 + bh, xo - e.x0:xo - e.x0 + bw]
        theirs = full[shown[0]:shown[1], :, y:y + bh, xo:xo + bw]
        errors[margin] = float((ours - theirs).abs().max())
    margins = sorted(errors)
    assert errors[margins[0]] > 0.01  # no margin: the cut tiles and windows show
    assert all(errors[a] >= errors[b] for a, b in zip(margins, margins[1:])), errors
    # The bound docs/preview.md states for these tests: 2 % of the latents' range once the margin reaches a
    # tile and a window's worth of frames (the stand-in's curve is in the same document).
    assert errors[8] <= 0.02 * float(full.abs().max()), errors


class ContextVideoVAE(nn.Module):
    """A CFW decoder stub with frame-wide context: nearest x8 upsampling of the latent, plus the LR features
    (CFW), plus the mean of the whole latent it is given (as a GroupNorm or attention would see it)."""

    num_frames = 3

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def encode(self, lr):
        return None, lr

    def decode(self, z, features, dec_w):
        up = F.interpolate(z[:, :3], scale_factor=8, mode="nearest")
        return (up + dec_w * 0.5 * features + 0.3 * z[:, :3].mean((0, 2, 3), keepdim=True)).tanh()


def test_the_decoded_region_is_the_full_runs_when_its_surroundings_are():
    """With the full run's latents inside and around the box, the preview's decoder (windows, canvas, colour
    fix with whole-frame statistics, crop) gives exactly the full run's pixels in the box: nothing but the
    sampled latents separates the two. A colour fix whose statistics came from the box alone would not."""
    from mgld_vsr.pipeline.decoding.cfw import decode_video
    from mgld_vsr.pipeline.preview import decode_region

    frames, plan, motion, nets = _setup()
    with torch.no_grad():
        result = sample_video(frames, motion, plan, **nets, context=torch.zeros(1, 1, 1),
                              options=dataclasses.replace(OPTIONS, steps=2))
        vae = ContextVideoVAE()
        full = decode_video(result, frames, vae, dec_w=1.0, colorfix="adain")
        sampling = SamplingPlan.create(OPTIONS, N, plan.latent_size, motion.cuts)
        box = (64, 32, 64, 48)  # output pixels (x, y, w, h): inside the frame, off its corner
        extent = region_extent(sampling, (5, 8), (4, 8, 6, 8), 2, 1, vae.num_frames)
        z = result.latents[extent.start:extent.stop]
        ours = decode_region(z[(...,) + extent.area], extent, [5, 6, 7], frames, plan, result.cuts, vae, 1.0, "adain",
                             box, surround=z)
        box_only = decode_region(z[(...,) + extent.area], extent, [5, 6, 7], frames, plan, result.cuts, vae, 1.0,
                                 "adain", box)
    x, y, w, h = box
    theirs = full[5:8, y:y + h, x:x + w]
    assert float((ours - theirs).abs().max()) < 1e-5
    assert float((box_only - theirs).abs().max()) > 1e-3  # the box alone cannot know the frame's statistics


def test_restricted_steps_keep_the_full_plans_tiles_and_windows():
    """Every latent pixel of the box is predicted by the full plan's tiles that cover it, with their weights."""
    options = SamplingOptions(steps=13, tile=8, window=3)
    plan = SamplingPlan.create(options, N, (24, 44))  # 44: the last tile of a shifted step slides back
    extent = region_extent(plan, (5, 8), (4, 28, 4, 8), 4, 1, 3)
    for full, step in zip(plan.steps, restrict_plan(plan, extent)):
        covered = torch.zeros(extent.size, dtype=torch.float64)
        for piece in step.pieces:
            assert piece.h % 8 == 0 and piece.w % 8 == 0  # the UNet's unit
            covered[piece.y:piece.y + piece.h, piece.x:piece.x + piece.w] += (piece.weight > 0).double()
        expected = torch.zeros(24, 44, dtype=torch.float64)
        for y, x, th, tw in full.tiles.tiles:
            expected[y:y + th, x:x + tw] += 1
        assert torch.equal(covered, expected[extent.area])
        frames = sorted({f for w in step.windows for f, wt in zip(w.frames, w.weights) if wt > 0})
        assert frames == list(range(extent.frames))


def test_the_sweep_encodes_the_lr_latents_and_resizes_the_motion_once(monkeypatch):
    """LR latents, noise and motion are made once for all strengths; only the sampling repeats."""
    from mgld_vsr.pipeline import preview as preview_module
    from mgld_vsr.pipeline.motion.field import ClipFlow

    frames, plan, motion, nets = _setup()
    calls = {"encode": 0, "motion": 0, "draw": 0}
    encode = nets["first_stage"].encode

    def counted_encode(x):
        calls["encode"] += 1
        return encode(x)

    nets["first_stage"].encode = counted_encode
    draw = RegionNoise.draw.__func__

    def counted_draw(cls, *a, **k):
        calls["draw"] += 1
        return draw(cls, *a, **k)

    monkeypatch.setattr(RegionNoise, "draw", classmethod(counted_draw))

    class Flow:  # the parts of a ClipFlow the sweep uses
        num_frames, cuts = N, motion.cuts
        flows_forward = flows_backward = torch.zeros(N - 1, 2, *plan.flow_size)

        def __init__(self):
            self.plan = plan

        def motion_for(self, p):
            calls["motion"] += 1
            return motion

    monkeypatch.setattr(preview_module, "decode_region",
                        lambda latents, extent, shown, *a, **k: torch.zeros(len(shown), 8, 8, 3))
    monkeypatch.setattr(preview_module, "region_warping_error", lambda *a, **k: 0.0)
    request = preview_module.PreviewRequest(5, 3, (32, 32, 64, 64), 8, 1, (0.0, 5.0, 10.0))

    class VAE:
        num_frames = 3

    with torch.no_grad():
        result = preview_module.preview_sweep(frames, Flow(), plan, OPTIONS, request, **nets,
                                              context=torch.zeros(1, 1, 1), video_vae=VAE(), dec_w=1.0, colorfix="none")
    assert set(result.clips) == {0.0, 5.0, 10.0}
    chunks = math.ceil(result.extent.frames / max(1, min(8, 2 ** 20 // (plan.padded[0] * plan.padded[1]))))
    assert calls == {"encode": chunks, "motion": 1, "draw": 1}


@pytest.mark.parametrize("text, cause", [
    ("", "is empty"), ("  ", "is empty"), ("0, 0, 0, 0", "empty box"), ("0, 0, 1, 1", "smaller than 64x64"),
    ("-8, 0, 128, 128", "outside the frame"), ("a, b, c, d", "not four numbers"), ("0, 0, 128", "not four whole"),
    ("0, 0, 64.5, 64", "not four whole"),
])
def test_bad_regions_are_refused_naming_the_widget(text, cause):
    from mgld_vsr.nodes.preview import MGLDGuidancePreview

    verdict = MGLDGuidancePreview.VALIDATE_INPUTS(region=text)
    assert verdict is not True and "MGLD Guidance Preview: region = " in verdict and cause in verdict, verdict


@pytest.mark.parametrize("text, cause", [
    ("", "is empty"), ("0, -5", "outside 0 to 100"), ("nan", "not a finite"), ("5, inf", "not a finite"),
    ("five", "not a number"), ("0,,5", "not a number"), ("5, 5", "twice"), ("101", "outside 0 to 100"),
])
def test_bad_strength_lists_are_refused_naming_the_widget(text, cause):
    from mgld_vsr.nodes.preview import MGLDGuidancePreview

    verdict = MGLDGuidancePreview.VALIDATE_INPUTS(strengths=text)
    assert verdict is not True and "MGLD Guidance Preview: strengths = " in verdict and cause in verdict, verdict


def test_good_inputs_pass_and_parse():
    assert parse_region("n", "auto") is None and parse_region("n", " 8, 16, 256, 128 ") == (8, 16, 256, 128)
    assert parse_strengths("n", "0, 5,10 , 20") == [0.0, 5.0, 10.0, 20.0]
    from mgld_vsr.nodes.preview import MGLDGuidancePreview

    assert check_node(MGLDGuidancePreview, {"region": "auto", "strengths": "0, 10", "compare_a": 0.0, "compare_b": 10.0,
                                            "window": 5, "frame_count": 5})
    with pytest.raises(InputError, match="compare_b = 7.0: is not one of the strengths"):
        check_node(MGLDGuidancePreview, {"strengths": "0, 10", "compare_b": 7.0}, node="MGLD Guidance Preview")
    with pytest.raises(InputError, match="frame_count = 3: is shorter than one temporal window"):
        check_node(MGLDGuidancePreview, {"window": 5, "frame_count": 3}, node="MGLD Guidance Preview")


class Untouchable:
    """A model input that fails the test if the node uses it: checks must come before any work."""

    def __getattr__(self, name):
        raise AssertionError(f"the node used its model ({name}) before refusing the input")


@pytest.mark.parametrize("region, start, message", [
    ("448, 0, 128, 128", 0, "region = '448, 0, 128, 128': is outside the 512x512 output frame"),
    ("auto", 10, "start_frame = 10: with frame_count = 5 runs past the clip's 12 frames"),
])
def test_regions_outside_the_frame_are_refused_before_any_work(region, start, message):
    from mgld_vsr.nodes.preview import MGLDGuidancePreview
    from mgld_vsr.pipeline.motion.field import ClipFlow

    frames = torch.rand(12, 128, 128, 3)
    plan = LRPlan.create(128, 128, 4)
    flow = ClipFlow(torch.zeros(11, 2, 8, 8), torch.zeros(11, 2, 8, 8), torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8),
                    plan, torch.zeros(11, dtype=torch.bool), torch.zeros(11))
    with pytest.raises(InputError) as err:
        MGLDGuidancePreview().preview(Untouchable(), Untouchable(), frames, flow, 50, 0, 4.0, 5, 0, 64, 0, 1.0, "adain",
                                      region, start, 5, "0, 10", 16, 2, 0.0, 10.0)
    assert message in str(err.value)
