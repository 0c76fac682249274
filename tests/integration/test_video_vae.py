"""Temporal CFW video VAE (models/video_vae.py): structure, CFW weight, temporal mixing, batch rules, precision."""
import json

import pytest
import torch

from mgld_vsr.models.vae import EncoderConfig
from mgld_vsr.models.video_vae import TemporalCFWVideoVAE, VideoVAEConfig
from needs import manifest

T = 5


def _small_config(**overrides) -> VideoVAEConfig:
    fields = dict(encoder=EncoderConfig(ch=32, ch_mult=(1, 2, 1, 1), num_res_blocks=1, z_channels=4),
                  num_fuse_blocks=1, fuse_growth=8, num_frames=T)
    fields.update(overrides)
    return VideoVAEConfig(**fields)


def _model(seed: int = 0, **overrides) -> TemporalCFWVideoVAE:
    """Small model with non-trivial values everywhere (temporal_alpha in (0, 1), norm affines)."""
    model = TemporalCFWVideoVAE(_small_config(**overrides))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("temporal_alpha"):
                p.fill_(0.6)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.15 if p.dim() > 1 else 0.1)
                        + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    return model.eval()


def _inputs(frames: int = T, size: int = 16, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(frames, 3, size, size, generator=gen) * 2 - 1
    z = torch.randn(frames, 4, size // 8, size // 8, generator=gen)
    return image, z


def test_official_meta_build_matches_manifest_inference_keys():
    data = json.loads(manifest("video_vae_cfw.json").read_text())
    theirs = {k: tuple(data["keys"][k]) for k in data["inference_keys"]}
    with torch.device("meta"):
        model = TemporalCFWVideoVAE(VideoVAEConfig.official())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == theirs
    # loss.* is the only part of the training checkpoint we leave out
    assert all(k.startswith("loss.") for k in set(data["keys"]) - set(ours))


def test_official_config_round_trips_and_reads_num_frames_hint():
    with torch.device("meta"):
        sd = TemporalCFWVideoVAE(VideoVAEConfig.official()).state_dict()
    sd["loss.logvar"] = torch.empty((), device="meta")  # training-only keys are tolerated
    assert VideoVAEConfig.from_state_dict(sd, {}) == VideoVAEConfig.official()
    assert VideoVAEConfig.from_state_dict(sd, {"num_frames": 3}).num_frames == 3
    official = VideoVAEConfig.official()
    assert official.fusion_levels == (1, 2) and official.num_frames == 5
    assert official.num_fuse_blocks == 2 and official.fuse_growth == 32


def test_small_config_round_trips_through_shapes():
    config = _small_config()
    with torch.device("meta"):
        sd = TemporalCFWVideoVAE(config).state_dict()
    assert VideoVAEConfig.from_state_dict(sd, {"num_frames": T}) == config
    del sd["decoder.fusion_layer_1.encode_enc_3.conv1.weight"]
    sd.pop("decoder.fusion_layer_2.encode_enc_1.conv1.weight")
    for key in [k for k in sd if k.startswith("decoder.fusion_layer_2.")]:
        del sd[key]
    with pytest.raises(ValueError, match="CFW"):
        VideoVAEConfig.from_state_dict(sd, {})


def test_encode_features_geometry():
    model = _model()
    image, _ = _inputs(size=32)
    with torch.no_grad():
        posterior, feats = model.encode(image)
    assert posterior.moments.shape == (T, 8, 4, 4)
    # encoder levels 1 and 2, before their downsampling: H/2 and H/4
    assert [tuple(f.shape) for f in feats] == [(T, 64, 16, 16), (T, 32, 8, 8)]


def test_fusion_weight_zero_is_the_plain_decoder():
    model = _model()
    image, z = _inputs()
    calls = []
    for level in model.config.fusion_levels:
        getattr(model.decoder, f"fusion_layer_{level}").register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        _, feats = model.encode(image)
        plain = model.decode(z, None, 0.0)
        assert not calls, "CFW blocks ran although fusion_w = 0"
        assert torch.equal(model.decode(z, feats, 0), plain)
        half = model.decode(z, feats, 0.5)
        full = model.decode(z, feats, 1.0)
    assert len(calls) == 2 * len(model.config.fusion_levels)
    assert not torch.allclose(half, plain, atol=1e-4)
    assert not torch.allclose(half, full, atol=1e-4)


def test_cfw_block_adds_weighted_correction():
    model = _model()
    fusion = model.decoder.fusion_layer_1
    enc, dec = torch.randn(2, 64, 4, 4), torch.randn(2, 64, 4, 4)
    with torch.no_grad():
        correction = fusion(enc, dec, 1.0) - dec
        assert torch.allclose(fusion(enc, dec, 0.25), dec + 0.25 * correction, atol=1e-5)
        assert correction.abs().max() > 1e-3


def test_temporal_mixing_mixes_frames_within_a_clip_only():
    model = _model()
    image, z = _inputs(frames=2 * T)
    with torch.no_grad():
        _, feats = model.encode(image)
        base = model.decode(z, feats, 1.0)
        z2 = z.clone()
        z2[0] += 1.0  # change frame 0 of clip 0 only
        changed = model.decode(z2, feats, 1.0)
    diff = (changed - base).abs().flatten(1).amax(1)
    assert diff[1] > 1e-3, "frame 1 did not see frame 0"
    assert torch.all(diff[T:] == 0), "the change leaked into the next clip"
    # Without temporal mixing (alpha = 0) every frame is decoded on its own.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("temporal_alpha"):
                p.zero_()
        diff = (model.decode(z2, feats, 1.0) - model.decode(z, feats, 1.0)).abs().flatten(1).amax(1)
    assert torch.all(diff[1:] == 0)


def test_batch_must_be_whole_clips():
    model = _model()
    image, z = _inputs(frames=T - 1)
    with torch.no_grad():
        _, feats = model.encode(image)  # the encoder is per-frame: any batch is fine
        with pytest.raises(ValueError, match=rf"multiple of {T}"):
            model.decode(z, feats, 1.0)


def test_mismatched_features_are_a_clear_error():
    model = _model()
    image, z = _inputs(size=32)
    with torch.no_grad():
        _, feats = model.encode(image)
        with pytest.raises(ValueError, match="encoder feature"):
            model.decode(z[:, :, :2, :2], feats, 1.0)
        with pytest.raises(ValueError, match="feature maps"):
            model.decode(z, None, 0.5)


def test_meta_build_then_assign_loads_strictly():
    source = _model()
    with torch.device("meta"):
        target = TemporalCFWVideoVAE(VideoVAEConfig.from_state_dict(source.state_dict(), {"num_frames": T}))
    target.load_state_dict(source.state_dict(), strict=True, assign=True)
    image, z = _inputs()
    with torch.no_grad():
        _, feats = source.encode(image)
        assert torch.equal(target.eval().decode(z, feats, 1.0), source.decode(z, feats, 1.0))


def test_bf16_close_to_fp32():
    model = _model()
    image, z = _inputs()
    with torch.no_grad():
        _, feats = model.encode(image)
        ref = model.decode(z, feats, 1.0)
        model = model.to(torch.bfloat16)
        _, feats16 = model.encode(image.to(torch.bfloat16))
        out = model.decode(z.to(torch.bfloat16), feats16, 1.0)
    assert out.dtype == torch.bfloat16
    rel = (out.float() - ref).abs().max() / ref.abs().max()
    assert rel < 5e-2, rel
