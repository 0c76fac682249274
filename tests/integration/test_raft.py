"""RAFT module: build/load contract, correlation lookup layout, convex upsampling, padding (the bf16 run:
tests/system/test_raft_bf16.py)."""
import json

import pytest
import torch
from torch.nn import functional as F

from mgld_vsr.models.raft import RAFT, RAFTConfig, convex_upsample, sintel_padding
from mgld_vsr.models.raft.corr import CorrelationPyramid
from needs import manifest
from raft_cases import random_raft, smooth_pair


def random_state_dict(seed=0):
    torch.manual_seed(seed)
    sd = RAFT(RAFTConfig()).state_dict()
    for k, v in sd.items():
        if v.is_floating_point():
            sd[k] = torch.randn_like(v) * 0.05 if not k.endswith("running_var") else torch.rand_like(v) + 0.5
    return sd


# ------------------------------------------------------------------------------ build and load

def test_meta_build_and_strict_assign_load_share_the_double_registered_norm():
    sd = random_state_dict()
    config = RAFTConfig.from_state_dict(sd, {})
    assert config == RAFTConfig.official() and config.iters == 10
    with torch.device("meta"):
        model = RAFT(config)
    assert all(p.is_meta for p in model.parameters())
    model.load_state_dict(sd, strict=True, assign=True)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    block = model.cnet.layer2[0]
    assert block.norm3 is block.downsample[1]
    assert "cnet.layer2.0.norm3.running_mean" in model.state_dict() and "cnet.layer2.0.downsample.1.running_mean" in model.state_dict()
    assert torch.equal(block.norm3.running_mean, sd["cnet.layer2.0.downsample.1.running_mean"])


def test_keys_and_shapes_equal_the_official_manifest():
    keys = json.loads(manifest("raft_things.json").read_text())["keys"]
    with torch.device("meta"):
        ours = {k: list(v.shape) for k, v in RAFT(RAFTConfig()).state_dict().items()}
    assert ours == keys


def test_from_state_dict_reads_iters_hint_and_rejects_other_models():
    """Key-level mismatches are reported by the loader (tests/test_loader.py); here: what shapes reveal."""
    sd = random_state_dict()
    assert RAFTConfig.from_state_dict(sd, {"iters": "12"}).iters == 12
    with pytest.raises(ValueError, match="prefix"):
        RAFTConfig.from_state_dict({"module." + k: v for k, v in sd.items()}, {})
    small = dict(sd, **{"cnet.conv2.weight": torch.zeros(160, 96, 1, 1)})
    with pytest.raises(ValueError, match="RAFT-small"):
        RAFTConfig.from_state_dict(small, {})


def test_context_batchnorm_uses_stored_statistics_even_in_train_mode():
    model = RAFT(RAFTConfig())
    model.load_state_dict(random_state_dict())
    before = model.cnet.norm1.running_mean.clone()
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    ref = model.cnet(x)
    model.train()
    assert torch.allclose(model.cnet(x), ref) and torch.equal(model.cnet.norm1.running_mean, before)


# ------------------------------------------------------------------------- correlation lookup

def test_correlation_lookup_window_layout_is_x_major():
    """Channel a*(2r+1)+b of level 0 holds the correlation at (x + d_a, y + d_b) (official order)."""
    h, w, r = 6, 7, 2
    fmap1 = torch.ones(1, 4, h, w)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    # corr(p, q) = sum_c f2[c, q] / sqrt(4) = 100*qy + qx + 1 (non-zero inside, 0 outside the volume).
    fmap2 = ((100 * ys + xs + 1) / 2).expand(1, 4, h, w).contiguous()
    pyramid = CorrelationPyramid(fmap1, fmap2, num_levels=2, radius=r)
    coords = torch.stack((xs, ys))[None]
    out = pyramid.lookup(coords, torch.float32)
    side = 2 * r + 1
    assert out.shape == (1, 2 * side * side, h, w)
    py, px = 3, 2
    for a, da in enumerate(range(-r, r + 1)):
        for b, db in enumerate(range(-r, r + 1)):
            qx, qy = px + da, py + db
            expected = 100 * qy + qx + 1 if (0 <= qx < w and 0 <= qy < h) else 0.0
            assert out[0, a * side + b, py, px].item() == pytest.approx(expected, abs=1e-3)
    # Level 1 reads the 2x2-average-pooled volume at coords / 2.
    pooled = F.avg_pool2d(((100 * ys + xs + 1))[None, None], 2)
    assert out[0, side * side + (r * side + r), 2, 2].item() == pytest.approx(pooled[0, 0, 1, 1].item(), abs=1e-3)


# ------------------------------------------------------------------------ convex upsampling

def test_convex_upsample_orders_logits_as_neighbour_subrow_subcol():
    torch.manual_seed(5)
    flow = torch.randn(1, 2, 3, 4)
    logits = torch.full((1, 9, 8, 8, 3, 4), -1e4)
    logits[:, 4] = 0  # centre neighbour by default
    logits[:, 4, :4] = -1e4
    logits[:, 1, :4] = 0  # the upper half of each 8x8 block takes the neighbour above (dy=-1, dx=0)
    out = convex_upsample(flow, logits.view(1, 9 * 64, 3, 4))
    nearest = 8 * flow.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)
    above = 8 * F.pad(flow, (0, 0, 1, 0))[:, :, :-1].repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)
    block_row = torch.arange(24) % 8
    upper = (block_row < 4).view(1, 1, 24, 1)
    assert torch.allclose(out, torch.where(upper, above, nearest), atol=1e-5)


def test_sintel_padding_splits_evenly_extra_at_end():
    assert sintel_padding(128, 136) == (0, 0, 0, 0)
    assert sintel_padding(130, 133) == (1, 2, 3, 3)
    assert sintel_padding(121, 127) == (0, 1, 3, 4)


# --------------------------------------------------------------------------------- forward

@pytest.fixture(scope="module")
def model():
    return random_raft()


def test_forward_pads_and_crops_unaligned_inputs(model):
    a, b = smooth_pair(130, 131, dx=2, dy=1)
    flow = model(a, b, iters=2)
    assert flow.shape == (1, 2, 130, 131) and torch.isfinite(flow).all()
    left, right, top, bottom = sintel_padding(130, 131)
    pa, pb = (F.pad(x, (left, right, top, bottom), mode="replicate") for x in (a, b))
    ref = model(pa, pb, iters=2)[:, :, top : top + 130, left : left + 131]
    assert torch.allclose(flow, ref)


def test_forward_rejects_small_and_mismatched_inputs(model):
    with pytest.raises(ValueError, match="128"):
        model(torch.rand(1, 3, 120, 256), torch.rand(1, 3, 120, 256))
    with pytest.raises(ValueError, match="equal shape"):
        model(torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 136))
