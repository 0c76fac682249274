"""Motion-guidance loss and update (README 4.2, quirks 5-7)."""
import pytest
import torch

import mgld_vsr.pipeline.sampling.guidance as guidance
from mgld_vsr.pipeline.motion.flow_ops import flow_warp
from mgld_vsr.pipeline.sampling.guidance import (motion_guidance_step, official_warping_loss, warping_loss,
                                                 warping_loss_and_grad)
from mgld_vsr.pipeline.sampling.schedule import respaced_schedule

H, W = 12, 14


def _inputs(b=1, t=5, seed=0, occ_fraction=0.2):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(b * t, 4, H, W, generator=g)
    ff = 1.5 * torch.randn(b, t - 1, 2, H, W, generator=g)
    fb = 1.5 * torch.randn(b, t - 1, 2, H, W, generator=g)
    fo = (torch.rand(b, t - 1, 1, H, W, generator=g) < occ_fraction).float()
    bo = (torch.rand(b, t - 1, 1, H, W, generator=g) < occ_fraction).float()
    return latents, ff, fb, fo, bo


def _readme_loss(latents, ff, fb, fo, bo):
    """README 4.2 written term by term (any T), for one video batch."""
    b, t = ff.shape[0], ff.shape[1] + 1
    z = latents.view(b, t, *latents.shape[1:])
    mf, mb = 1 - fo, 1 - bo

    def l1(a, c):
        return (a - c).abs().mean()

    backward = l1(torch.zeros_like(z[:, 0]), mf[:, t - 2] * z[:, t - 2])
    for i in range(t - 2):
        backward = backward + l1(mf[:, i] * flow_warp(z[:, i + 1], fb[:, i + 1]), mf[:, i] * z[:, i])
    forward = l1(torch.zeros_like(z[:, 0]), mb[:, 0] * z[:, 1])
    for i in range(2, t):
        forward = forward + l1(mb[:, i - 1] * flow_warp(z[:, i - 1], ff[:, i - 2]), mb[:, i - 1] * z[:, i])
    return backward + forward


@pytest.mark.parametrize("t", [2, 3, 5, 7])
def test_loss_matches_readme_terms(t):
    latents, ff, fb, fo, bo = _inputs(t=t, seed=t)
    loss = warping_loss(latents, ff, fb, fo, bo)
    torch.testing.assert_close(loss, _readme_loss(latents, ff, fb, fo, bo), rtol=1e-6, atol=0)


def test_two_frame_window_keeps_only_the_zero_terms():
    latents, ff, fb, fo, bo = _inputs(t=2, seed=4)
    expected = ((1 - fo[:, 0]) * latents[0]).abs().mean() + ((1 - bo[:, 0]) * latents[1]).abs().mean()
    torch.testing.assert_close(warping_loss(latents, 100 * ff, -100 * fb, fo, bo), expected, rtol=1e-6, atol=0)


def test_unused_flows_do_not_matter():
    # fb_0 and ff_{T-2} never enter the official loss.
    latents, ff, fb, fo, bo = _inputs(seed=5)
    ff2, fb2 = ff.clone(), fb.clone()
    ff2[:, -1] += 7.0
    fb2[:, 0] -= 7.0
    assert torch.equal(warping_loss(latents, ff, fb, fo, bo), warping_loss(latents, ff2, fb2, fo, bo))
    fb2[:, 1] += 1.0
    assert not torch.equal(warping_loss(latents, ff, fb, fo, bo), warping_loss(latents, ff, fb2, fo, bo))


def _moving_pattern(t=5, shift=1):
    """Frames of a pattern moving right by ``shift`` px per frame, zero near the borders (no wrap-around)."""
    g = torch.Generator().manual_seed(6)
    base = torch.zeros(4, H, W)
    base[:, 2 : H - 2, 2 : W - 2 - shift * t] = torch.randn(4, H - 4, W - 4 - shift * t, generator=g)
    frames = torch.stack([torch.roll(base, shifts=shift * i, dims=-1) for i in range(t)])
    fb = torch.zeros(1, t - 1, 2, H, W)
    fb[:, :, 0] = shift  # frame i -> i+1: content is found `shift` px to the right
    ff = -fb  # frame i+1 -> i
    return frames, ff, fb


def test_perfectly_warped_latents_have_zero_pair_terms():
    frames, ff, fb = _moving_pattern()
    no_occ = torch.zeros(1, 4, 1, H, W)
    # The two official "against zero" terms use fwd_occ[T-2] and bwd_occ[0]; occluding those pairs
    # entirely removes them, and what is left (the warping terms) vanishes for exact motion.
    fo, bo = no_occ.clone(), no_occ.clone()
    fo[:, 3] = 1
    bo[:, 0] = 1
    assert warping_loss(frames, ff, fb, fo, bo).item() == pytest.approx(0.0, abs=1e-6)
    # Without occlusion the loss is exactly the two zero terms, mean|z_3| + mean|z_1|.
    loss = warping_loss(frames, ff, fb, no_occ, no_occ)
    assert loss.item() == pytest.approx((frames[3].abs().mean() + frames[1].abs().mean()).item(), rel=1e-5)
    # Same with zero flow and identical frames; None masks mean "nothing occluded".
    still = frames[:1].expand(5, -1, -1, -1).contiguous()
    zero = torch.zeros_like(ff)
    assert warping_loss(still, zero, zero, fo, bo).item() == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(warping_loss(still, zero, zero), 2 * still[0].abs().mean(), rtol=1e-6, atol=0)


def test_layouts_and_mask_channel_dim_are_equivalent():
    latents, ff, fb, fo, bo = _inputs(b=2, seed=7)
    ref = warping_loss(latents, ff, fb, fo, bo)
    assert torch.equal(warping_loss(latents.view(2, 5, 4, H, W), ff, fb, fo, bo), ref)
    assert torch.equal(warping_loss(latents, ff, fb, fo[:, :, 0], bo[:, :, 0]), ref)


def test_batch_reduction():
    latents, ff, fb, fo, bo = _inputs(b=2, seed=8)
    per_video = [warping_loss(latents[5 * k : 5 * k + 5], ff[k : k + 1], fb[k : k + 1], fo[k : k + 1], bo[k : k + 1])
                 for k in range(2)]
    torch.testing.assert_close(warping_loss(latents, ff, fb, fo, bo), (per_video[0] + per_video[1]) / 2)
    torch.testing.assert_close(warping_loss(latents, ff, fb, fo, bo, batch_reduction="sum"), per_video[0] + per_video[1])
    with pytest.raises(ValueError, match="batch_reduction"):
        warping_loss(latents, ff, fb, fo, bo, batch_reduction="max")


def test_guidance_step_is_descent_and_matches_formula():
    latents, ff, fb, fo, bo = _inputs(seed=9)
    s = respaced_schedule(50)
    j = 30
    loss, grad = warping_loss_and_grad(latents, ff, fb, fo, bo)
    out, loss_reported = motion_guidance_step(latents, s, j, ff, fb, fo, bo, return_loss=True)
    assert torch.equal(loss_reported, loss)
    assert torch.equal(out, latents - (-10.0 * s.log_variance(j)) * grad)
    assert s.log_variance(j) < 0
    assert warping_loss(out, ff, fb, fo, bo) < loss
    # A tiny step decreases the loss by about step * |grad|^2 (first-order check of the gradient).
    small = motion_guidance_step(latents, s, j, ff, fb, fo, bo, strength=1e-3)
    eta = 1e-3 * abs(s.log_variance(j).item())
    decrease = (loss - warping_loss(small, ff, fb, fo, bo)).item()
    assert decrease == pytest.approx(eta * grad.pow(2).sum().item(), rel=0.05)


def test_gradient_matches_finite_differences():
    latents, ff, fb, fo, bo = _inputs(t=3, seed=10)
    latents = latents.double()
    _, grad = warping_loss_and_grad(latents, ff.double(), fb.double(), fo.double(), bo.double())
    g = torch.Generator().manual_seed(11)
    direction = torch.randn(latents.shape, generator=g, dtype=torch.float64)
    h = 1e-6
    lp = warping_loss(latents + h * direction, ff.double(), fb.double(), fo.double(), bo.double())
    lm = warping_loss(latents - h * direction, ff.double(), fb.double(), fo.double(), bo.double())
    assert ((lp - lm) / (2 * h)).item() == pytest.approx((grad * direction).sum().item(), rel=1e-4)


def test_strength_zero_is_a_no_op_without_gradients(monkeypatch):
    latents, ff, fb, fo, bo = _inputs(seed=12)

    def boom(*args, **kwargs):
        raise AssertionError("the loss must not be evaluated at strength 0")

    monkeypatch.setattr(guidance, "warping_loss_and_grad", boom)
    s = respaced_schedule(50)
    assert motion_guidance_step(latents, s, 10, ff, fb, fo, bo, strength=0.0) is latents
    out, loss = motion_guidance_step(latents, s, 10, ff, fb, fo, bo, strength=0, return_loss=True)
    assert out is latents and loss is None
    with pytest.raises(ValueError, match="strength"):
        motion_guidance_step(latents, s, 10, ff, fb, fo, bo, strength=-1.0)


def test_works_under_no_grad_and_leaves_input_alone():
    latents, ff, fb, fo, bo = _inputs(seed=13)
    before = latents.clone()
    with torch.no_grad():
        out = motion_guidance_step(latents, respaced_schedule(4), 0, ff, fb, fo, bo)
    assert not out.requires_grad
    assert torch.equal(latents, before)
    assert not torch.equal(out, latents)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda x, ff, fb, fo, bo: (x[:-1], ff, fb, fo, bo), "frames"),
        (lambda x, ff, fb, fo, bo: (x[..., :-1], ff, fb, fo, bo), "spatially"),
        (lambda x, ff, fb, fo, bo: (x.view(1, 5, 4, H, W)[:, :4], ff, fb, fo, bo), "expected B=1, T=5"),
        (lambda x, ff, fb, fo, bo: (x, ff[:, :3], fb, fo, bo), "differ"),
        (lambda x, ff, fb, fo, bo: (x, ff[:, :, :1], fb[:, :, :1], fo, bo), r"\[B, T-1, 2, h, w\]"),
        (lambda x, ff, fb, fo, bo: (x, ff, fb, fo[:, :3], bo), "fwd_occ"),
        (lambda x, ff, fb, fo, bo: (x, ff, fb, fo, bo[..., :-1]), "bwd_occ"),
        (lambda x, ff, fb, fo, bo: (x[0], ff, fb, fo, bo), "latents must be"),
    ],
)
def test_shape_mismatches_raise_clear_errors(mutate, match):
    args = mutate(*_inputs(seed=14))
    with pytest.raises(ValueError, match=match):
        warping_loss(*args)
    with pytest.raises(ValueError, match=match):
        motion_guidance_step(args[0], respaced_schedule(4), 1, *args[1:])


def test_official_function_is_the_video_layout_core():
    latents, ff, fb, fo, bo = _inputs(seed=15)
    core = official_warping_loss(latents.view(1, 5, 4, H, W), ff, fb, 1 - fo, 1 - bo)
    assert torch.equal(core, warping_loss(latents, ff, fb, fo, bo))


def test_bf16_close_to_fp32():
    latents, ff, fb, fo, bo = _inputs(seed=16)
    s = respaced_schedule(50)
    ref = motion_guidance_step(latents, s, 30, ff, fb, fo, bo)
    out = motion_guidance_step(latents.bfloat16(), s, 30, ff.bfloat16(), fb.bfloat16(), fo.bfloat16(), bo.bfloat16())
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max()


def test_meta_device_shapes():
    x = torch.empty(5, 4, H, W, device="meta")
    flows = torch.empty(1, 4, 2, H, W, device="meta")
    masks = torch.empty(1, 4, 1, H, W, device="meta")
    out = motion_guidance_step(x, respaced_schedule(4).to("meta"), 1, flows, flows, masks, masks)
    assert out.device.type == "meta" and out.shape == x.shape
