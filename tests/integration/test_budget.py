"""Memory budget: tiles shrink to fit the cap, and a cap that nothing fits names the smallest that does."""
import re

import pytest
import torch

from mgld_vsr.models.attention import planned_for
from mgld_vsr.pipeline.memory.budget import GB, BudgetTooSmall, fit_decode, fit_sampling, weight_bytes
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, sample_video

PLAN = LRPlan.create(64, 96, 4, min_short_side=256)  # 32x48 latent, 256x384 at the model


@pytest.fixture(autouse=True)
def math_attention_device():
    """Budgets planned for a device whose attention builds the score matrix (MPS), where the need grows
    fastest with the tile; on this CPU the fused flash kernel makes the tiny models' need nearly flat."""
    with planned_for("mps"):
        yield


def _nets(tiny_models):
    return tiny_models["unet"], tiny_models["lr_encoder"], tiny_models["first_stage"]


def _need(tiny_models, budget, tile=32):
    return fit_sampling(*_nets(tiny_models), PLAN, 5, SamplingOptions(tile=tile), budget)


def test_weight_bytes_follow_the_dtype(tiny_models):
    unet = tiny_models["unet"]
    params = sum(p.numel() for p in unet.parameters())
    assert weight_bytes(unet, torch.float16) >= 2 * params
    assert weight_bytes(unet, torch.float32) - weight_bytes(unet, torch.float16) == 2 * params


def test_large_budget_keeps_the_tile_and_smaller_budgets_shrink_it(tiny_models):
    big = _need(tiny_models, 1000.0)
    assert big.options.tile == 32 and big.encode_chunk > 1
    assert big.sampling_bytes > weight_bytes(tiny_models["unet"], torch.float32)
    # a budget just under what 32-px tiles need must give smaller tiles, and fewer frames per encode
    small_budget = big.sampling_bytes * 1.1 / GB * 0.999
    small = _need(tiny_models, small_budget)
    assert small.options.tile < 32 and small.encode_chunk <= big.encode_chunk
    assert small.peak_bytes * 1.1 <= small_budget * GB


def test_too_small_budget_names_the_smallest_budget_that_works(tiny_models):
    with pytest.raises(BudgetTooSmall) as error:
        _need(tiny_models, 0.001)
    message = str(error.value)
    assert "64x96" in message and "16-px latent tiles" in message
    smallest = float(re.search(r"at least ([0-9.]+)", message).group(1))
    fitted = _need(tiny_models, smallest)  # the advertised minimum really works
    assert fitted.options.tile == 16 and fitted.encode_chunk == 1
    with pytest.raises(BudgetTooSmall):
        _need(tiny_models, smallest - 0.1)


def test_sampling_need_does_not_grow_with_the_clip(tiny_models):
    """The clip-long state lives in host RAM: a 300-frame clip needs the same device memory as 5 frames,
    except the guidance chunk, which stops growing at one chunk of pairs."""
    nets, options = _nets(tiny_models), SamplingOptions(tile=32)
    short, chunk, long = (fit_sampling(*nets, PLAN, n, options, 1000.0) for n in (5, 17, 300))
    assert short.sampling_bytes == long.sampling_bytes and short.encode_bytes == long.encode_bytes
    assert 0 < short.guidance_bytes < chunk.guidance_bytes == long.guidance_bytes


def test_sampler_only_runs_tiles_that_fit_the_budget(tiny_models):
    unet, lr_encoder, first_stage = _nets(tiny_models)
    budget = _need(tiny_models, 1000.0).sampling_bytes * 1.1 / GB * 0.999
    seen = []
    hook = unet.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    frames = torch.randint(0, 255, (5, 64, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    messages = []
    from mgld_vsr.pipeline.hooks import Hooks

    try:
        with torch.no_grad():
            sample_video(frames, MotionField.still(5, PLAN.latent_size), PLAN, unet=unet, lr_encoder=lr_encoder,
                         first_stage=first_stage, context=tiny_models["context"],
                         options=SamplingOptions(steps=1, tile=32, memory_budget_gb=budget),
                         hooks=Hooks(message=messages.append))
    finally:
        hook.remove()
    assert seen and max(max(s) for s in seen) <= 16
    assert "16-px latent tiles" in messages[0]


def test_decode_budget_shrinks_the_decode_tile(tiny_models):
    vae = tiny_models["video_vae"]
    tile, need_whole = fit_decode(vae, PLAN, 0, 1000.0)
    assert tile == 0
    tile, need = fit_decode(vae, PLAN, 0, need_whole * 1.1 / GB * 0.999)
    assert 0 < tile < max(PLAN.latent_size) and need < need_whole
    with pytest.raises(BudgetTooSmall, match="at least"):
        fit_decode(vae, PLAN, 0, 0.0001)


def test_negative_budget_is_refused():
    with pytest.raises(ValueError, match="memory budget"):
        SamplingOptions(memory_budget_gb=-1).validate((64, 64))
