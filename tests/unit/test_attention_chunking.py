"""Query-chunked attention (models/attention.py) and the VAE's memory-bounded blocks give the same numbers.

Attention is split only where SDPA would run its math fallback (which builds the score matrix);
the chunking tests therefore force that fallback with ``sdpa_kernel(SDPBackend.MATH)``.
"""
import copy

import pytest
import torch
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from mgld_vsr.models import attention as attention_module
from mgld_vsr.models import vae as vae_module
from mgld_vsr.models.attention import attention, fused_kernel, planned_for, query_chunk_rows
from mgld_vsr.models.blocks import CrossAttention, LegacyAttentionBlock
from mgld_vsr.models.vae import ResnetBlock, SpatialSelfAttention, VAEGroupNorm
from mgld_vsr.pipeline.memory.estimate import LiveTensorBytes


def qkv(dtype=torch.float32, lq=75, lk=75, d=16, dv=16, lead=(2, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
    return make(*lead, lq, d), make(*lead, lk, d), make(*lead, lk, dv)


@pytest.mark.parametrize("lk,dv", [(75, 16), (77, 24)])  # self-attention; cross-attention with another value width
def test_chunked_equals_one_call_fp32(lk, dv):
    q, k, v = qkv(lk=lk, dv=dv)
    bound = 6 * 2 * 3 * lk * 4  # six query rows of all 2x3 heads per chunk
    rows = query_chunk_rows(q, k, bound)
    assert rows < q.shape[-2] and -(-q.shape[-2] // rows) >= 10  # really many chunks
    with sdpa_kernel(SDPBackend.MATH):
        out = attention(q, k, v, max_score_bytes=bound)
    assert out.shape == (2, 3, 75, dv)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), rtol=1e-6, atol=1e-6)


def test_chunked_equals_one_call_bf16_and_one_row_chunks():
    q, k, v = qkv(torch.bfloat16)
    assert query_chunk_rows(q, k, 1) == 1
    with sdpa_kernel(SDPBackend.MATH):
        out = attention(q, k, v, max_score_bytes=1)
    assert out.dtype == torch.bfloat16
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(out.float(), reference, rtol=2e-2, atol=2e-2)


#: SDPA itself, taken before any test puts a spy in its place.
REAL_SDPA = F.scaled_dot_product_attention


@pytest.fixture
def sdpa_calls(monkeypatch):
    """The query shapes of every SDPA call the attention module makes (a spy: results unchanged)."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return REAL_SDPA(*args, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", counting)
    return calls


def test_below_the_bound_is_one_plain_sdpa_call(sdpa_calls):
    q, k, v = qkv()
    calls = sdpa_calls
    out = attention(q, k, v)  # 2*3*75*75*4 bytes, far below SCORE_CHUNK_BYTES
    assert len(calls) == 1 and torch.equal(out, REAL_SDPA(q, k, v))
    calls.clear()
    with sdpa_kernel(SDPBackend.MATH):
        attention(q, k, v, max_score_bytes=2 * 3 * 75 * 4 * 25)  # 25 rows a chunk: 3 calls of equal size
    assert [s[-2] for s in calls] == [25, 25, 25]


def test_a_fused_kernel_is_never_split(sdpa_calls):
    """The CPU flash kernel streams the scores in blocks: one call, whatever the bound, same numbers."""
    q, k, v = qkv()
    assert fused_kernel(q, k, v)
    calls = sdpa_calls
    out = attention(q, k, v, max_score_bytes=1)
    assert len(calls) == 1 and torch.equal(out, REAL_SDPA(q, k, v))
    calls.clear()
    attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), max_score_bytes=1)  # upcast to float32, still fused
    assert len(calls) == 1


def test_which_calls_count_as_fused():
    q, k, v = qkv()
    with sdpa_kernel(SDPBackend.MATH):
        assert not fused_kernel(q, k, v)  # flash switched off: the math fallback builds the scores
    assert not fused_kernel(q[0], k[0], v[0])  # 3-D: the CPU flash kernel takes 4-D only
    assert not fused_kernel(q, k, v.transpose(-1, -2).contiguous().transpose(-1, -2))  # strided last dim
    assert not fused_kernel(*qkv(dv=24))  # value width differs from the head width
    assert not fused_kernel(q.double().to(torch.int64), k.to(torch.int64), v.to(torch.int64))
    m = torch.empty(2, 5, 4096, 64, device="meta")
    assert not fused_kernel(m, m, m)  # a meta run planned for no device counts the worst case
    for device, expected in (("cpu", True), ("cuda", True), ("mps", False)):
        with planned_for(device):
            assert fused_kernel(m, m, m) is expected, device
    wide = torch.empty(1, 1, 4096, 512, device="meta")  # the VAE's single 512-channel head
    with planned_for("cuda"):
        assert not fused_kernel(wide, wide, wide)  # not assumed fused on CUDA: counted as the math path
    with planned_for("cpu"):
        assert fused_kernel(wide, wide, wide)  # the CPU flash kernel takes any head width


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_planned_fused_call_counts_no_score_matrix(device):
    q, k, v = (torch.empty(1, 2, 4096, 64, device="meta") for _ in range(3))
    inputs_and_output = 4 * q.numel() * 4
    scores = 2 * 4096 * 4096 * 4
    peaks = {}
    for plan in (device, "mps"):
        with planned_for(plan), LiveTensorBytes() as mem:
            mem.track(q, k, v)
            out = attention(q, k, v)
        assert out.shape == q.shape
        peaks[plan] = mem.peak
    assert peaks[device] <= inputs_and_output + 2 * 4096 * 4 * 2  # output + log-sum-exp, nothing quadratic
    assert peaks["mps"] >= inputs_and_output + min(scores, attention_module.SCORE_CHUNK_BYTES)


def test_half_scores_are_bounded_as_float32():
    """The math fallback forms half-precision scores in float32, so chunks are sized at 4 bytes an element."""
    q, k, _ = qkv(torch.float16, lq=100, lk=100, lead=(1, 1))
    assert query_chunk_rows(q, k, 100 * 4 * 10) == 10


def test_chunking_bounds_the_counted_memory():
    q, k, v = (torch.empty(1, 1, 2048, 64, device="meta") for _ in range(3))
    peaks = []
    for bound in (None, 2 ** 20):
        with LiveTensorBytes() as mem:
            mem.track(q, k, v)
            attention(q, k, v, max_score_bytes=bound)
        peaks.append(mem.peak)
    inputs_and_output = 4 * 2048 * 64 * 4
    assert peaks[0] >= inputs_and_output + 2 * 2048 * 2048 * 4  # the whole score matrix, twice (scores, softmax)
    assert peaks[1] < inputs_and_output + 4 * 2 ** 20  # a few chunk-sized temporaries at most


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 2e-2)])
def test_attention_modules_are_unchanged_by_chunking(monkeypatch, dtype, tol):
    torch.manual_seed(0)
    cases = [
        (SpatialSelfAttention(32), lambda: (torch.randn(2, 32, 9, 11),)),
        (CrossAttention(32, 2, 16), lambda: (torch.randn(2, 60, 32),)),
        (CrossAttention(32, 2, 16, context_dim=24), lambda: (torch.randn(2, 60, 32), torch.randn(2, 77, 24))),
        (LegacyAttentionBlock(32, 4), lambda: (torch.randn(2, 32, 8, 10),)),
    ]
    for module, make in cases:
        module = module.to(dtype).eval()
        inputs = [t.to(dtype) for t in make()]
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            whole = module(*inputs)
            monkeypatch.setattr(attention_module, "SCORE_CHUNK_BYTES", 1)  # one query row per call
            chunked = module(*inputs)
            monkeypatch.undo()
            assert chunked.shape == whole.shape
        torch.testing.assert_close(chunked.float(), whole.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_group_norm_by_slices_of_groups_is_exact(monkeypatch, dtype):
    torch.manual_seed(1)
    norm = VAEGroupNorm(64)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    norm = norm.to(dtype)
    x = (torch.randn(3, 64, 12, 10) * 3 + 1).to(dtype)
    whole = norm(x)
    monkeypatch.setattr(vae_module, "NORM_CHUNK_BYTES", 3 * 2 * 12 * 10 * 4 * 5)  # 5 groups a slice: 7 slices
    sliced = norm(x)
    assert torch.equal(sliced, whole)
    reference = F.group_norm(x.float(), 32, norm.weight.float(), norm.bias.float(), 1e-6).to(dtype)
    assert torch.equal(whole, reference)


@pytest.mark.parametrize("widths", [(32, 32), (32, 64)])
def test_resnet_block_matches_the_plain_formula(widths):
    torch.manual_seed(2)
    block = ResnetBlock(*widths).eval()
    x = torch.randn(2, widths[0], 10, 12)
    with torch.no_grad():
        h = block.conv1(F.silu(block.norm1(x)))
        h = block.conv2(F.silu(block.norm2(h)))
        skip = block.nin_shortcut
        expected = (x if skip is None else skip(x)) + h
        assert torch.equal(block(x), expected)
    # gradients still flow through the in-place steps
    x.requires_grad_(True)
    copy.deepcopy(block)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_resnet_block_keeps_three_activations_alive():
    """At full resolution the VAE's memory is set by its ResnetBlocks: at most input, one normalised
    copy and one conv output (plus a bounded group-norm slice), not four or five activations."""
    block = ResnetBlock(64, 64).to(torch.float16).eval()
    meta = copy.deepcopy(block).to("meta")
    x = torch.empty(2, 64, 128, 128, dtype=torch.float16, device="meta")
    unit = x.numel() * 2
    with torch.no_grad(), LiveTensorBytes() as mem:
        mem.track(x)
        meta(x)
    assert 3 * unit <= mem.peak <= 3 * unit + 2 * vae_module.NORM_CHUNK_BYTES
