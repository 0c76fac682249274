"""What the pipeline hands to progress hooks: previews of the predicted clean latents, and interrupt
checks between tiles (so Cancel never waits for a whole window of tiles)."""
import pytest
import torch

from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.hooks import Hooks
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.official import official_sample
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, VideoLatents, sample_video
from mgld_vsr.pipeline.decoding.cfw import decode_video

pytestmark = pytest.mark.usefixtures("one_thread")


class Stop(Exception):
    pass


def _clip(n=4, size=16):
    frames = (torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    return frames, LRPlan.create(size, size, 4, min_short_side=64)  # 8x8 latent grid


def _networks(tiny_models):
    return {k: tiny_models[k] for k in ("unet", "lr_encoder", "first_stage")}


def test_previews_are_the_predicted_clean_latents(tiny_models):
    """With one window and no guidance, the last step's x0 prediction is the result itself (the final
    DDPM step returns x0)."""
    frames, plan = _clip(n=5)  # one 5-frame window
    shown = []
    with torch.no_grad():
        result = sample_video(frames, MotionField.still(5, plan.latent_size), plan, **_networks(tiny_models),
                              context=tiny_models["context"], hooks=Hooks(preview=shown.append),
                              options=SamplingOptions(steps=3, strength=0.0, window=5, tile=8))
    assert len(shown) == 3 and shown[-1].shape == result.latents.shape
    assert torch.allclose(shown[-1], result.latents, atol=1e-5)
    assert not torch.allclose(shown[0], shown[-1])  # and it changes as sampling proceeds


def test_official_previews_are_the_predicted_clean_latents(tiny_models):
    from mgld_vsr.pipeline.motion.field import ClipFlow

    frames, plan = _clip(n=5)
    hf, wf = plan.flow_size
    zero = torch.zeros(4, 2, hf, wf)
    flow = ClipFlow(zero, zero.clone(), zero[:1], zero[:1], plan, torch.zeros(4, dtype=torch.bool), torch.zeros(4))
    shown = []
    with torch.no_grad():
        result = official_sample(frames, flow, **_networks(tiny_models), context=tiny_models["context"], steps=2,
                                 strength=0.0, hooks=Hooks(preview=shown.append))
    assert torch.allclose(shown[-1], result.tiles[0][0].samples, atol=1e-5)


def _stop_at(calls: list, stop_at: int):
    def check():
        calls.append(len(calls))
        if len(calls) == stop_at:
            raise Stop()
    return check


def test_sampling_checks_for_cancel_between_tiles(tiny_models):
    frames, _ = _clip(size=32)
    plan = LRPlan.create(32, 32, 4, min_short_side=128)  # 16x16 latent grid: four 8-px tiles per window
    calls, steps = [], []
    hooks = Hooks(progress=lambda done, total, what: steps.append(done), check_interrupt=_stop_at(calls, 2))
    with torch.no_grad(), pytest.raises(Stop):
        sample_video(frames, MotionField.still(4, plan.latent_size), plan, **_networks(tiny_models),
                     context=tiny_models["context"], hooks=hooks, options=SamplingOptions(steps=2, strength=0.0, tile=8))
    assert max(steps, default=0) == 0  # only the stage announcing itself: stopped between the first window's tiles


def test_decoding_checks_for_cancel_between_tiles(tiny_models):
    frames, _ = _clip()
    plan = LRPlan.create(16, 16, 4, min_short_side=128)  # 16x16 latent grid
    latents = VideoLatents(torch.randn(4, 4, 16, 16), plan, torch.zeros(3, dtype=torch.bool))
    calls, windows = [], []
    hooks = Hooks(progress=lambda done, total, what: windows.append(done), check_interrupt=_stop_at(calls, 2))
    with torch.no_grad(), pytest.raises(Stop):
        decode_video(latents, frames, tiny_models["video_vae"], tile=8, hooks=hooks)
    assert max(windows, default=0) == 0  # only the stage announcing itself: stopped between the first window's tiles
