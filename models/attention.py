"""Scaled dot-product attention with a bounded score matrix, for every large attention of the pack.

Fused SDPA kernels (CUDA flash/memory-efficient, the CPU flash kernel) never hold the full
``[..., queries, keys]`` score matrix, but the math fallback does: it is what MPS, older GPUs,
some dtypes and the meta device run, and there the SD VAE's single-head mid attention over a
1080p latent (136x244 = 33k tokens) needs a 4 GiB score matrix per frame, twice (scores and
probabilities). Each query row's softmax only involves that row, so splitting the queries into
chunks and attending chunk by chunk is exact: the same numbers, in bounded memory.

Precision: attention runs in float32 whatever the weights' precision, as ComfyUI runs SD2.x (its
``attn_precision = float32`` for SD2.0/2.1 UNets). With real SD2.1 weights the attention logits
overflow half precision, which turns frames into NaN / black; the cost is float32 copies of q, k, v
and the scores. :data:`UPCAST` switches this off (lower precision, less memory, at your own risk).
"""
from __future__ import annotations

import math
import os

import torch
from torch.nn import functional as F

#: Compute attention (q, k, v, scores, softmax, weighted sum) in float32 when the inputs are fp16 or
#: bf16; the result is returned in the input dtype. Default on; set the environment variable
#: ``MGLD_VSR_ATTENTION_PRECISION=native`` before start-up (or this attribute) to attend in the weights' dtype.
UPCAST = os.environ.get("MGLD_VSR_ATTENTION_PRECISION", "float32").strip().lower() != "native"

#: Upper bound, in bytes, of the score matrix of one attention call (all batch entries and heads of
#: one query chunk). 256 MiB keeps the transient of the math fallback (scores + probabilities) near
#: 0.5 GiB, small next to a 12 GB card, while chunks stay large enough (thousands of query rows for
#: the real models) that splitting costs no measurable speed on fused kernels.
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


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, max_score_bytes: int | None = None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` for ``q [..., Lq, d]``, ``k [..., Lk, d]``, ``v [..., Lk, dv]``.

    One plain SDPA call when the score matrix fits in ``max_score_bytes`` (default
    :data:`SCORE_CHUNK_BYTES`); otherwise SDPA per chunk of query rows, each written into one
    preallocated output so only one chunk's scores and result are alive at a time. Half-precision
    inputs are attended in float32 (see :data:`UPCAST`) and the result is cast back.
    """
    dtype = q.dtype
    if UPCAST and dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
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
