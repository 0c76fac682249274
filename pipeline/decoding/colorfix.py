"""Colour correction of the decoded HR tile against its LR input (paper: AdaIN; optional wavelet).

The diffusion output can drift in colour; MGLD-VSR pulls it back to the LR frame's colours. Both
functions take ``[N, C, H, W]`` images in the VAE range [-1, 1] (any range works) and follow the
official ``scripts/wavelet_color_fix.py`` numerics operation by operation, so float32 results are
bit-identical to the reference. ``content`` is the decoded result, ``style`` the upsampled LR tile.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

#: Added to the (unbiased) variance before the square root, as in the official AdaIN.
ADAIN_EPS = 1e-5
#: Number of à-trous blur levels of the wavelet split.
WAVELET_LEVELS = 5


def _check(content: torch.Tensor, style: torch.Tensor, same_size: bool) -> None:
    if content.dim() != 4 or style.dim() != 4:
        raise ValueError(f"colour fix expects [N, C, H, W] tensors, got {tuple(content.shape)} and {tuple(style.shape)}")
    if content.shape[:2] != style.shape[:2] or (same_size and content.shape != style.shape):
        what = "shape" if same_size else "batch and channel sizes"
        raise ValueError(f"colour fix: content {tuple(content.shape)} and style {tuple(style.shape)} differ in {what}")


def channel_mean_std(x: torch.Tensor, eps: float = ADAIN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel: mean and ``sqrt(unbiased variance + eps)`` over all pixels, as ``[N, C, 1, 1]``."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    std = (flat.var(dim=2) + eps).sqrt().reshape(n, c, 1, 1)
    mean = flat.mean(dim=2).reshape(n, c, 1, 1)
    return mean, std


def adain_color_fix(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Give ``content`` the per-channel mean and std of ``style`` (adaptive instance normalisation)."""
    _check(content, style, same_size=False)
    style_mean, style_std = channel_mean_std(style)
    content_mean, content_std = channel_mean_std(content)
    return (content - content_mean) / content_std * style_std + style_mean


def wavelet_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """3x3 binomial blur ``[1,2,1]^T[1,2,1]/16`` with taps ``dilation`` pixels apart, replicate border."""
    taps = torch.tensor([0.25, 0.5, 0.25], dtype=image.dtype, device=image.device)
    kernel = (taps[:, None] * taps[None, :]).expand(image.shape[1], 1, 3, 3)
    padded = F.pad(image, (dilation,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=image.shape[1], dilation=dilation)


def wavelet_split(image: torch.Tensor, levels: int = WAVELET_LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the detail bands, final low-pass band) of an à-trous decomposition with dilations 1, 2, 4, ..."""
    high = torch.zeros_like(image)
    low = image
    for level in range(levels):
        blurred = wavelet_blur(low, 2 ** level)
        high += low - blurred
        low = blurred
    return high, low


def wavelet_color_fix(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Keep the fine detail of ``content`` and take the coarse colour layer from ``style``."""
    _check(content, style, same_size=True)
    content_high, _ = wavelet_split(content)
    _, style_low = wavelet_split(style)
    return content_high + style_low


#: The colour fixes a user can choose (the decoder nodes' ``color_fix`` widget), by name.
COLOR_FIXES = {"adain": adain_color_fix, "wavelet": wavelet_color_fix, "none": None}


def color_fix(kind: str, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``image`` with the colour fix ``kind`` against ``reference`` applied."""
    if kind not in COLOR_FIXES:
        raise ValueError(f"colour fix must be one of {sorted(COLOR_FIXES)}, got {kind!r}")
    fix = COLOR_FIXES[kind]
    return image if fix is None else fix(image, reference)
