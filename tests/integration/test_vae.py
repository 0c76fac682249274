"""SD-2.1 first-stage encoder (models/vae.py): structure, config inference, posterior and precision."""
import json
import math

import pytest
import torch

from mgld_vsr.models.vae import (LATENT_SCALE, DiagonalGaussianPosterior, Encoder, EncoderConfig, FirstStageEncoder,
                                 SpatialSelfAttention, VAEConfig)
from needs import manifest

PREFIX = "first_stage_model."


def _small_config(**overrides) -> VAEConfig:
    enc = dict(ch=32, ch_mult=(1, 2, 1), num_res_blocks=1, z_channels=4, attn_levels=())
    enc.update(overrides)
    return VAEConfig(EncoderConfig(**enc), embed_dim=4)


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial values everywhere (norm affines included) so every path contributes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.2 if p.dim() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=gen) * scale + (1.0 if name.endswith("norm1.weight") else 0.0))
    return model.eval()


def test_latent_scale_constant():
    assert LATENT_SCALE == 0.18215


def test_official_meta_build_matches_manifest():
    keys = json.loads(manifest("mgldvsr_unet.json").read_text())["keys"]
    theirs = {k[len(PREFIX):]: tuple(v) for k, v in keys.items()
              if k.startswith(PREFIX + "encoder.") or k.startswith(PREFIX + "quant_conv.")}
    with torch.device("meta"):
        model = FirstStageEncoder(VAEConfig.official())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == theirs
    assert all(t.is_meta for t in model.state_dict().values())


def test_official_config_round_trips_through_shapes():
    with torch.device("meta"):
        sd = FirstStageEncoder(VAEConfig.official()).state_dict()
    # The decoder half of first_stage_model is present in real files and must not confuse inference.
    sd["decoder.conv_in.weight"] = torch.empty(512, 4, 3, 3, device="meta")
    sd["post_quant_conv.weight"] = torch.empty(4, 4, 1, 1, device="meta")
    config = VAEConfig.from_state_dict(sd, {})
    assert config == VAEConfig.official()
    assert config.encoder.ch == 128 and config.encoder.ch_mult == (1, 2, 4, 4)
    assert config.encoder.num_res_blocks == 2 and config.encoder.z_channels == 4


def test_attention_levels_are_inferred():
    config = _small_config(attn_levels=(1,))
    with torch.device("meta"):
        sd = FirstStageEncoder(config).state_dict()
    assert "encoder.down.1.attn.0.q.weight" in sd and "encoder.down.0.attn.0.q.weight" not in sd
    assert VAEConfig.from_state_dict(sd, {}) == config


def test_meta_build_then_assign_loads_strictly():
    source = _randomised(FirstStageEncoder(_small_config()))
    with torch.device("meta"):
        target = FirstStageEncoder(VAEConfig.from_state_dict(source.state_dict(), {}))
    target.load_state_dict(source.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(target.encode(x).moments, source.encode(x).moments)


def test_wrong_state_dict_is_a_clear_error():
    with pytest.raises(ValueError, match="conv_in.weight"):
        VAEConfig.from_state_dict({"model.diffusion_model.x": torch.zeros(1)}, {})
    with torch.device("meta"):
        sd = FirstStageEncoder(_small_config()).state_dict()
    del sd["quant_conv.weight"]
    with pytest.raises(ValueError, match="quant_conv"):
        VAEConfig.from_state_dict(sd, {})


def test_encoder_output_geometry():
    model = _randomised(FirstStageEncoder(_small_config()))
    with torch.no_grad():
        posterior = model.encode(torch.randn(3, 3, 24, 16))
    # two downsamplings for three levels; 2*z moments
    assert posterior.moments.shape == (3, 8, 6, 4)
    assert posterior.mean.shape == posterior.std.shape == (3, 4, 6, 4)


def test_features_are_taken_before_downsampling():
    encoder = _randomised(Encoder(EncoderConfig(ch=32, ch_mult=(1, 2, 2, 1), num_res_blocks=1)))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        h, feats = encoder.forward_with_features(x, (1, 2))
        assert torch.equal(h, encoder(x))
        level1 = encoder.down[1].block[0](encoder.down[0].downsample(encoder.down[0].block[0](encoder.conv_in(x))))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 16, 16), (1, 64, 8, 8)]
    assert torch.allclose(feats[0], level1, atol=1e-6)


def test_attention_matches_plain_softmax_attention():
    attn = _randomised(SpatialSelfAttention(32), seed=3)
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        got = attn(x)
        n = attn.norm(x)
        q, k, v = (m(n).flatten(2) for m in (attn.q, attn.k, attn.v))  # [N, C, HW]
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(32), dim=-1)  # [N, HWq, HWk]
        out = (v @ weights.transpose(1, 2)).reshape(x.shape)
        expected = x + attn.proj_out(out)
    assert torch.allclose(got, expected, atol=1e-5)


def test_posterior_clamps_logvar_and_samples():
    mean = torch.randn(2, 4, 3, 3)
    logvar = torch.full((2, 4, 3, 3), 50.0)
    logvar[0] = -100.0
    post = DiagonalGaussianPosterior(torch.cat([mean, logvar], dim=1))
    assert post.logvar[0].eq(-30.0).all() and post.logvar[1].eq(20.0).all()
    assert torch.allclose(post.std, torch.exp(0.5 * post.logvar))
    noise = torch.randn(2, 4, 3, 3)
    assert torch.allclose(post.sample(noise=noise), mean + post.std * noise)
    assert torch.equal(post.mode(), mean)
    with pytest.raises(ValueError, match="shape"):
        post.sample(noise=torch.randn(1, 4, 3, 3))


def test_sample_is_reproducible_with_a_generator():
    post = DiagonalGaussianPosterior(torch.randn(5, 8, 4, 6))
    a = post.sample(generator=torch.Generator().manual_seed(4001))
    b = post.sample(generator=torch.Generator().manual_seed(4001))
    c = post.sample(generator=torch.Generator().manual_seed(4002))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # Same draw as the official `torch.manual_seed(seed); torch.randn(shape)` on the CPU.
    torch.manual_seed(4001)
    eps = torch.randn(post.mean.shape)
    assert torch.equal(a, post.mean + post.std * eps)


def test_bf16_close_to_fp32():
    model = _randomised(FirstStageEncoder(_small_config(attn_levels=(2,))))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        ref = model.encode(x).mean
        half = model.to(torch.bfloat16).encode(x.to(torch.bfloat16)).mean
    assert half.dtype == torch.bfloat16
    rel = (half.float() - ref).abs().max() / ref.abs().max()
    assert rel < 5e-2, rel
