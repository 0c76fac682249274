"""Default mode: seamless windows, exact frame counts, scene cuts, determinism, early input checks."""
import pytest
import torch
from torch.nn import functional as F

from stub_models import WindowConsistentDenoiser, stub_models
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.sampling.guidance import aligned_warping_loss, clip_guidance_step
from mgld_vsr.pipeline.motion.field import ClipFlow, MotionField, clip_flows
from mgld_vsr.pipeline.defaults import LATENT_SCALE
from mgld_vsr.pipeline.official import official_sample
from mgld_vsr.pipeline.sampling.schedule import respaced_schedule
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, sample_video
from mgld_vsr.pipeline.decoding.cfw import decode_video


def _ramp_clip(n, size):
    """A still picture whose brightness rises steadily: every frame differs from the last by the same amount."""
    levels = torch.linspace(40, 200, n)
    return levels.view(n, 1, 1, 1).expand(n, size, size, 3).to(torch.uint8)


def _jumps(latents):
    return (latents[1:] - latents[:-1]).abs().mean(dim=(1, 2, 3))


def _still_flow(n, plan):
    hf, wf = plan.flow_size
    zero = torch.zeros(n - 1, 2, hf, wf)
    return ClipFlow(zero, zero.clone(), zero[:1], zero[:1], plan, torch.zeros(n - 1, dtype=torch.bool), torch.zeros(n - 1))


@pytest.mark.parametrize("finish_overlap", [1, 0])
def test_no_jumps_at_window_seams_unlike_official_segments(finish_overlap):
    """A denoiser that predicts each window's mean (the worst case for window seams) leaves jumps at
    the official segment borders. Windows that share a frame in the finishing steps leave none; the
    default, shifted windows to the end (issue #16: the stand-in shows no flicker at their borders,
    benchmarks/quality.py), leaves jumps only at the last step's borders, smaller than official's."""
    from mgld_vsr.pipeline.sampling.plan import SamplingPlan

    n, steps = 13, 10
    frames = _ramp_clip(n, 128)
    plan = LRPlan.create(128, 128, 4, min_short_side=64)  # 64x64 latent: realistic per-pixel guidance step
    models = stub_models()
    true_step = LATENT_SCALE * _jumps(models["first_stage"].encode(plan.prepare(frames)).mean).mean()
    options = SamplingOptions(steps=steps, strength=10.0, finish_window_overlap=finish_overlap)
    with torch.no_grad():
        ours = sample_video(frames, MotionField.still(n, plan.latent_size), plan, **models, context=torch.zeros(1, 77, 4),
                            options=options).latents
        official = official_sample(frames, _still_flow(n, plan), **models, context=torch.zeros(1, 77, 4), steps=steps)
    official = torch.cat([seg[0].samples for seg in official.tiles])[:n]
    ours_jumps, official_jumps = _jumps(ours), _jumps(official)
    seams = [4, 9]  # pairs (4,5) and (9,10) cross the official segment boundaries
    assert official_jumps[seams].min() >= 4 * true_step, official_jumps
    if finish_overlap:
        assert ours_jumps.max() <= 2 * true_step, ours_jumps  # seams included: nothing sticks out
        return
    last = SamplingPlan.create(options, n, plan.latent_size).steps[-1].windows
    borders = {max(w.frames) for w in last[:-1]}  # pair (f, f+1) crosses a border of the last step's windows
    inside = [i for i in range(n - 1) if i not in borders]
    assert ours_jumps[inside].max() <= 2 * true_step, ours_jumps
    assert ours_jumps.max() < official_jumps[seams].min(), (ours_jumps, official_jumps)


@pytest.mark.parametrize("n", [1, 2, 5, 7, 13])
def test_output_has_exactly_the_input_frames(tiny_models, n):
    frames = (torch.rand(n, 16, 24, 3, generator=torch.Generator().manual_seed(n)) * 255).to(torch.uint8)
    plan = LRPlan.create(16, 24, 4, min_short_side=64)
    models = {k: tiny_models[k] for k in ("unet", "lr_encoder", "first_stage")}
    with torch.no_grad():
        latents = sample_video(frames, MotionField.still(n, plan.latent_size), plan, **models,
                               context=tiny_models["context"], options=SamplingOptions(steps=2, tile=8, tile_overlap=4))
        out = decode_video(latents, frames, tiny_models["video_vae"])
    assert latents.latents.shape[0] == n
    assert out.shape == (n, 64, 96, 3)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    if n > 1:  # distinct inputs give distinct outputs: no padded duplicate replaced a real frame
        assert (out[-1] - out[-2]).abs().max() > 0


def test_scene_cut_is_detected_and_nothing_crosses_it(tiny_models):
    g = torch.Generator().manual_seed(3)
    shot_a = (torch.rand(1, 3, 16, 16, generator=g) * 0.3).repeat(4, 1, 1, 1)
    shot_b = (0.7 + torch.rand(1, 3, 16, 16, generator=g) * 0.3).repeat(3, 1, 1, 1)
    small = torch.cat([shot_a, shot_b])
    frames = (F.interpolate(small, size=(128, 128), mode="bilinear", align_corners=False).permute(0, 2, 3, 1) * 255).to(torch.uint8)
    plan = LRPlan.create(128, 128, 4)
    with torch.no_grad():
        flow = clip_flows(tiny_models["raft"], frames, plan, cut_threshold=0.5)
    assert flow.cuts.tolist() == [False, False, False, True, False, False]
    assert flow.flows_forward.shape == (6, 2, *plan.flow_size)

    # Changing the second shot leaves the first shot's latents bit-identical (windows and guidance stop at the cut).
    small_plan = LRPlan.create(128, 128, 1, min_short_side=64)
    motion = flow.motion_for(small_plan)
    models = stub_models()
    other = frames.clone()
    other[4:] = 255 - other[4:]
    with torch.no_grad():
        options = SamplingOptions(steps=3, tile=16, tile_overlap=8)
        a = sample_video(frames, motion, small_plan, **models, context=torch.zeros(1, 77, 4), options=options)
        b = sample_video(other, motion, small_plan, **models, context=torch.zeros(1, 77, 4), options=options)
    assert torch.equal(a.latents[:4], b.latents[:4])
    assert not torch.equal(a.latents[4:], b.latents[4:])


def test_latent_motion_is_the_same_whatever_the_chunk(monkeypatch):
    """``motion_for`` resizes and checks pairs a chunk at a time; every pair is independent, so chunks change nothing."""
    from mgld_vsr.pipeline.motion import field as motion_module

    g = torch.Generator().manual_seed(5)
    plan = LRPlan.create(64, 96, 4, min_short_side=128)
    n = 7
    flows = 3 * torch.randn(2, n - 1, 2, *plan.flow_size, generator=g)
    zero = torch.zeros(1, 2, *plan.flow_size)
    flow = ClipFlow(flows[0], flows[1], zero, zero, plan, torch.zeros(n - 1, dtype=torch.bool), torch.zeros(n - 1))
    other = LRPlan.create(64, 96, 2, min_short_side=128)  # the content-resize path too
    whole = [flow.motion_for(plan), flow.motion_for(other)]
    monkeypatch.setattr(motion_module, "MOTION_PAIRS_PER_CHUNK", 2)
    chunked = [flow.motion_for(plan), flow.motion_for(other)]
    for a, b in zip(whole, chunked):
        for name in ("flows_forward", "flows_backward", "fwd_occ", "bwd_occ", "cuts"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert whole[0].fwd_occ.sum() > 0  # random flows: some pixels fail the consistency check


def test_guidance_never_pulls_across_a_cut():
    z = torch.randn(4, 4, 8, 8, requires_grad=True)
    flows, occ = torch.zeros(3, 2, 8, 8), torch.zeros(3, 1, 8, 8)
    loss = aligned_warping_loss(z, flows, flows, occ, occ, torch.tensor([1.0, 0.0, 1.0]))
    (grad,) = torch.autograd.grad(loss, z)
    z2 = z.detach().clone()
    z2[2:] += 5.0  # move the second shot far away
    loss2 = aligned_warping_loss(z2.requires_grad_(True), flows, flows, occ, occ, torch.tensor([1.0, 0.0, 1.0]))
    (grad2,) = torch.autograd.grad(loss2, z2)
    assert torch.equal(grad[:2], grad2[:2])
    motion = MotionField(flows, flows, occ, occ, torch.tensor([False, True, False]))
    out, _ = clip_guidance_step(z.detach(), respaced_schedule(10), 3, motion, strength=10.0)
    out2, _ = clip_guidance_step(z2.detach(), respaced_schedule(10), 3, motion, strength=10.0)
    assert torch.equal(out[:2], out2[:2])


@pytest.mark.parametrize("pairs_per_chunk", [1, 2, 3, 6, 50])
def test_chunked_guidance_matches_the_whole_clip_gradient(pairs_per_chunk):
    """The loss is a sum over pairs, so chunks sharing a frame must add up to the one-graph step."""
    g = torch.Generator().manual_seed(3)
    n = 8
    z = torch.randn(n, 4, 12, 12, generator=g)
    flows = 2 * torch.randn(2, n - 1, 2, 12, 12, generator=g)
    occ = (torch.rand(2, n - 1, 1, 12, 12, generator=g) > 0.7).float()
    cuts = torch.zeros(n - 1, dtype=torch.bool)
    cuts[4] = True
    motion = MotionField(flows[0], flows[1], occ[0], occ[1], cuts)
    whole, whole_loss = clip_guidance_step(z, respaced_schedule(20), 7, motion, strength=10.0)
    chunked, chunked_loss = clip_guidance_step(z, respaced_schedule(20), 7, motion, strength=10.0,
                                               pairs_per_chunk=pairs_per_chunk, device="cpu")
    assert not torch.equal(whole, z)
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(chunked_loss, whole_loss, rtol=1e-6, atol=1e-6)


def test_chunked_guidance_under_inference_mode_as_in_comfyui():
    z = torch.randn(6, 4, 8, 8)
    flows, occ = torch.ones(5, 2, 8, 8), torch.zeros(5, 1, 8, 8)
    motion = MotionField(flows, -flows, occ, occ, torch.zeros(5, dtype=torch.bool))
    expected, _ = clip_guidance_step(z, respaced_schedule(10), 3, motion, strength=10.0)
    with torch.inference_mode():
        out, _ = clip_guidance_step(z.clone(), respaced_schedule(10), 3, motion, strength=10.0, pairs_per_chunk=2)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="pairs_per_chunk"):
        clip_guidance_step(z, respaced_schedule(10), 3, motion, strength=10.0, pairs_per_chunk=0)


def test_guidance_reduces_the_warping_error_of_a_moving_pattern():
    z = torch.randn(5, 4, 16, 16)
    flows = torch.zeros(4, 2, 16, 16)
    flows[:, 0] = 1.0  # frame i+1 is frame i moved by one latent pixel
    occ = torch.zeros(4, 1, 16, 16)
    motion = MotionField(-flows, flows, occ, occ, torch.zeros(4, dtype=torch.bool))
    weights = torch.ones(4)
    before = aligned_warping_loss(z, -flows, flows, occ, occ, weights)
    after, _ = clip_guidance_step(z, respaced_schedule(50), 30, motion, strength=10.0)
    assert aligned_warping_loss(after, -flows, flows, occ, occ, weights) < before


def test_same_seed_same_result_and_tile_batching_only_rounds(tiny_models):
    # 16x48 LR frames: an 8x24 latent, 5 tiles of 8 overlapping by 4 (batches of 4 and 1 below)
    frames = (torch.rand(6, 16, 48, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    plan = LRPlan.create(16, 48, 4, min_short_side=64)
    models = {k: tiny_models[k] for k in ("unet", "lr_encoder", "first_stage")}
    motion = MotionField.still(6, plan.latent_size)

    def run(**opts):
        with torch.no_grad():
            return sample_video(frames, motion, plan, **models, context=tiny_models["context"],
                                options=SamplingOptions(steps=2, tile=8, tile_overlap=4, **opts)).latents

    first = run(seed=5)
    assert torch.equal(first, run(seed=5))
    assert not torch.equal(first, run(seed=6))
    batched = run(seed=5, tiles_per_batch=4)
    # Same maths; BLAS may pick other kernels for other batch sizes, so only rounding may differ.
    assert float((batched - first).abs().max() / first.abs().max()) < 1e-4


@pytest.mark.parametrize("change, message", [
    (dict(steps=0), "steps must be between 1 and 1000"),
    (dict(steps=1001), "steps must be between 1 and 1000"),
    (dict(strength=-1.0), "guidance strength"),
    (dict(strength=float("nan")), "guidance strength"),
    (dict(tile=128), "larger than the latent grid"),
    (dict(tile=12), "multiple of 8"),
    (dict(window=1), "window"),
    (dict(window=5, window_overlap=5), "overlap"),
])
def test_bad_options_fail_before_any_model_call(change, message):
    frames = _ramp_clip(5, 64)
    plan = LRPlan.create(64, 64, 1, min_short_side=64)
    models = stub_models()
    WindowConsistentDenoiser.calls = 0
    with pytest.raises(ValueError, match=message):
        sample_video(frames, MotionField.still(5, plan.latent_size), plan, **models, context=torch.zeros(1, 77, 4),
                     options=SamplingOptions(**change))
    assert WindowConsistentDenoiser.calls == 0


def test_bad_inputs_fail_clearly():
    plan = LRPlan.create(64, 64, 1, min_short_side=64)
    models = stub_models()
    frames = _ramp_clip(5, 64)
    ctx, options = torch.zeros(1, 77, 4), SamplingOptions(tile=8, tile_overlap=4)
    with pytest.raises(ValueError, match="flow covers 4 frames but the clip has 5"):
        sample_video(frames, MotionField.still(4, plan.latent_size), plan, **models, context=ctx, options=options)
    bad = frames.float() / 255
    bad[2, 3, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sample_video(bad, MotionField.still(5, plan.latent_size), plan, **models, context=ctx, options=options)
    with pytest.raises(ValueError, match="motion field is"):
        sample_video(frames, MotionField.still(5, (4, 4)), plan, **models, context=ctx, options=options)
    with pytest.raises(ValueError, match="too small"):
        LRPlan.create(1, 64)


def test_progress_preview_and_interrupt_hooks():
    from mgld_vsr.pipeline.hooks import Hooks, Interrupted

    frames = _ramp_clip(7, 64)
    plan = LRPlan.create(64, 64, 1, min_short_side=64)
    models, options = stub_models(), SamplingOptions(steps=3, tile=8, tile_overlap=4, window_overlap=2)
    seen, previews = [], []
    hooks = Hooks(progress=lambda done, total, what: seen.append((done, total, what)), preview=previews.append)
    with torch.no_grad():
        sample_video(frames, MotionField.still(7, plan.latent_size), plan, **models, context=torch.zeros(1, 77, 4),
                     options=options, hooks=hooks)
    windows = 2  # 7 frames, window 5, overlap 2
    # the stage announces itself at 0 (its clock starts there), then one call per window step
    assert seen[0] == (0, 3 * windows, "sampling") and seen[-1] == (3 * windows, 3 * windows, "sampling")
    assert len(seen) == 1 + 3 * windows
    assert previews and previews[0].shape[0] == 5

    calls = []

    def stop_after_two():
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted("stopped by user")

    WindowConsistentDenoiser.calls = 0
    with pytest.raises(Interrupted):
        sample_video(frames, MotionField.still(7, plan.latent_size), plan, **models, context=torch.zeros(1, 77, 4),
                     options=options, hooks=Hooks(check_interrupt=stop_after_two))
    # Cancel is checked before every tile and after every window: the second check (after the first window's
    # only tile) stops the run, and nothing more runs
    assert WindowConsistentDenoiser.calls == 1


def test_guidance_works_under_inference_mode_as_comfyui_runs_nodes():
    """ComfyUI executes nodes inside torch.inference_mode(); the guidance gradient must still work there."""
    with torch.inference_mode():
        z = torch.randn(5, 4, 16, 16)
        flows = torch.zeros(4, 2, 16, 16)
        flows[:, 0] = 1.0
        occ = torch.zeros(4, 1, 16, 16)
        motion = MotionField(-flows, flows, occ, occ, torch.zeros(4, dtype=torch.bool))
        out, loss = clip_guidance_step(z, respaced_schedule(50), 30, motion, strength=10.0)
        from mgld_vsr.pipeline.sampling.guidance import motion_guidance_step

        official = motion_guidance_step(z, respaced_schedule(50), 30, *motion.batched(), strength=10.0)
    assert loss > 0 and not torch.equal(out, z) and not torch.equal(official, z)


def test_tiled_decoding_blends_tiles_exactly():
    """With a decoder that only looks at each pixel's own latent, tiled decoding must equal whole-frame decoding."""
    from mgld_vsr.pipeline.decoding.cfw import decode_window

    class LocalDecoder(torch.nn.Module):
        def encode(self, lr):
            return None, [lr]

        def decode(self, z, features, w):
            up = torch.nn.functional.interpolate(z[:, :3], scale_factor=8, mode="nearest")
            return up + w * features[0]

    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 4, 24, 40, generator=g)
    lr = torch.rand(5, 3, 192, 320, generator=g)
    whole = decode_window(LocalDecoder(), z, lr, 0.5, tile=0)
    tiled = decode_window(LocalDecoder(), z, lr, 0.5, tile=16, overlap=8)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
