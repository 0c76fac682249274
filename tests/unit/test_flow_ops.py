"""Flow utilities: warp, occlusion check, flow resizing and the pair bookkeeping of compute_flows."""

import pytest
import torch
from torch.nn import functional as F

from mgld_vsr.pipeline.motion.flow_ops import compute_flows, flow_warp, occlusion_masks, resize_flow


def constant_flow(n, h, w, u, v, dtype=torch.float32):
    flow = torch.empty(n, 2, h, w, dtype=dtype)
    flow[:, 0], flow[:, 1] = u, v
    return flow


# ----------------------------------------------------------------------------------------- warp

def test_warp_integer_shift_reads_p_plus_flow_and_zero_outside():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 11)
    out = flow_warp(x, constant_flow(2, 9, 11, u=2.0, v=1.0))  # pixel p reads x at (x+2, y+1)
    assert torch.allclose(out[:, :, :-1, :-2], x[:, :, 1:, 2:], atol=1e-6)
    assert out[:, :, -1, :].abs().max() == 0 and out[:, :, :, -2:].abs().max() == 0


def test_warp_half_pixel_shift_is_bilinear_average():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 6, 7)
    out = flow_warp(x, constant_flow(1, 6, 7, u=-0.5, v=0.0))
    assert torch.allclose(out[..., 1:], 0.5 * (x[..., :-1] + x[..., 1:]), atol=1e-6)
    assert torch.allclose(out[..., 0], 0.5 * x[..., 0], atol=1e-6)  # half of the weight falls outside


def test_warp_zero_flow_is_identity_and_width_one_is_finite():
    x = torch.randn(1, 4, 5, 6)
    assert torch.allclose(flow_warp(x, torch.zeros(1, 2, 5, 6)), x, atol=1e-6)
    thin = torch.randn(1, 1, 5, 1)
    assert torch.allclose(flow_warp(thin, torch.zeros(1, 2, 5, 1)), thin, atol=1e-6)


def test_warp_bf16_matches_fp32_and_keeps_dtype_and_grad():
    torch.manual_seed(2)
    x = torch.randn(1, 4, 16, 300)
    flow = torch.randn(1, 2, 16, 300) * 3
    ref = flow_warp(x, flow)
    half = flow_warp(x.bfloat16(), flow.bfloat16())
    assert half.dtype == torch.bfloat16
    assert (half.float() - ref).abs().max() < 0.1 * ref.abs().max()
    xg = x.clone().requires_grad_(True)
    flow_warp(xg, flow).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_warp_rejects_bad_shapes():
    with pytest.raises(ValueError):
        flow_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError):
        flow_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))


# ------------------------------------------------------------------------------------ occlusion

def test_occlusion_of_a_translation_marks_only_pixels_leaving_the_frame():
    h, w = 7, 10
    fwd = constant_flow(1, h, w, u=2.0, v=0.0)  # A -> B: everything moves 2 px right
    bwd = constant_flow(1, h, w, u=-2.0, v=0.0)  # B -> A
    fwd_occ, bwd_occ = occlusion_masks(fwd, bwd)
    assert fwd_occ.shape == (1, h, w) and fwd_occ.dtype == torch.float32
    expected_fwd = torch.zeros(1, h, w)
    expected_fwd[..., -2:] = 1  # these pixels of A land outside B
    expected_bwd = torch.zeros(1, h, w)
    expected_bwd[..., :2] = 1  # these pixels of B come from outside A
    assert torch.equal(fwd_occ, expected_fwd)
    assert torch.equal(bwd_occ, expected_bwd)


def test_occlusion_flags_inconsistent_region():
    h, w = 8, 8
    fwd = torch.zeros(1, 2, h, w)
    bwd = torch.zeros(1, 2, h, w)
    bwd[:, 1, 2:5, 3:6] = 3.0  # B claims motion where A claims none
    fwd_occ, bwd_occ = occlusion_masks(fwd, bwd)
    region = torch.zeros(1, h, w)
    region[:, 2:5, 3:6] = 1
    assert torch.equal(fwd_occ, region) and torch.equal(bwd_occ, region)


def test_occlusion_threshold_is_strict():
    fwd = torch.zeros(1, 2, 4, 4)
    at = constant_flow(1, 4, 4, u=0.5, v=0.0)  # error exactly beta with alpha = 0
    fwd_occ, bwd_occ = occlusion_masks(fwd, at, alpha=0.0, beta=0.5)
    assert fwd_occ.sum() == 0 and bwd_occ.sum() == 0
    above = constant_flow(1, 4, 4, u=0.5001, v=0.0)
    fwd_occ, bwd_occ = occlusion_masks(fwd, above, alpha=0.0, beta=0.5)
    assert fwd_occ.min() == 1 and bwd_occ.min() == 1


def test_occlusion_5d_layout_matches_4d():
    torch.manual_seed(3)
    fwd, bwd = torch.randn(2, 4, 2, 6, 7), torch.randn(2, 4, 2, 6, 7)
    f5, b5 = occlusion_masks(fwd, bwd)
    f4, b4 = occlusion_masks(fwd.flatten(0, 1), bwd.flatten(0, 1))
    assert f5.shape == (2, 4, 1, 6, 7)
    assert torch.equal(f5.flatten(0, 1)[:, 0], f4) and torch.equal(b5.flatten(0, 1)[:, 0], b4)
    with pytest.raises(ValueError):
        occlusion_masks(fwd, bwd[:, :3])


# ---------------------------------------------------------------------------------- resize_flow

def test_resize_flow_scales_vectors_per_axis():
    flow = constant_flow(1, 16, 20, u=4.0, v=2.0)
    half = resize_flow(flow, (8, 10))
    assert half.shape == (1, 2, 8, 10)
    assert torch.allclose(half[:, 0], torch.full((1, 8, 10), 2.0)) and torch.allclose(half[:, 1], torch.full((1, 8, 10), 1.0))
    mixed = resize_flow(flow, (32, 10))  # height x2, width /2
    assert torch.allclose(mixed[:, 0], torch.full((1, 32, 10), 2.0)) and torch.allclose(mixed[:, 1], torch.full((1, 32, 10), 4.0))
    assert torch.equal(flow, constant_flow(1, 16, 20, u=4.0, v=2.0))  # input untouched


def test_resize_flow_is_bilinear_without_corner_alignment_and_accepts_5d():
    torch.manual_seed(4)
    flow = torch.randn(2, 3, 2, 12, 16)
    out = resize_flow(flow, (6, 8))
    assert out.shape == (2, 3, 2, 6, 8)
    scaled = flow.flatten(0, 1) * torch.tensor([8 / 16, 6 / 12]).view(1, 2, 1, 1)
    ref = F.interpolate(scaled, size=(6, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(out.flatten(0, 1), ref, atol=1e-6)
    with pytest.raises(ValueError):
        resize_flow(torch.zeros(1, 3, 4, 4), (2, 2))


# -------------------------------------------------------------------------------- compute_flows

class StubFlowNet(torch.nn.Module):
    """Returns (first two channels of image1) - 10*(first channel of image2): shows who was image1/image2 and where."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, image1, image2, iters=None):
        self.calls.append((tuple(image1.shape), iters))
        return image1[:, :2] - 10 * image2[:, :1]


def make_frames(b, t, h, w):
    """Frame (video v, time i) = a position ramp + 100*v + 1000*i, so every value names its pixel and frame."""
    ramp = torch.arange(h * w, dtype=torch.float32).view(1, 1, 1, h, w).expand(b, t, 3, h, w) / (h * w)
    v = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1)
    i = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1)
    return (ramp + 100 * v + 1000 * i).clone()


@pytest.mark.parametrize("h,w", [(128, 136), (130, 133)])
def test_compute_flows_pairs_directions_and_crop(h, w):
    b, t = 2, 5
    frames = make_frames(b, t, h, w)
    stub = StubFlowNet()
    fwd, bwd = compute_flows(stub, frames)
    assert fwd.shape == bwd.shape == (b, t - 1, 2, h, w)
    assert len(stub.calls) == 1  # every pair in one batched call
    padded = (-(-h // 8) * 8, -(-w // 8) * 8)
    assert stub.calls[0][0] == (2 * b * (t - 1), 3, *padded)
    for v in range(b):
        for i in range(t - 1):
            # flows_forward = net(frame i+1, frame i); flows_backward = net(frame i, frame i+1)
            assert torch.allclose(fwd[v, i], frames[v, i + 1, :2] - 10 * frames[v, i, :1])
            assert torch.allclose(bwd[v, i], frames[v, i, :2] - 10 * frames[v, i + 1, :1])


def test_compute_flows_chunking_and_iters_are_passed_through():
    frames = make_frames(1, 5, 128, 128)
    stub = StubFlowNet()
    ref = compute_flows(StubFlowNet(), frames)
    out = compute_flows(stub, frames, iters=3, max_pairs_per_call=3)
    assert [c[0][0] for c in stub.calls] == [3, 3, 2] and all(c[1] == 3 for c in stub.calls)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


def test_compute_flows_clear_errors():
    stub = StubFlowNet()
    with pytest.raises(ValueError, match="B,T,3,H,W"):
        compute_flows(stub, torch.zeros(4, 3, 128, 128))
    with pytest.raises(ValueError, match="B,T,3,H,W"):
        compute_flows(stub, torch.zeros(1, 2, 1, 128, 128))
    with pytest.raises(ValueError, match="at least 2 frames"):
        compute_flows(stub, torch.zeros(1, 1, 3, 128, 128))
    with pytest.raises(ValueError, match="128"):
        compute_flows(stub, torch.zeros(1, 2, 3, 64, 256))
    with pytest.raises(ValueError, match="128"):
        compute_flows(stub, torch.zeros(1, 2, 3, 256, 112))
    assert not stub.calls
