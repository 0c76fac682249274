"""The sampler node at its default settings, on the tiny fixture networks, at a size where tiles and
windows really move (4 tiles per side, 12 frames); and the pairing of frames with flows.

The sampler's UNet is wrapped so the test can see where each tile it receives lies in its window
(found by matching values, independently of the tiling code). The test checks the sampling plan the
node's settings give (in the shifted steps every latent pixel and frame is denoised exactly once, and
the borders move from one step to the next) and that the node's run executes exactly that plan.
"""
import torch

from mgld_vsr.models.bundle import MGLDDiffusion
from mgld_vsr.nodes.sampler import MGLDSampler
from mgld_vsr.pipeline.sampling import loop as loop_module
from mgld_vsr.pipeline.sampling.plan import SamplingOptions, SamplingPlan
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.sampling.guidance import aligned_warping_loss
from mgld_vsr.pipeline.motion.field import ClipFlow

FRAMES, LR = 12, 128  # 128 px -> x4 = 512 px -> 64x64 latent
TILE = 16  # latent px: 4 tiles per side
STEPS = 4  # three shifted steps, then the blended finishing step


def _defaults(node):
    spec = node.INPUT_TYPES()
    return {name: options[1]["default"] for group in spec.values() for name, options in group.items()
            if isinstance(options[1], dict) and "default" in options[1]}


def _moving_clip(n, size, seed=0):
    """A smooth texture drifting left 3 and up 2 pixels a frame, as a ComfyUI IMAGE."""
    g = torch.Generator().manual_seed(seed)
    big = torch.nn.functional.interpolate(torch.rand(1, 3, size // 8 + 8, size // 8 + 8, generator=g),
                                          size=(size + 64, size + 64), mode="bicubic", align_corners=False)
    return torch.stack([big[0, :, 2 * i:2 * i + size, 3 * i:3 * i + size] for i in range(n)]).permute(0, 2, 3, 1).clamp(0, 1)


def _true_flow(n, size):
    """What the flow node would hand on for ``_moving_clip``: its true motion at RAFT resolution, no cuts."""
    plan = LRPlan.create(size, size, 4)
    hf, wf = plan.flow_size
    per_lr_pixel = hf / size
    backward = torch.zeros(n - 1, 2, hf, wf)  # frame i -> i+1: the picture moves left 3 and up 2 LR px
    backward[:, 0], backward[:, 1] = -3 * per_lr_pixel, -2 * per_lr_pixel
    tail = torch.zeros(1, 2, hf, wf)
    return ClipFlow(-backward, backward, tail, tail, plan, torch.zeros(n - 1, dtype=torch.bool), torch.zeros(n - 1))


class LocatingUNet(torch.nn.Module):
    """The real UNet, recording for every call where its tile lies in the current window."""

    def __init__(self, unet, calls):
        super().__init__()
        self.unet, self.calls = unet, calls
        self.window = None

    def forward(self, x, t, context, cond, num_frames=None):
        window = self.window
        th, tw = x.shape[-2:]
        candidates = (window[0, 0] == x[0, 0, 0, 0]).nonzero().tolist()  # where the tile's first value occurs
        hits = [(y, xo) for y, xo in candidates if torch.equal(window[0, :, y:y + th, xo:xo + tw], x[0])]
        assert len(hits) == 1, hits
        self.calls[-1]["tiles"].append((*hits[0], th, tw))
        return self.unet(x, t, context, cond, num_frames)


def test_node_defaults_denoise_every_pixel_once_per_step_with_moving_borders(tiny_models, monkeypatch):
    frames = _moving_clip(FRAMES, LR)
    sampler_settings = _defaults(MGLDSampler)
    assert (sampler_settings["window_overlap"], sampler_settings["tile_overlap"]) == (0, 0)  # the shifted scheme
    sampler_settings.update(steps=STEPS, tile_size=TILE)  # the rest as the node ships them

    calls = []
    unet = LocatingUNet(tiny_models["unet"], calls)
    real_predict = loop_module.predict_eps

    def predict_eps(unet_, lr_encoder, x, *args, **kwargs):  # observes each window's latents, changes nothing
        unet.window = x
        calls.append({"frames": x.shape[0], "tiles": []})
        return real_predict(unet_, lr_encoder, x, *args, **kwargs)

    monkeypatch.setattr(loop_module, "predict_eps", predict_eps)

    model = MGLDDiffusion(unet, tiny_models["lr_encoder"], tiny_models["first_stage"], tiny_models["context"], None,
                          "tiny fixture networks")  # what the diffusion loader hands on
    (latent,) = MGLDSampler().sample(model, frames, _true_flow(FRAMES, LR), **sampler_settings)
    assert latent.latents.shape == (FRAMES, 4, 64, 64) and torch.isfinite(latent.latents).all()  # MGLD_LATENT

    options = SamplingOptions(steps=STEPS, strength=sampler_settings["guidance_strength"], seed=sampler_settings["seed"],
                              window=sampler_settings["window"], window_overlap=sampler_settings["window_overlap"],
                              tile=TILE, tile_overlap=sampler_settings["tile_overlap"])
    plan = SamplingPlan.create(options, FRAMES, (64, 64))
    assert [step.phase for step in plan.steps] == ["shifted"] * (STEPS - 1) + ["blended"]

    # Windows: a partition of the 12 frames at every step, finishing steps included, moving each step.
    window_starts = []
    for step in plan.steps:
        counts = torch.zeros(FRAMES, dtype=torch.long)
        for window in step.windows:
            counts[list(window.frames)] += 1
        assert counts.tolist() == [1] * FRAMES, (step.index, [w.frames for w in step.windows])
        window_starts.append({w.frames[0] for w in step.windows})
    assert all(a != b for a, b in zip(window_starts, window_starts[1:])), window_starts

    # The run executed the plan: one UNet window per planned window, in order, on the planned tiles.
    planned = [(step, window) for step in plan.steps for window in step.windows]
    assert [call["frames"] for call in calls] == [len(window.frames) for _, window in planned]
    for (step, _), call in zip(planned, calls):
        assert sorted(call["tiles"]) == sorted(step.tiles.tiles), step.index

    # Tiles: every latent pixel once per shifted step, tile borders moving; >= once when finishing.
    tile_sets = {}
    for (step, _), call in zip(planned, calls):
        coverage = torch.zeros(64, 64, dtype=torch.long)
        for y, x, th, tw in call["tiles"]:
            coverage[y:y + th, x:x + tw] += 1
        if step.phase == "shifted":
            assert coverage.min() == 1 and coverage.max() == 1, (step.index, call["tiles"])
            assert len(call["tiles"]) >= 9  # at least 3 tiles per side
        else:
            assert coverage.min() >= 1 and coverage.max() >= 2
        tile_sets.setdefault(step.index, set()).update((y, x) for y, x, _, _ in call["tiles"])
    shifted = [tile_sets[s] for s in range(STEPS - 1)]
    assert all(a != b for a, b in zip(shifted, shifted[1:])), shifted


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
