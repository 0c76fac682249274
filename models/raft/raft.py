"""RAFT optical flow ('normal' size, raft-things.pth) as MGLD-VSR uses it (official ``RAFT_SR``).

MGLD-VSR estimates flows between neighbouring low-resolution frames with RAFT and uses them for the
motion-guidance loss and the occlusion masks. Differences from the original RAFT evaluation code
that change numbers (README 3.6): the images go in as [0,1] RGB *without* the ``2*I-1``
normalisation, 10 refinement iterations are run, and inputs are replicate-padded to a multiple of 8.
Only the final iteration's flow is upsampled (convex 8x) and returned.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from .corr import CorrelationPyramid
from .extractor import BasicEncoder
from .update import UpdateBlock

#: Padded input sides below this make the coarsest correlation level 1 px wide (NaN lookups).
MIN_INPUT_SIDE = 128


def sintel_padding(height: int, width: int, multiple: int = 8) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` padding to the next multiple: split evenly, the odd pixel at right/bottom."""
    pad_h = -height % multiple
    pad_w = -width % multiple
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def convex_upsample(flow: torch.Tensor, logits: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Upsample a 1/``factor`` flow [N,2,h,w] to full resolution.

    Every full-resolution pixel is a convex combination (softmax over ``logits``) of the 3x3
    coarse neighbourhood of its parent pixel, with the vectors multiplied by ``factor``.
    ``logits`` [N, 9*factor^2, h, w] is ordered (neighbour, sub-row, sub-column).
    """
    n, _, h, w = flow.shape
    weights = torch.softmax(logits.view(n, 1, 9, factor, factor, h, w), dim=2)
    neighbours = F.unfold(factor * flow, kernel_size=3, padding=1).view(n, 2, 9, 1, 1, h, w)
    fine = (weights * neighbours).sum(dim=2)  # [N, 2, sub-row, sub-col, h, w]
    return fine.permute(0, 1, 4, 2, 5, 3).reshape(n, 2, h * factor, w * factor)


@dataclasses.dataclass
class RAFTConfig:
    """Architecture of RAFT 'normal' (the only variant MGLD-VSR uses) plus the iteration count.

    The architecture is fixed; :meth:`from_state_dict` only checks that a state dict is this
    network. Hints read: ``iters`` (refinement iterations, official default 10).
    """

    feature_dim: int = 256
    hidden_dim: int = 128
    context_dim: int = 128
    corr_levels: int = 4
    corr_radius: int = 4
    iters: int = 10

    @classmethod
    def official(cls) -> "RAFTConfig":
        return cls()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], hints: dict | None = None) -> "RAFTConfig":
        hints = hints or {}
        config = cls(iters=int(hints.get("iters", 10)))
        if config.iters < 1:
            raise ValueError(f"RAFT: hint iters must be >= 1, got {config.iters}")
        prefixed = [p for p in ("module.", "flownet_model.") if any(k.startswith(p) for k in sd)]
        if prefixed and not any(k.startswith("fnet.") for k in sd):
            raise ValueError(f"RAFT state dict keys still carry the prefix {prefixed[0]!r}; strip it before building")
        if "cnet.conv2.weight" in sd and sd["cnet.conv2.weight"].shape[0] != config.hidden_dim + config.context_dim:
            raise ValueError(
                f"RAFT: cnet.conv2.weight has {sd['cnet.conv2.weight'].shape[0]} output channels, expected "
                f"{config.hidden_dim + config.context_dim}; only the 'normal' RAFT (raft-things.pth) is supported, "
                f"not RAFT-small"
            )
        return config


class RAFT(nn.Module):
    """RAFT: feature/context encoders, all-pairs correlation pyramid, GRU refinement, convex upsampling.

    ``forward(image1, image2)`` returns the flow from ``image1`` to ``image2`` on image1's grid,
    [N,2,H,W] in pixels, in ``image1.dtype``. Images are [N,3,H,W] RGB in [0,1].
    """

    def __init__(self, config: RAFTConfig):
        super().__init__()
        self.config = config
        self.fnet = BasicEncoder(config.feature_dim, norm="instance")
        self.cnet = BasicEncoder(config.hidden_dim + config.context_dim, norm="batch")
        corr_channels = config.corr_levels * (2 * config.corr_radius + 1) ** 2
        self.update_block = UpdateBlock(corr_channels, config.hidden_dim, config.context_dim)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int | None = None) -> torch.Tensor:
        if image1.shape != image2.shape or image1.dim() != 4 or image1.shape[1] != 3:
            raise ValueError(f"RAFT expects two RGB batches [N,3,H,W] of equal shape, got {tuple(image1.shape)} and {tuple(image2.shape)}")
        iters = self.config.iters if iters is None else int(iters)
        if iters < 1:
            raise ValueError(f"RAFT needs at least one iteration, got iters={iters}")
        h, w = image1.shape[-2:]
        left, right, top, bottom = sintel_padding(h, w)
        if min(h + top + bottom, w + left + right) < MIN_INPUT_SIDE:
            raise ValueError(
                f"RAFT input {h}x{w} is too small: at least {MIN_INPUT_SIDE} px per side (after padding to a multiple "
                f"of 8) are needed, otherwise the coarsest correlation level is 1 px wide and the flow is NaN"
            )
        if left or right or top or bottom:
            image1 = F.pad(image1, (left, right, top, bottom), mode="replicate")
            image2 = F.pad(image2, (left, right, top, bottom), mode="replicate")
        flow = self._estimate(image1.contiguous(), image2.contiguous(), iters)
        return flow[:, :, top : top + h, left : left + w]

    def _estimate(self, image1: torch.Tensor, image2: torch.Tensor, iters: int) -> torch.Tensor:
        """Flow for inputs whose sides are multiples of 8."""
        dtype = image1.dtype
        n = image1.shape[0]
        # Both frames through fnet in one batch (instance norm is per sample, so this is exact).
        fmap1, fmap2 = self.fnet(torch.cat((image1, image2), dim=0)).split(n, dim=0)
        pyramid = CorrelationPyramid(fmap1, fmap2, self.config.corr_levels, self.config.corr_radius)

        context = self.cnet(image1)
        hidden, context = context.split((self.config.hidden_dim, self.config.context_dim), dim=1)
        hidden, context = torch.tanh(hidden), torch.relu(context)

        # Matches are tracked as absolute 1/8-scale coordinates (x, y), in at least float32 like the
        # official code, so that repeated small updates do not lose precision in half-precision runs.
        acc = pyramid.levels[0].dtype
        fh, fw = fmap1.shape[-2:]
        xs = torch.arange(fw, device=image1.device, dtype=acc).view(1, 1, fw).expand(n, fh, fw)
        ys = torch.arange(fh, device=image1.device, dtype=acc).view(1, fh, 1).expand(n, fh, fw)
        coords0 = torch.stack((xs, ys), dim=1)
        coords1 = coords0.clone()

        logits = None
        for step in range(iters):
            corr = pyramid.lookup(coords1, dtype)
            flow = (coords1 - coords0).to(dtype)
            hidden, logits, delta = self.update_block(hidden, context, corr, flow, with_mask=step == iters - 1)
            coords1 = coords1 + delta.to(acc)
        return convex_upsample(coords1 - coords0, logits.to(acc)).to(dtype)
