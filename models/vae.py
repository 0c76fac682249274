"""First stage of MGLD-VSR: the SD-2.1 KL autoencoder's *encoder* (``first_stage_model.*``).

MGLD-VSR encodes the (upscaled) low-resolution frames with the Stable Diffusion 2.1 VAE encoder,
draws one posterior sample and multiplies it by :data:`LATENT_SCALE`; that latent is both the
start of the diffusion (``x_T``) and the LR condition. The first stage's decoder is never used
at inference (the temporal CFW decoder of :mod:`.video_vae` replaces it), so
:class:`FirstStageEncoder` holds only ``encoder.*`` and ``quant_conv.*``.

The building blocks (:class:`ResnetBlock`, :class:`SpatialSelfAttention`, :class:`Downsample`,
:class:`Encoder`) are shared with the video VAE, whose encoder is the same network.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .attention import attention

#: Diffusion latents are this factor times VAE latents (SD 2.x ``scale_factor``).
LATENT_SCALE = 0.18215

#: Bounds of the log-variance predicted by the encoder (keeps ``exp`` finite).
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


#: Bound, in bytes, of the float32 working copy :class:`VAEGroupNorm` makes of a half-precision input.
#: At full output resolution one fp16 VAE activation is 0.5-2 GiB; converting it whole to float32
#: (input and result, 4x its size) was the largest allocation of the encoder and the CFW decoder
#: (issue #5 memory target). Groups are independent, so normalising a few at a time is exact.
NORM_CHUNK_BYTES = 256 * 2 ** 20


class VAEGroupNorm(nn.GroupNorm):
    """GroupNorm(32 groups, eps 1e-6, affine) of every VAE block, evaluated in float32.

    Statistics in float32 are identical for float32 inputs and keep fp16/bf16 runs stable. Half
    inputs larger than :data:`NORM_CHUNK_BYTES` in float32 are normalised a slice of whole groups at
    a time, each slice's float32 result cast into one output of the input's dtype.
    """

    def __init__(self, channels: int):
        super().__init__(32, channels, eps=1e-6, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.num_groups
        group_bytes = x.numel() // groups * 4  # one group of every batch entry, in float32
        per_chunk = max(1, NORM_CHUNK_BYTES // max(group_bytes, 1))
        if x.dtype == torch.float32 or per_chunk >= groups:
            out = F.group_norm(x.float(), groups, self.weight.float(), self.bias.float(), self.eps)
            return out.to(x.dtype)
        width = x.shape[1] // groups
        out = torch.empty_like(x)
        for first in range(0, groups, per_chunk):
            count = min(per_chunk, groups - first)
            part = slice(first * width, (first + count) * width)
            out[:, part] = F.group_norm(x[:, part].float(), count, self.weight[part].float(), self.bias[part].float(),
                                        self.eps)
        return out


class ResnetBlock(nn.Module):
    """VAE residual block without time embedding: norm-swish-conv twice, a 1x1 skip conv if widths differ.

    The skip conv is ``nin_shortcut`` in the VAE and ``conv_out`` in the CFW blocks (``skip_name``).
    """

    def __init__(self, in_channels: int, out_channels: int, skip_name: str = "nin_shortcut"):
        super().__init__()
        self.norm1 = VAEGroupNorm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = VAEGroupNorm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip_name = skip_name
        setattr(self, skip_name, nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written so that at most three full-resolution activations are alive at once (the VAE's peak
        # memory at 1080p/4K): SiLU in place on each fresh normalised copy, each conv input dropped
        # as soon as it is normalised, the skip added in place (a + b == b + a, so the same numbers).
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = F.silu(self.norm2(h), inplace=True)
        h = self.conv2(h)
        skip = getattr(self, self.skip_name)
        return h.add_(x if skip is None else skip(x))


class SpatialSelfAttention(nn.Module):
    """Single-head self-attention over all pixels of a frame (``norm, q, k, v, proj_out`` 1x1 convs).

    Softmax scale is ``C^-0.5`` (the SDPA default for one head of width C); residual added.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = VAEGroupNorm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        normed = self.norm(x)
        # [N, C, H, W] -> [N, 1 head, H*W tokens, C]; contiguous channels keep SDPA on its fused CPU kernel
        q, k, v = (proj(normed).reshape(n, 1, c, h * w).transpose(-1, -2).contiguous() for proj in (self.q, self.k, self.v))
        out = attention(q, k, v)  # query-chunked when a 1080p+ latent would make the score matrix huge
        out = out.transpose(-1, -2).reshape(n, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Halve the resolution: zero-pad one row/column at the bottom/right, then 3x3 conv stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


@dataclasses.dataclass
class EncoderConfig:
    """Shape of the LDM VAE encoder (``ddconfig``); the real SD-2.1 values are the defaults."""

    in_channels: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    #: levels whose ResnetBlocks are each followed by a spatial attention (``attn_resolutions``; none in SD 2.1)
    attn_levels: tuple[int, ...] = ()

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(self.ch * m for m in self.ch_mult)

    @classmethod
    def official(cls) -> "EncoderConfig":
        return cls()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], hints: dict | None = None) -> "EncoderConfig":
        """Infer the encoder from shapes; keys relative to the encoder (``conv_in.weight`` ...). No hints are read."""
        conv_in = require_key(sd, "conv_in.weight", "VAE encoder")
        conv_out = require_key(sd, "conv_out.weight", "VAE encoder")
        ch, in_channels = conv_in.shape[0], conv_in.shape[1]
        levels = key_indices(sd, r"down\.(\d+)\.")
        if not levels or levels != list(range(len(levels))):
            raise ValueError(f"VAE encoder: expected levels down.0 ... down.N, found {levels}")
        num_res_blocks = len(key_indices(sd, r"down\.0\.block\.(\d+)\."))
        ch_mult, attn_levels = [], []
        for level in levels:
            blocks = key_indices(sd, rf"down\.{level}\.block\.(\d+)\.")
            if len(blocks) != num_res_blocks:
                raise ValueError(f"VAE encoder: level {level} has {len(blocks)} ResnetBlocks, level 0 has {num_res_blocks}")
            width = require_key(sd, f"down.{level}.block.0.conv1.weight", "VAE encoder").shape[0]
            if width % ch:
                raise ValueError(f"VAE encoder: level {level} width {width} is not a multiple of conv_in width {ch}")
            ch_mult.append(width // ch)
            if f"down.{level}.attn.0.q.weight" in sd:
                attn_levels.append(level)
        if conv_out.shape[0] % 2:
            raise ValueError(f"VAE encoder: conv_out has {conv_out.shape[0]} channels; a KL encoder outputs mean and logvar (2*z)")
        return cls(in_channels=in_channels, ch=ch, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
                   z_channels=conv_out.shape[0] // 2, attn_levels=tuple(attn_levels))


class Encoder(nn.Module):
    """LDM VAE encoder: image ``[N, 3, H, W]`` in [-1, 1] -> ``[N, 2*z, H/2^(L-1), W/2^(L-1)]`` (mean and logvar)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        widths = config.level_channels
        self.conv_in = nn.Conv2d(config.in_channels, config.ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = config.ch
        for level, width in enumerate(widths):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            stage.attn = nn.ModuleList()
            for _ in range(config.num_res_blocks):
                stage.block.append(ResnetBlock(block_in, width))
                block_in = width
                if level in config.attn_levels:
                    stage.attn.append(SpatialSelfAttention(width))
            if level != len(widths) - 1:
                stage.downsample = Downsample(width)
            self.down.append(stage)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = SpatialSelfAttention(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        self.norm_out = VAEGroupNorm(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * config.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x, ())[0]

    def forward_with_features(self, x: torch.Tensor, feature_levels: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Also return, for each level in ``feature_levels`` (in that order), its last full-resolution
        feature map: the output of the level's last ResnetBlock (and attention), before downsampling."""
        h = self.conv_in(x)
        features = {}
        for level, stage in enumerate(self.down):
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn):
                    h = stage.attn[i](h)
            if level in feature_levels:
                features[level] = h
            if level != len(self.down) - 1:
                h = stage.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        h = self.conv_out(F.silu(self.norm_out(h), inplace=True))
        return h, [features[level] for level in feature_levels]


class DiagonalGaussianPosterior:
    """The encoder's latent distribution: ``moments`` split into mean and log-variance along channels."""

    def __init__(self, moments: torch.Tensor):
        self.moments = moments
        self.mean, logvar = torch.chunk(moments, 2, dim=1)
        self.logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> torch.Tensor:
        return torch.exp(self.logvar)

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``mean + std * eps``. ``eps`` is ``noise`` when given, else a float32 ``torch.randn`` of the mean's
        shape drawn on the generator's device (CPU by default, as the official code draws it) and then
        moved to the mean's device/dtype, so a seeded CPU generator reproduces the official draw."""
        if noise is None:
            device = generator.device if generator is not None else torch.device("cpu")
            noise = torch.randn(self.mean.shape, generator=generator, dtype=torch.float32, device=device)
        elif noise.shape != self.mean.shape:
            raise ValueError(f"posterior noise has shape {tuple(noise.shape)}, expected {tuple(self.mean.shape)}")
        return self.mean + self.std * noise.to(device=self.mean.device, dtype=self.mean.dtype)


@dataclasses.dataclass
class VAEConfig:
    """The SD-2.1 ``AutoencoderKL`` parts used at inference: the encoder and ``quant_conv`` (2*z -> 2*embed_dim)."""

    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    embed_dim: int = 4

    @classmethod
    def official(cls) -> "VAEConfig":
        return cls(EncoderConfig.official(), 4)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], hints: dict | None = None) -> "VAEConfig":
        """Keys relative to ``first_stage_model.`` (``encoder.*``, ``quant_conv.*``; others ignored). No hints are read."""
        encoder = EncoderConfig.from_state_dict(subdict(sd, "encoder."), hints)
        quant = require_key(sd, "quant_conv.weight", "first stage")
        if quant.shape[1] != 2 * encoder.z_channels or quant.shape[0] % 2:
            raise ValueError(f"first stage: quant_conv {tuple(quant.shape)} does not fit an encoder with z_channels={encoder.z_channels}")
        return cls(encoder, quant.shape[0] // 2)


class FirstStageEncoder(nn.Module):
    """Encodes RGB frames in [-1, 1] to the VAE posterior (multiply a sample by :data:`LATENT_SCALE` for the diffusion)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.encoder)
        self.quant_conv = nn.Conv2d(2 * config.encoder.z_channels, 2 * config.embed_dim, 1)

    def encode(self, x: torch.Tensor) -> DiagonalGaussianPosterior:
        return DiagonalGaussianPosterior(self.quant_conv(self.encoder(x)))

    def forward(self, x: torch.Tensor) -> DiagonalGaussianPosterior:
        return self.encode(x)


def subdict(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``sd`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def require_key(sd: dict[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise ValueError(f"{what}: state dict has no '{key}'; this is not an LDM KL-autoencoder checkpoint (or the prefix is wrong)")
    return sd[key]


def key_indices(sd: dict[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` at the start of the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := regex.match(k))})
