"""Temporal layers that MGLD inflates into the SD2.1 UNet and the CFW video decoder.

Both operate on a 4-D video-major batch ``[(b t), c, h, w]`` and blend their output with the
input through a learned scalar ``temporal_alpha`` used raw (no sigmoid), as the official model does.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .attention import attention

#: Frames per clip the temporal layers of the UNet and of the video VAE were trained on (the official window).
TRAINED_FRAMES = 5


class SpatialTemporalConv(nn.Module):
    """Kernel-(3,1,1) convolution along time; zero padding at both ends of the window.

    Parameters are the official ``Conv3d`` ones, but it is evaluated as three 1x1 convolutions
    whose outputs are shifted in time: no 5-D copy, and results independent of how many windows
    share a batch (the 3-D kernel's are not).
    """

    def __init__(self, channels: int, num_frames: int = TRAINED_FRAMES):
        super().__init__()
        self.num_frames = num_frames
        self.temporal_conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        self.temporal_alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        t = num_frames or self.num_frames
        weight = self.temporal_conv.weight[..., 0, 0]  # [out, in, 3]: taps for frames t-1, t, t+1
        mixed = F.conv2d(x, weight[..., 1, None, None], self.temporal_conv.bias)
        if t > 1:
            mixed = mixed.unflatten(0, (-1, t))
            earlier = F.conv2d(x, weight[..., 0, None, None]).unflatten(0, (-1, t))
            mixed[:, 1:] += earlier[:, :-1]
            del earlier
            later = F.conv2d(x, weight[..., 2, None, None]).unflatten(0, (-1, t))
            mixed[:, :-1] += later[:, 1:]
            del later
            mixed = mixed.flatten(0, 1)
        return self.temporal_alpha * mixed + (1 - self.temporal_alpha) * x


class TemporalAttention(nn.Module):
    """Self-attention across the T frames at every pixel (heads of 64 channels)."""

    def __init__(self, channels: int, num_frames: int = TRAINED_FRAMES, head_channels: int = 64):
        super().__init__()
        self.num_frames = num_frames
        self.heads = max(channels // head_channels, 1)
        self.norm = nn.LayerNorm(channels)
        self.temporal_attn = _TemporalSelfAttention(channels, self.heads)
        self.temporal_alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        _, _, h, w = x.shape
        tokens = rearrange(x, "(b t) c h w -> (b h w) t c", t=num_frames or self.num_frames)
        attended = self.temporal_attn(self.norm(tokens))
        attended = rearrange(attended, "(b h w) t c -> (b t) c h w", h=h, w=w)
        return self.temporal_alpha * attended + (1 - self.temporal_alpha) * x


class _TemporalSelfAttention(nn.Module):
    """Key names ``to_q/to_k/to_v/to_out.0`` as in the checkpoint."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.to_out = nn.Sequential(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (rearrange(f(x), "n t (h d) -> n h t d", h=self.heads) for f in (self.to_q, self.to_k, self.to_v))
        out = attention(q, k, v)  # in float32 like the spatial attention (see models/attention.py)
        return self.to_out(rearrange(out, "n h t d -> n t (h d)"))


#: Layer types whose forward takes the window length.
TEMPORAL = (SpatialTemporalConv, TemporalAttention)
