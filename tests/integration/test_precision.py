"""Numerics safe for real weights: float32 attention, native-only bf16, fp32 VAEs on MPS, NaN/inf stage checks."""
import copy

import pytest
import torch
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import mgld_vsr.models.attention as attention_module
from stub_models import stub_models
from weights_index import weights_file_with_prefix
from mgld_vsr.models.attention import attention
from mgld_vsr.models.bundle import load_diffusion
from mgld_vsr.nodes.common import native_bf16, weight_dtype
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.field import MotionField, clip_flows
from mgld_vsr.pipeline.numerics import NonFiniteError, check_finite
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, VideoLatents, sample_video
from mgld_vsr.pipeline.decoding.cfw import decode_video


def _cpu_supports_fp16_convolution() -> bool:
    try:
        F.conv2d(torch.ones(1, 1, 4, 4, dtype=torch.float16), torch.ones(1, 1, 3, 3, dtype=torch.float16))
        F.group_norm(torch.ones(1, 4, 4, 4, dtype=torch.float16), 2)
        return True
    except (RuntimeError, NotImplementedError):
        return False


HALF = [torch.bfloat16] + ([torch.float16] if _cpu_supports_fp16_convolution() else [])


class SDPASpy:
    """Records the dtype of every scaled_dot_product_attention call, then runs the real one."""

    def __init__(self, monkeypatch):
        self.dtypes = []
        self.real = F.scaled_dot_product_attention
        monkeypatch.setattr(F, "scaled_dot_product_attention", self)

    def __call__(self, q, k, v, *args, **kwargs):
        self.dtypes.append(q.dtype)
        return self.real(q, k, v, *args, **kwargs)


@pytest.fixture(scope="module")
def weights(golden_dir):
    return golden_dir / "weights"


def test_attention_computes_in_float32_and_returns_the_input_dtype():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 16, generator=g) for _ in range(3))
    for dtype in (torch.bfloat16, torch.float16):
        q16, k16, v16 = q.to(dtype), k.to(dtype), v.to(dtype)
        expected = F.scaled_dot_product_attention(q16.float(), k16.float(), v16.float()).to(dtype)
        out = attention(q16, k16, v16)
        assert out.dtype == dtype and torch.equal(out, expected)
        # the query-chunked path too (the math fallback, where attention is split)
        with sdpa_kernel(SDPBackend.MATH):
            chunked = attention(q16, k16, v16, max_score_bytes=2 * 3 * 40 * 4 * 7)
            assert chunked.dtype == dtype
            assert torch.equal(chunked, F.scaled_dot_product_attention(q16.float(), k16.float(), v16.float()).to(dtype))


def test_logits_beyond_the_half_precision_range_stay_finite():
    """Scores of 1e5 do not fit in fp16 (max 65504): float32 attention still gives the right answer."""
    q = torch.full((1, 1, 4, 64), 40.0)
    k = torch.full((1, 1, 4, 64), 40.0)  # q.k / sqrt(64) = 12800 ... raw q.k = 102400
    v = torch.arange(4 * 8, dtype=torch.float32).view(1, 1, 4, 8)
    out = attention(q.half(), k.half(), v.half())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), v.mean(dim=2, keepdim=True).expand_as(out), rtol=1e-3, atol=1e-2)


def test_the_documented_switch_attends_in_the_weights_dtype(monkeypatch):
    spy = SDPASpy(monkeypatch)
    q = torch.randn(1, 2, 8, 16).bfloat16()
    attention(q, q, q)
    monkeypatch.setattr(attention_module, "UPCAST", False)
    attention(q, q, q)
    assert spy.dtypes == [torch.float32, torch.bfloat16]


def _copies(models, names, dtype):
    return {name: copy.deepcopy(models[name]).to(dtype) for name in names}


@pytest.mark.parametrize("dtype", HALF)
def test_unet_and_lr_encoder_attend_in_float32_and_stay_finite(monkeypatch, tiny_models, dtype):
    ref = tiny_models
    half = _copies(tiny_models, ("unet", "lr_encoder"), dtype)
    g = torch.Generator().manual_seed(1)
    x, lr = torch.randn(5, 4, 8, 8, generator=g), torch.randn(5, 4, 8, 8, generator=g)
    t, ctx = torch.tensor([500]), torch.randn(1, 77, ref["unet"].config.context_dim, generator=g)
    with torch.no_grad():
        expected = ref["unet"](x, t, ctx, ref["lr_encoder"](lr, t))
        spy = SDPASpy(monkeypatch)
        out = half["unet"](x.to(dtype), t, ctx.to(dtype), half["lr_encoder"](lr.to(dtype), t))
    # spatial self/cross attention, temporal attention and the LR encoder's attention all ran, all in fp32
    assert len(spy.dtypes) >= 4 and set(spy.dtypes) == {torch.float32}
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert float((out.float() - expected).abs().max() / expected.abs().max()) < 0.25  # 8-bit mantissas (bf16)


@pytest.mark.parametrize("dtype", HALF)
def test_vaes_attend_in_float32_and_stay_finite(monkeypatch, tiny_models, dtype):
    half = _copies(tiny_models, ("first_stage", "video_vae"), dtype)
    first_stage, video_vae = half["first_stage"], half["video_vae"]
    lr = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    spy = SDPASpy(monkeypatch)
    with torch.no_grad():
        latent = first_stage.encode(lr.to(dtype)).mean
        _, features = video_vae.encode(lr.to(dtype))
        out = video_vae.decode(latent, features, 1.0)
    assert spy.dtypes and set(spy.dtypes) == {torch.float32}
    assert latent.dtype == dtype and torch.isfinite(latent).all()
    assert out.dtype == dtype and torch.isfinite(out).all()


def _fake_cuda(monkeypatch, major):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation counts here: not used


@pytest.mark.parametrize("major, expected", [(7, torch.float16), (8, torch.bfloat16), (9, torch.bfloat16)])
def test_auto_takes_bf16_only_where_cuda_computes_it_natively(monkeypatch, major, expected):
    _fake_cuda(monkeypatch, major)
    cuda = torch.device("cuda")
    assert native_bf16(cuda) == (major >= 8)
    assert weight_dtype("auto", cuda) == expected
    assert weight_dtype("auto", cuda, part="vae") == expected


def test_auto_on_mps_keeps_the_vaes_in_fp32_and_cpu_in_fp32():
    mps = torch.device("mps")
    assert weight_dtype("auto", mps) == torch.float16
    assert weight_dtype("auto", mps, part="vae") == torch.float32
    assert weight_dtype("auto", torch.device("cpu"), part="vae") == torch.float32
    assert weight_dtype("auto", torch.device("cpu")) == torch.float32


def test_explicit_precisions_are_obeyed_and_bad_ones_refused():
    for choice, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        assert weight_dtype(choice, torch.device("mps"), part="vae") == dtype
    with pytest.raises(ValueError, match="precision must be one of"):
        weight_dtype("fp8", torch.device("cpu"))


def test_diffusion_loader_can_keep_the_vae_encoder_in_fp32(weights):
    bundle = load_diffusion(str(weights_file_with_prefix(weights, "model.diffusion_model.")), dtype=torch.float16,
                            first_stage_dtype=torch.float32)
    assert next(bundle.unet.parameters()).dtype == torch.float16
    assert next(bundle.lr_encoder.parameters()).dtype == torch.float16
    assert next(bundle.first_stage.parameters()).dtype == torch.float32


def test_check_finite_names_stage_precision_and_remedy():
    good = torch.ones(3)
    assert check_finite(good, "x", torch.float16, "L") is good
    bad = torch.tensor([1.0, float("nan")])
    with pytest.raises(NonFiniteError, match=r"^CFW decode produced NaN values in fp16: set precision to bf16 in L"):
        check_finite(bad, "CFW decode", torch.float16, "L")
    with pytest.raises(NonFiniteError, match=r"infinite values in bf16: set precision to fp32 in L$"):
        check_finite(torch.tensor([float("inf")]), "s", torch.bfloat16, "L")
    with pytest.raises(NonFiniteError, match="already ran in fp32"):
        check_finite(bad, "s", torch.float32, "L")
    assert check_finite(torch.empty(3, device="meta"), "s", torch.float16, "L").is_meta


class _Overflowing(torch.nn.Module):
    """Wraps a stub network and turns its output into inf, as an fp16 overflow would."""

    def __init__(self, inner, dtype):
        super().__init__()
        self.inner = inner
        self.anchor = torch.nn.Parameter(torch.zeros((), dtype=dtype))

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs) * float("inf")


def test_sampling_stops_at_the_first_non_finite_step_with_a_one_line_message():
    frames = torch.full((5, 64, 64, 3), 128, dtype=torch.uint8)
    plan = LRPlan.create(64, 64, 1, min_short_side=64)
    models = stub_models()
    models["unet"] = _Overflowing(models["unet"], torch.bfloat16)
    with pytest.raises(NonFiniteError) as info:
        sample_video(frames, MotionField.still(5, plan.latent_size), plan, **models, context=torch.zeros(1, 77, 4),
                     options=SamplingOptions(steps=3, tile=8))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("sampling step 1 of 3 produced") and "in bf16: set precision to fp32 in MGLD Diffusion" in message


def test_encode_stage_is_checked():
    class InfEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float16))

        def encode(self, x):
            return stub_models()["first_stage"].encode(x.float() * float("inf"))

    frames = torch.full((2, 64, 64, 3), 128, dtype=torch.uint8)
    plan = LRPlan.create(64, 64, 1, min_short_side=64)
    models = {**stub_models(), "first_stage": InfEncoder()}
    with pytest.raises(NonFiniteError, match=r"^VAE encode \(sampler\) produced .* in fp16: set precision to bf16"):
        sample_video(frames, MotionField.still(2, plan.latent_size), plan, **models, context=torch.zeros(1, 77, 4),
                     options=SamplingOptions(steps=1, tile=8))


def test_decode_stage_is_checked():
    class NaNDecoder(torch.nn.Module):
        num_frames = 5

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.bfloat16))

        def encode(self, lr):
            return None, [lr]

        def decode(self, z, features, w):
            return features[0] * float("nan")

    plan = LRPlan.create(64, 64, 1, min_short_side=64)
    frames = torch.full((3, 64, 64, 3), 128, dtype=torch.uint8)
    latents = VideoLatents(torch.zeros(3, 4, *plan.latent_size), plan, torch.zeros(2, dtype=torch.bool))
    with pytest.raises(NonFiniteError, match=r"^CFW decode produced NaN values in bf16: set precision to fp32 in MGLD Video VAE"):
        decode_video(latents, frames, NaNDecoder())


def test_flow_stage_is_checked():
    class NaNRAFT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, a, b, iters=None):
            return torch.full((a.shape[0], 2, *a.shape[-2:]), float("nan"))

    frames = torch.full((3, 128, 128, 3), 128, dtype=torch.uint8)
    with pytest.raises(NonFiniteError, match=r"^optical flow \(RAFT\) produced NaN values in fp32"):
        clip_flows(NaNRAFT(), frames, LRPlan.create(128, 128, 4))
