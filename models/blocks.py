"""Building blocks shared by the MGLD UNet and the time-aware LR encoder (SD2.1 / openaimodel style).

Parameter names follow the official checkpoints (``in_layers``, ``emb_layers``, ``out_layers``,
``skip_connection``, ``op``, ``conv``, ``to_q`` ...), so official state dicts load without renaming.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .attention import attention


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32) evaluated in float32 and cast back: half-precision statistics drift otherwise."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(32, channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos, sin]`` (cosine first, as the official code orders it)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimeEmbedding(nn.Sequential):
    """``time_embed.0`` / ``time_embed.2``: Linear -> SiLU -> Linear on the sinusoidal embedding."""

    def __init__(self, model_channels: int):
        super().__init__(nn.Linear(model_channels, 4 * model_channels), nn.SiLU(), nn.Linear(4 * model_channels, 4 * model_channels))
        self.model_channels = model_channels

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(timesteps, self.model_channels)
        return super().forward(emb.to(self[0].weight.dtype))


class SPADE(nn.Module):
    """Spatially-adaptive modulation of a feature map by the LR-encoder feature of the same width.

    The official "param_free_norm" is an affine GroupNorm(32); the hidden width 128 is fixed.
    """

    hidden = 128

    def __init__(self, channels: int, cond_channels: int):
        super().__init__()
        self.param_free_norm = GroupNorm32(channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(cond_channels, self.hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(self.hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(self.hidden, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, struct_cond: dict[str, torch.Tensor]) -> torch.Tensor:
        key = str(h.shape[-1])
        if key not in struct_cond:
            raise ValueError(f"no LR-encoder feature of width {key} (have {sorted(struct_cond, key=int)}); "
                             "the UNet and LR-encoder inputs must have the same size")
        cond = struct_cond[key].to(h.dtype)
        actv = self.mlp_shared(cond)
        return self.param_free_norm(h) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class ResBlock(nn.Module):
    """Timestep-conditioned residual block; with ``cond_channels`` it is the UNet's ResBlockDual (+SPADE)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, cond_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        self.spade = SPADE(out_channels, cond_channels) if cond_channels else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, struct_cond: dict | None = None) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[..., None, None]
        h = self.out_layers(h)
        if self.spade is not None:
            h = self.spade(h, struct_cond)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class CrossAttention(nn.Module):
    """Multi-head attention (self when ``context`` is None); ``to_out.0`` is the only biased projection."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = attention(q, k, v)  # query-chunked for large tiles (bounded score matrix)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, head_dim)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, head_dim, context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """SD2.x transformer with linear in/out projections (``use_linear_in_transformer``)."""

    def __init__(self, channels: int, heads: int, head_dim: int, context_dim: int, depth: int = 1):
        super().__init__()
        inner = heads * head_dim
        self.norm = GroupNorm32(channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(BasicTransformerBlock(inner, heads, head_dim, context_dim) for _ in range(depth))
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if context.shape[0] != n:
            # One context row per video; the batch holds each video's frames consecutively.
            if n % context.shape[0]:
                raise ValueError(f"context batch {context.shape[0]} does not divide the frame batch {n}")
            context = context.repeat_interleave(n // context.shape[0], dim=0)
        context = context.to(x.dtype)
        tokens = self.proj_in(rearrange(self.norm(x), "b c h w -> b (h w) c"))
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        return rearrange(self.proj_out(tokens), "b (h w) c -> b c h w", h=h, w=w) + x


class LegacyAttentionBlock(nn.Module):
    """Spatial self-attention of the LR encoder: 1-D conv qkv split head-first ("legacy" order)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels cannot be split into {heads} attention heads")
        self.heads = heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(n, c, h * w))
        q, k, v = rearrange(qkv, "n (h three d) t -> three n h t d", h=self.heads, three=3)
        # Contiguous heads keep SDPA on its fused kernel (about 5x faster on CPU than strided inputs).
        out = attention(q.contiguous(), k.contiguous(), v.contiguous())
        out = rearrange(out, "n h t d -> n (h d) t")
        return x + self.proj_out(out).reshape(n, c, h, w)
