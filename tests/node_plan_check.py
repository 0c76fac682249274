"""The sampler node at its default settings executes the sampling plan (shared by the integration test, with
stand-in networks, and the system test, with the tiny fixture UNet).

The sampler's UNet is wrapped so the test can see where each tile it receives lies in its window (found by
matching values, independently of the tiling code). The check covers the sampling plan the node's settings
give (in the shifted steps every latent pixel and frame is denoised exactly once, and the borders move from
one step to the next) and that the node's run executes exactly that plan, at a size where tiles and windows
really move (4 tiles per side, 12 frames).
"""
import torch

from mgld_vsr.models.bundle import MGLDDiffusion
from mgld_vsr.nodes.sampler import MGLDSampler
from mgld_vsr.pipeline.sampling import loop as loop_module
from mgld_vsr.pipeline.sampling.plan import SamplingOptions, SamplingPlan
from mgld_vsr.pipeline.frames import LRPlan
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


def check_node_defaults_execute_the_plan(networks: dict, context: torch.Tensor, monkeypatch):
    """Run the sampler node at its shipped defaults (steps and tile made small) with ``networks`` (unet,
    lr_encoder, first_stage) and check that it executes the plan its settings give, tile by tile."""
    frames = _moving_clip(FRAMES, LR)
    sampler_settings = _defaults(MGLDSampler)
    assert (sampler_settings["window_overlap"], sampler_settings["tile_overlap"]) == (0, 0)  # the shifted scheme
    sampler_settings.update(steps=STEPS, tile_size=TILE)  # the rest as the node ships them

    calls = []
    unet = LocatingUNet(networks["unet"], calls)
    real_predict = loop_module.predict_eps

    def predict_eps(unet_, lr_encoder, x, *args, **kwargs):  # observes each window's latents, changes nothing
        unet.window = x
        calls.append({"frames": x.shape[0], "tiles": []})
        return real_predict(unet_, lr_encoder, x, *args, **kwargs)

    monkeypatch.setattr(loop_module, "predict_eps", predict_eps)

    model = MGLDDiffusion(unet, networks["lr_encoder"], networks["first_stage"], context, None,
                          "test networks")  # what the diffusion loader hands on
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
