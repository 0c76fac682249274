"""The time-aware LR encoder (official ``InflatedEncoderUNetModelWT``, ``structcond_stage_model``).

A half UNet over the LR latent, conditioned on the *original* diffusion timestep; it returns one
feature map per UNet resolution, keyed by the spatial width as a string, which the UNet's SPADE
layers pick up. Frames are encoded independently (no temporal layers).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .blocks import Downsample, LegacyAttentionBlock, ResBlock, TimeEmbedding
from .config_utils import has_prefix, hint_int, indices, shape


@dataclasses.dataclass(frozen=True)
class LREncoderConfig:
    in_channels: int = 4
    model_channels: int = 256
    out_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 1, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (0, 1, 2)
    num_heads: int = 4

    @classmethod
    def official(cls) -> "LREncoderConfig":
        return cls()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], hints: dict) -> "LREncoderConfig":
        """Infer from shapes. Hint: ``num_heads`` (default 4)."""
        name = "time-aware LR encoder"
        mc, in_ch = shape(sd, "input_blocks.0.0.weight", name)[:2]
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
            if has_prefix(sd, f"input_blocks.{first}.1.qkv."):
                attention.append(level)
        return cls(
            in_channels=in_ch, model_channels=mc, out_channels=shape(sd, "fea_tran.0.out_layers.3.weight", name)[0],
            channel_mult=tuple(mult), num_res_blocks=res_per_level, attention_levels=tuple(attention),
            num_heads=hint_int(hints, "num_heads", 4),
        )


class _Step(nn.ModuleList):
    def forward(self, h, emb):
        for layer in self:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h


class TimeAwareLREncoder(nn.Module):
    def __init__(self, config: LREncoderConfig):
        super().__init__()
        self.config = config
        mc, emb_ch = config.model_channels, 4 * config.model_channels
        self.time_embed = TimeEmbedding(mc)
        self.input_blocks = nn.ModuleList([_Step([nn.Conv2d(config.in_channels, mc, 3, padding=1)])])
        feature_channels, ch = [], mc
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers = [ResBlock(ch, emb_ch, mult * mc)]
                ch = mult * mc
                if level in config.attention_levels:
                    layers.append(LegacyAttentionBlock(ch, config.num_heads))
                self.input_blocks.append(_Step(layers))
            if level != len(config.channel_mult) - 1:
                self.input_blocks.append(_Step([Downsample(ch)]))
                feature_channels.append(ch)
        self.middle_block = _Step([ResBlock(ch, emb_ch), LegacyAttentionBlock(ch, config.num_heads), ResBlock(ch, emb_ch)])
        feature_channels.append(ch)
        self.fea_tran = nn.ModuleList(ResBlock(c, emb_ch, config.out_channels) for c in feature_channels)

    def forward(self, lr_latent: torch.Tensor, timesteps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features ``{str(width): [N, out, h, w]}`` of the scaled LR latent at original-scale timesteps."""
        emb = self.time_embed(timesteps)
        h, features = lr_latent, []
        for step in self.input_blocks:
            entering = h
            h = step(h, emb)
            if h.shape[-1] != entering.shape[-1]:
                features.append(entering)  # last full-resolution feature of the level
        features.append(self.middle_block(h, emb))
        if len(features) != len(self.fea_tran):
            raise ValueError(f"LR latent of width {lr_latent.shape[-1]} is too small for {len(self.fea_tran)} resolutions")
        return {str(f.shape[-1]): tran(f, emb) for f, tran in zip(features, self.fea_tran)}
