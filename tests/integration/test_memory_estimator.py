"""Stage-memory estimator (pipeline/memory/estimate.py) on the fixture set's tiny models."""
import pytest
import torch

from mgld_vsr.pipeline.memory import estimate as memory
from mgld_vsr.pipeline.memory.estimate import (LATENT_SCALE, decode_peak, encode_peak, flow_peak, measure, meta_copy,
                                               sampling_peak)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: thread start-up costs more than it saves


def parameter_bytes(module, dtype):
    return sum(t.numel() * torch.empty((), dtype=dtype).element_size() for t in module.parameters())


@pytest.fixture(autouse=True)
def fresh_cache():
    memory.clear_cache()
    yield
    memory.clear_cache()


def test_measure_on_a_hand_computed_case():
    layer = torch.nn.Linear(10, 6)

    def run():
        x = torch.ones(4, 10)  # 160 bytes
        return layer(x)  # + 4*6*4 = 96 bytes

    weights, peak = measure([layer], run)
    assert weights == (10 * 6 + 6) * 4
    assert peak == weights + 160 + 96


def test_sampling_peak_is_monotone_in_tile_size_and_includes_weights(tiny_models):
    unet, encoder = tiny_models["unet"], tiny_models["lr_encoder"]
    peaks = [sampling_peak(unet, encoder, 5, h, w, torch.float16) for h, w in ((16, 16), (16, 32), (32, 32))]
    assert peaks[0] < peaks[1] < peaks[2]
    weights = parameter_bytes(unet, torch.float16) + parameter_bytes(encoder, torch.float16)
    assert peaks[0] > weights


def test_estimates_are_cached_and_leave_the_real_models_alone(tiny_models, monkeypatch):
    unet, encoder = tiny_models["unet"], tiny_models["lr_encoder"]
    first = sampling_peak(unet, encoder, 5, 16, 16, torch.float16)

    def fail(*args, **kwargs):
        raise AssertionError("a cached estimate was measured again")

    monkeypatch.setattr(memory, "measure", fail)
    assert sampling_peak(unet, encoder, 5, 16, 16, torch.float16) == first
    assert next(unet.parameters()).device.type == "cpu" and next(unet.parameters()).dtype == torch.float32
    with pytest.raises(AssertionError):
        sampling_peak(unet, encoder, 5, 24, 16, torch.float16)  # another geometry is a new measurement


def test_other_stages_grow_with_their_geometry(tiny_models):
    vae, video_vae, raft = tiny_models["first_stage"], tiny_models["video_vae"], tiny_models["raft"]
    assert encode_peak(vae, 1, 64, 64, torch.float16) < encode_peak(vae, 1, 64, 128, torch.float16) \
        < encode_peak(vae, 2, 64, 128, torch.float16)
    assert parameter_bytes(vae, torch.float16) < encode_peak(vae, 1, 64, 64, torch.float16) \
        < encode_peak(vae, 1, 64, 64, torch.float32)  # fp32 weights and activations take more
    assert decode_peak(video_vae, 5, 8, 8, torch.float16) < decode_peak(video_vae, 5, 16, 8, torch.float16) \
        < decode_peak(video_vae, 5, 16, 16, torch.float16)
    assert decode_peak(video_vae, 5, 8, 8, torch.float16) > parameter_bytes(video_vae, torch.float16)
    assert parameter_bytes(raft, torch.float32) < flow_peak(raft, 2, 128, 128) < flow_peak(raft, 4, 128, 128)


def test_meta_estimates_match_a_real_run(tiny_models):
    """The count on meta copies equals the count of the same work on real CPU tensors where no attention
    score matrix is involved (the meta device runs the math attention, so it can only be higher)."""
    video_vae, unet, encoder = tiny_models["video_vae"], tiny_models["unet"], tiny_models["lr_encoder"]

    def decode():  # the per-tile work of decode_window (its LR and latent tiles stay alive throughout)
        lr, z = torch.zeros(5, 3, 64, 64), torch.zeros(5, 4, 8, 8)
        posterior, features = video_vae.encode(lr)
        part = video_vae.decode(z / LATENT_SCALE, features, 1.0).float()
        return posterior, part * torch.ones(64, 64)

    real = measure([video_vae], decode)[1]
    assert decode_peak(video_vae, 5, 8, 8, torch.float32) == pytest.approx(real, rel=0.01)

    def sample():
        t = torch.tensor([500])
        cond = encoder(torch.zeros(5, 4, 8, 8), t)
        return unet(torch.zeros(5, 4, 8, 8), t, torch.zeros(1, 77, unet.config.context_dim), cond, 5).float()

    real = measure([unet, encoder], sample)[1]
    assert sampling_peak(unet, encoder, 5, 8, 8, torch.float32) >= real


def test_meta_copy_keeps_config_and_dtype(tiny_models):
    copy = meta_copy(tiny_models["unet"], torch.bfloat16)
    assert copy.config == tiny_models["unet"].config
    assert all(p.device.type == "meta" and p.dtype == torch.bfloat16 for p in copy.parameters())
    with pytest.raises(TypeError, match="no .config"):
        meta_copy(torch.nn.Linear(2, 2), torch.float16)


def test_same_estimate_under_inference_mode(tiny_models):
    """ComfyUI runs nodes under inference mode, where SDPA reaches the counter undecomposed."""
    video_vae = tiny_models["video_vae"]
    outside = decode_peak(video_vae, 5, 8, 8, torch.float16)
    memory.clear_cache()
    with torch.inference_mode():
        inside = decode_peak(video_vae, 5, 8, 8, torch.float16)
    assert inside == outside
