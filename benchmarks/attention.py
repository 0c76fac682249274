#!/usr/bin/env python3
"""Time of the UNet's largest attention calls, one fused call against query chunks (issue #16 item 2).

    python benchmarks/attention.py [--repeats 3]

Shapes are the full-size SD2.1 UNet's level-0 spatial self-attention of one 5-frame window tile
(5 frames x 5 heads x tokens x 64; 4096 tokens at a 64-px latent tile, 9216 at 96 px), in float32
as the pack attends. ``split`` is what ``models/attention.py`` did before: query chunks whose score
matrix stays under ``SCORE_CHUNK_BYTES`` even where a fused kernel runs (7 and 32 calls); ``one call``
is what it does now where ``fused_kernel`` holds (here, the CPU flash kernel). Both give the same
numbers (tests/test_attention_chunking.py); this measures the time the split cost.
"""
import argparse
import time

from _common import machine

import torch
from torch.nn import functional as F

from mgld_vsr.models.attention import attention, fused_kernel, query_chunk_rows


def split(q, k, v):
    rows = query_chunk_rows(q, k)
    out = torch.empty_like(q)
    for start in range(0, q.shape[-2], rows):
        out[..., start:start + rows, :] = F.scaled_dot_product_attention(q[..., start:start + rows, :], k, v)
    return out


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{'latent tile':<12}{'shape':<22}{'calls split':>12}{'split s':>9}{'one call s':>11}{'split/one':>10}")
    g = torch.Generator().manual_seed(0)
    for tile in (64, 96):
        shape = (5, 5, tile * tile, 64)
        q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
        assert fused_kernel(q, k, v)
        rows = query_chunk_rows(q, k)
        calls = -(-shape[2] // rows)
        with torch.no_grad():
            torch.testing.assert_close(attention(q, k, v), split(q, k, v), rtol=1e-5, atol=1e-5)
            t_split = best(lambda: split(q, k, v), args.repeats)
            t_one = best(lambda: attention(q, k, v), args.repeats)
        print(f"{tile:<12}{str(list(shape)):<22}{calls:>12}{t_split:>9.3f}{t_one:>11.3f}{t_split / t_one:>9.2f}x")


if __name__ == "__main__":
    main()
