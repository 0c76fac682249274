"""Scaled dot-product attention that bounds the score matrix only where a kernel would build it.

Fused SDPA kernels (CUDA flash / memory-efficient, the CPU flash kernel) never hold the full
``[..., queries, keys]`` score matrix: they stream it in blocks, so memory stays bounded at any
size and one call is fastest. The math fallback does hold it: it is what MPS, some dtypes and
shapes, a disabled flash backend and the meta device run, and there the SD VAE's single-head mid
attention over a 1080p latent (136x244 = 33k tokens) needs a 4 GiB score matrix per frame, twice
(scores and probabilities). Each query row's softmax only involves that row, so splitting the
queries into chunks and attending chunk by chunk is exact: the same numbers, in bounded memory.
:func:`attention` splits only when :func:`fused_kernel` says the call would run the math fallback.

The memory estimator (``pipeline/memory/estimate.py``) runs the models on meta tensors, which carry no
device: :func:`planned_for` tells this module which device the run is planned for, and a fused
call is then counted as a fused kernel's output (no score matrix) instead of the math fallback.

Precision: attention runs in float32 whatever the weights' precision, as ComfyUI runs SD2.x (its
``attn_precision = float32`` for SD2.0/2.1 UNets). With real SD2.1 weights the attention logits
overflow half precision, which turns frames into NaN / black; the cost is float32 copies of q, k, v
and the scores. :data:`UPCAST` switches this off (lower precision, less memory, at your own risk).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os

import torch
from torch.nn import functional as F

#: Compute attention (q, k, v, scores, softmax, weighted sum) in float32 when the inputs are fp16 or
#: bf16; the result is returned in the input dtype. Default on; set the environment variable
#: ``MGLD_VSR_ATTENTION_PRECISION=native`` before start-up (or this attribute) to attend in the weights' dtype.
UPCAST = os.environ.get("MGLD_VSR_ATTENTION_PRECISION", "float32").strip().lower() != "native"

#: Upper bound, in bytes, of the score matrix of one math-fallback attention call (all batch entries
#: and heads of one query chunk). 256 MiB keeps its transient (scores + probabilities) near 0.5 GiB,
#: small next to a 12 GB card, while chunks stay large (thousands of query rows for the real models).
SCORE_CHUNK_BYTES = 256 * 2 ** 20

#: Scores are counted at no less than 4 bytes an element: the math fallback upcasts fp16/bf16 inputs
#: to float32 before forming them, so a half-precision tensor's own element size would undercount.
_MIN_SCORE_ELEMENT_BYTES = 4


def query_chunk_rows(q: torch.Tensor, k: torch.Tensor, max_score_bytes: int | None = None) -> int:
    """How many query rows one call may take so that its score matrix stays within the bound
    (at least one row; all rows when the whole matrix fits)."""
    limit = SCORE_CHUNK_BYTES if max_score_bytes is None else int(max_score_bytes)
    queries, keys = q.shape[-2], k.shape[-2]
    batch = math.prod(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    row_bytes = max(1, batch * keys * max(q.element_size(), _MIN_SCORE_ELEMENT_BYTES))
    rows = max(1, limit // row_bytes)
    if rows >= queries:
        return queries
    chunks = -(-queries // rows)
    return -(-queries // chunks)  # equal-sized chunks instead of a small remainder


_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#: The device type a meta-tensor run is planned for (``None``: unknown, counted as the math fallback).
_PLANNED_DEVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar("mgld_vsr_planned_device", default=None)


@contextlib.contextmanager
def planned_for(device_type: str | None):
    """Within the block, attention on meta tensors behaves as on ``device_type`` ("cuda", "cpu", ...)."""
    token = _PLANNED_DEVICE.set(device_type)
    try:
        yield
    finally:
        _PLANNED_DEVICE.reset(token)


def planned_device() -> str | None:
    """The device type set by the innermost :func:`planned_for`, if any."""
    return _PLANNED_DEVICE.get()


def _dense_4d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Shape rules every fused kernel shares: 4-D, the same batch and heads, one head width, unit stride last."""
    return (q.dim() == k.dim() == v.dim() == 4 and q.shape[:2] == k.shape[:2] == v.shape[:2]
            and q.shape[-1] == k.shape[-1] == v.shape[-1] and min(q.shape[-2], k.shape[-2]) > 0
            and all(t.stride(-1) == 1 for t in (q, k, v)) and q.dtype == k.dtype == v.dtype)


def _cpu_flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """The CPU flash kernel's own conditions (``sdp_utils_cpp``): it works on blocks of rows and keys
    with per-thread buffers, so its memory is bounded. It is switched by the same flag as CUDA flash."""
    return torch.backends.cuda.flash_sdp_enabled() and q.dtype in _FUSED_DTYPES and _dense_4d(q, k, v)


def _cuda_fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether SDPA would pick flash or memory-efficient attention for these CUDA tensors (asked of torch)."""
    try:
        params = torch.backends.cuda.SDPAParams(q, k, v, None, 0.0, False, False)
    except TypeError:  # torch before enable_gqa
        params = torch.backends.cuda.SDPAParams(q, k, v, None, 0.0, False)
    except AttributeError:
        return False
    return bool(torch.backends.cuda.can_use_flash_attention(params, False)
                or torch.backends.cuda.can_use_efficient_attention(params, False))


def _planned_cuda_fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """A cautious stand-in for :func:`_cuda_fused` on meta tensors: head widths up to 256 in multiples of 8,
    which both fused CUDA kernels take on every GPU torch supports; wider heads (the VAE's single
    512-channel head) are counted as the math fallback, which can only overestimate memory."""
    enabled = torch.backends.cuda.flash_sdp_enabled() or torch.backends.cuda.mem_efficient_sdp_enabled()
    return enabled and q.dtype in _FUSED_DTYPES and _dense_4d(q, k, v) and q.shape[-1] % 8 == 0 and q.shape[-1] <= 256


def fused_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether ``F.scaled_dot_product_attention(q, k, v)`` runs a kernel that never holds the score matrix."""
    device = q.device.type
    if device == "meta":
        device = _PLANNED_DEVICE.get()
        if device == "cuda":
            return _planned_cuda_fused(q, k, v)
    if device == "cuda":
        return _cuda_fused(q, k, v)
    if device == "cpu":
        return _cpu_flash(q, k, v)
    return False  # MPS and others: the math path (it materialises the scores)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, max_score_bytes: int | None = None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` for ``q [..., Lq, d]``, ``k [..., Lk, d]``, ``v [..., Lk, dv]``.

    One SDPA call where a fused kernel runs it or the score matrix fits in ``max_score_bytes``
    (default :data:`SCORE_CHUNK_BYTES`); otherwise SDPA per chunk of query rows, each written into
    one preallocated output so only one chunk's scores and result are alive at a time.
    Half-precision inputs are attended in float32 (see :data:`UPCAST`) and the result is cast back.
    """
    dtype = q.dtype
    if UPCAST and dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    if fused_kernel(q, k, v):
        if q.device.type == "meta":  # planned run: count the fused kernel's output, not the math path's scores
            out = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, False)[0]
            return out.to(dtype)
        return F.scaled_dot_product_attention(q, k, v).to(dtype)
    rows = query_chunk_rows(q, k, max_score_bytes)
    queries = q.shape[-2]
    if rows >= queries:
        return F.scaled_dot_product_attention(q, k, v).to(dtype)
    shape = torch.broadcast_shapes(q.shape[:-2], v.shape[:-2]) + (queries, v.shape[-1])
    out = q.new_empty(shape)
    for start in range(0, queries, rows):
        stop = min(start + rows, queries)
        out[..., start:stop, :] = F.scaled_dot_product_attention(q[..., start:stop, :], k, v)
    return out.to(dtype)
