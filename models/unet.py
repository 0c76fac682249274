"""The MGLD denoising UNet (official ``InflatedUNetModelDualcondV2``).

SD2.1's UNet (linear-projection spatial transformers, 1024-d text cross-attention, 64-channel
heads) with two MGLD additions: every residual block is modulated by SPADE from the time-aware
LR encoder's features of its width, and the middle block gains a temporal convolution and a
temporal attention across the T frames of a window. Input ``x`` is ``[B*T, 4, h, w]``.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .blocks import Downsample, GroupNorm32, ResBlock, SpatialTransformer, TimeEmbedding, Upsample
from .config_utils import has_prefix, hint_int, indices, shape
from .temporal import TEMPORAL, TRAINED_FRAMES, SpatialTemporalConv, TemporalAttention


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (0, 1, 2)  # levels (ds = 2**level) that carry spatial transformers
    transformer_depth: int = 1
    num_head_channels: int = 64
    context_dim: int = 1024
    cond_channels: int = 256  # ``semb_channels``: width of the LR-encoder features
    num_frames: int = TRAINED_FRAMES

    @classmethod
    def official(cls) -> "UNetConfig":
        return cls()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], hints: dict) -> "UNetConfig":
        """Infer from shapes. Hints: ``num_head_channels`` (default 64), ``num_frames`` (default 5)."""
        name = "MGLD UNet"
        mc, in_ch = shape(sd, "input_blocks.0.0.weight", name)[:2]
        out_ch = shape(sd, "out.2.weight", name)[0]
        blocks = indices(sd, "input_blocks.")
        downs = [i for i in blocks if f"input_blocks.{i}.0.op.weight" in sd]
        levels = len(downs) + 1
        res_per_level = (len(blocks) - 1 - len(downs)) // levels
        if res_per_level < 1 or (len(blocks) - 1 - len(downs)) % levels:
            raise ValueError(f"{name}: input blocks {blocks} do not form a UNet encoder")
        mult, attention = [], []
        for level in range(levels):
            first = 1 + level * (res_per_level + 1)
            mult.append(shape(sd, f"input_blocks.{first}.0.in_layers.2.weight", name)[0] // mc)
            if has_prefix(sd, f"input_blocks.{first}.1.proj_in."):
                attention.append(level)
        transformer = next(k for k in sd if ".transformer_blocks." in k and k.endswith("attn2.to_k.weight"))
        depth = len(indices(sd, "middle_block.2.transformer_blocks."))
        if len(shape(sd, "middle_block.2.proj_in.weight", name)) != 2:
            raise ValueError(f"{name}: convolutional transformer projections are not supported (SD2.x uses linear)")
        return cls(
            in_channels=in_ch, out_channels=out_ch, model_channels=mc, channel_mult=tuple(mult),
            num_res_blocks=res_per_level, attention_levels=tuple(attention), transformer_depth=max(depth, 1),
            num_head_channels=hint_int(hints, "num_head_channels", 64), context_dim=sd[transformer].shape[1],
            cond_channels=shape(sd, "middle_block.0.spade.mlp_shared.0.weight", name)[1],
            num_frames=hint_int(hints, "num_frames", TRAINED_FRAMES),
        )


class _Step(nn.ModuleList):
    """One entry of ``input_blocks``/``output_blocks``: layers applied in order with the inputs each needs."""

    def forward(self, h, emb, context, struct_cond, num_frames):
        for layer in self:
            if isinstance(layer, ResBlock):
                h = layer(h, emb, struct_cond)
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, context)
            elif isinstance(layer, TEMPORAL):
                h = layer(h, num_frames)
            else:
                h = layer(h)
        return h


class MGLDUNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        mc, emb_ch, cond = config.model_channels, 4 * config.model_channels, config.cond_channels

        def transformer(ch):
            heads = ch // config.num_head_channels
            if heads < 1 or ch % config.num_head_channels:
                raise ValueError(f"{ch} channels do not split into heads of {config.num_head_channels}")
            return SpatialTransformer(ch, heads, config.num_head_channels, config.context_dim, config.transformer_depth)

        self.time_embed = TimeEmbedding(mc)
        self.input_blocks = nn.ModuleList([_Step([nn.Conv2d(config.in_channels, mc, 3, padding=1)])])
        skip_channels, ch = [mc], mc
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers = [ResBlock(ch, emb_ch, mult * mc, cond)]
                ch = mult * mc
                if level in config.attention_levels:
                    layers.append(transformer(ch))
                self.input_blocks.append(_Step(layers))
                skip_channels.append(ch)
            if level != len(config.channel_mult) - 1:
                self.input_blocks.append(_Step([Downsample(ch)]))
                skip_channels.append(ch)

        heads = ch // config.num_head_channels
        self.middle_block = _Step([
            ResBlock(ch, emb_ch, ch, cond),
            SpatialTemporalConv(ch, config.num_frames),
            transformer(ch),
            TemporalAttention(ch, config.num_frames, ch // heads),
            ResBlock(ch, emb_ch, ch, cond),
            SpatialTemporalConv(ch, config.num_frames),
        ])

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_ch, mult * mc, cond)]
                ch = mult * mc
                if level in config.attention_levels:
                    layers.append(transformer(ch))
                if level and i == config.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(_Step(layers))
        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                struct_cond: dict[str, torch.Tensor], num_frames: int | None = None) -> torch.Tensor:
        """Predict the noise eps of ``x [B*T,4,h,w]`` at original-scale ``timesteps`` ([1] or [B*T]).

        ``num_frames`` is the window length T (default: the trained 5); the temporal layers mix
        the T consecutive frames of each window.
        """
        frames = num_frames or self.config.num_frames
        if x.shape[0] % frames:
            raise ValueError(f"the UNet batch ({x.shape[0]}) must hold whole windows of {frames} frames")
        emb = self.time_embed(timesteps)
        h, skips = x, []
        for step in self.input_blocks:
            h = step(h, emb, context, struct_cond, frames)
            skips.append(h)
        h = self.middle_block(h, emb, context, struct_cond, frames)
        for step in self.output_blocks:
            h = step(torch.cat([h, skips.pop()], dim=1), emb, context, struct_cond, frames)
        return self.out(h)
