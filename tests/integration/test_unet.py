"""UNet + time-aware LR encoder behaviour beyond the golden numbers: precision, batching, errors."""
import pytest
import torch

from golden_lib import default_golden_dir
from weights_index import weights_file_with_prefix
from mgld_vsr.models.loader import build_empty, load_components, official_config

GOLDEN = default_golden_dir()


@pytest.fixture(scope="module")
def tiny():
    path = weights_file_with_prefix(GOLDEN / "weights", "model.diffusion_model.")
    return load_components(path, ["unet", "lr_encoder"])


@pytest.fixture(scope="module")
def inputs(tiny):
    torch.manual_seed(0)
    ctx_dim = tiny["unet"].config.context_dim
    x = torch.randn(5, 4, 16, 24)
    lr = torch.randn(5, 4, 16, 24)
    return x, lr, torch.tensor([500]), torch.randn(1, 77, ctx_dim)


def _rel(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def test_official_size_builds_without_storage():
    unet = build_empty("unet", official_config("unet"))
    params = sum(p.numel() for p in unet.parameters())
    assert all(p.is_meta for p in unet.parameters())
    assert 930e6 < params < 940e6  # 935.3 M in the released checkpoint


def test_bf16_weights_close_to_fp32(tiny, inputs):
    x, lr, t, ctx = inputs
    with torch.no_grad():
        ref = tiny["unet"](x, t, ctx, tiny["lr_encoder"](lr, t))
        unet16 = load_components(tiny["unet"].source_path, ["unet", "lr_encoder"], dtype=torch.bfloat16)
        out = unet16["unet"](x.bfloat16(), t, ctx.bfloat16(), unet16["lr_encoder"](lr.bfloat16(), t))
    assert out.dtype == torch.bfloat16
    assert _rel(out, ref) < 0.1


def test_bf16_autocast_close_to_fp32(tiny, inputs):
    x, lr, t, ctx = inputs
    with torch.no_grad():
        ref = tiny["unet"](x, t, ctx, tiny["lr_encoder"](lr, t))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = tiny["unet"](x, t, ctx, tiny["lr_encoder"](lr, t))
    assert _rel(out, ref) < 0.1


def test_frames_of_a_window_interact_but_windows_do_not(tiny, inputs):
    """Temporal layers mix the 5 frames of a window; two windows in one batch stay independent."""
    x, lr, t, ctx = inputs
    unet, enc = tiny["unet"], tiny["lr_encoder"]
    with torch.no_grad():
        base = unet(x, t, ctx, enc(lr, t))
        x2 = x.clone()
        x2[0] += 1.0
        changed = unet(x2, t, ctx, enc(lr, t))
        pair = unet(torch.cat([x, x2]), t, ctx, enc(torch.cat([lr, lr]), t))
    assert (changed[1] - base[1]).abs().max() > 1e-4  # frame 1 sees frame 0
    assert _rel(pair[:5], base) < 1e-5 and _rel(pair[5:], changed) < 1e-5


def test_per_video_context_rows(tiny, inputs):
    x, lr, t, ctx = inputs
    unet, enc = tiny["unet"], tiny["lr_encoder"]
    ctx2 = torch.randn_like(ctx)
    with torch.no_grad():
        both = unet(torch.cat([x, x]), t, torch.cat([ctx, ctx2]), enc(torch.cat([lr, lr]), t))
        second = unet(x, t, ctx2, enc(lr, t))
    assert _rel(both[5:], second) < 1e-5


def test_encoder_features_keyed_by_width(tiny, inputs):
    _, lr, t, _ = inputs
    feats = tiny["lr_encoder"](lr, t)
    assert sorted(feats, key=int, reverse=True) == ["24", "12", "6", "3"]
    assert feats["24"].shape[-2:] == (16, 24)


def test_errors_are_clear(tiny, inputs):
    x, lr, t, ctx = inputs
    unet, enc = tiny["unet"], tiny["lr_encoder"]
    with pytest.raises(ValueError, match="whole windows of 5 frames"):
        unet(x[:4], t, ctx, enc(lr[:4], t))
    with pytest.raises(ValueError, match="no LR-encoder feature of width"):
        unet(x, t, ctx, enc(lr[..., :16], t))
