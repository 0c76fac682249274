"""RAFT's 4D all-pairs correlation volume and its multi-scale lookup.

Every 1/8-resolution pixel of frame 1 is correlated with every pixel of frame 2 (dot product of
the 256-channel features divided by sqrt(256)); the frame-2 dimensions are average-pooled into a
pyramid, and each refinement step reads a (2r+1)^2 window around the current match at every level.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


class CorrelationPyramid:
    """All-pairs correlation pyramid built once per image pair, queried once per iteration.

    The volume is kept in (at least) float32, as the official code does, whatever the network's
    dtype; lookups are returned in ``out_dtype``.
    """

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4, radius: int = 4):
        self.num_levels = num_levels
        self.radius = radius
        acc = torch.promote_types(fmap1.dtype, torch.float32)
        n, dim, h, w = fmap1.shape
        f1 = fmap1.to(acc).reshape(n, dim, h * w)
        f2 = fmap2.to(acc).reshape(n, dim, h * w)
        volume = torch.matmul(f1.transpose(1, 2), f2) / (dim**0.5)
        # One single-channel "image" of frame 2 per frame-1 pixel: [N*h*w, 1, h, w].
        level = volume.reshape(n * h * w, 1, h, w)
        self.levels = [level]
        for _ in range(num_levels - 1):
            level = F.avg_pool2d(level, 2, stride=2)
            self.levels.append(level)
        self.batch, self.height, self.width = n, h, w

    def window_offsets(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """[(2r+1), (2r+1), 2] offsets added to the (x, y) centre.

        Matches the official layout: the x offset varies along the first window axis and the y offset
        along the second, so channel ``a*(2r+1)+b`` of a level samples (x + d_a, y + d_b). The update
        block's weights were trained with this order.
        """
        d = torch.arange(-self.radius, self.radius + 1, device=device, dtype=dtype)
        side = d.numel()
        return torch.stack((d.view(side, 1).expand(side, side), d.view(1, side).expand(side, side)), dim=-1)

    def lookup(self, coords: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        """Correlation features around ``coords`` [N,2,h,w] (frame-2 pixel positions at 1/8 scale).

        Returns [N, levels*(2r+1)^2, h, w]; samples outside the volume read zero.
        """
        n, _, h, w = coords.shape
        acc = self.levels[0].dtype
        side = 2 * self.radius + 1
        centres = coords.to(acc).permute(0, 2, 3, 1).reshape(n * h * w, 1, 1, 2)
        offsets = self.window_offsets(coords.device, acc).view(1, side, side, 2)
        features = []
        for i, level in enumerate(self.levels):
            points = centres / 2**i + offsets
            level_h, level_w = level.shape[-2:]
            # Pixel -> [-1, 1] with align_corners=True. A 1-px level divides by zero (NaN): callers
            # must feed inputs of at least 128 px per side.
            grid = torch.cat(
                (2 * points[..., :1] / (level_w - 1) - 1, 2 * points[..., 1:] / (level_h - 1) - 1), dim=-1
            )
            sampled = F.grid_sample(level, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            features.append(sampled.view(n, h, w, side * side))
        return torch.cat(features, dim=-1).permute(0, 3, 1, 2).contiguous().to(out_dtype)
