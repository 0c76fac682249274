"""Temporal VAE decoder with Controllable Feature Wrapping (CFW) of MGLD-VSR (``video_vae_cfw.ckpt``).

The official ``VideoAutoencoderKLResi``: the SD VAE encoder (spatial only) turns the LR frames into
multi-scale features, and ``VideoDecoder_Mix`` decodes the diffusion latent with

* a temporal convolution (:class:`SpatialTemporalConv`) after the mid ResnetBlock and after every
  ResnetBlock of every up level, mixing neighbouring frames of each 5-frame clip, and
* a CFW block at the decoder levels that have a matching encoder level (1 and 2 in the real model):
  ``h <- h + fusion_w * F(encoder feature, h)``, so ``fusion_w`` trades fidelity to the LR
  (large) against the generated detail (0 = plain temporal decoder).

Checkpoint keys: ``encoder.*``, ``quant_conv.*``, ``post_quant_conv.*``, ``decoder.*``; the training
loss (``loss.*``) is not part of this module.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import Upsample
from .temporal import TRAINED_FRAMES, SpatialTemporalConv
from .vae import (DiagonalGaussianPosterior, Encoder, EncoderConfig, ResnetBlock, SpatialSelfAttention, VAEGroupNorm,
                  key_indices, require_key, subdict)


def CFWResBlock(in_channels: int, out_channels: int) -> ResnetBlock:
    """Residual block of the CFW module: the VAE block with its 1x1 skip named ``conv_out``."""
    return ResnetBlock(in_channels, out_channels, skip_name="conv_out")


class ResidualDenseBlock(nn.Module):
    """ESRGAN residual dense block: five 3x3 convs, each seeing all earlier outputs; residual scaled by 0.2."""

    def __init__(self, channels: int, growth: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, growth, 3, padding=1)
        self.conv2 = nn.Conv2d(channels + growth, growth, 3, padding=1)
        self.conv3 = nn.Conv2d(channels + 2 * growth, growth, 3, padding=1)
        self.conv4 = nn.Conv2d(channels + 3 * growth, growth, 3, padding=1)
        self.conv5 = nn.Conv2d(channels + 4 * growth, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            dense.append(F.leaky_relu(conv(torch.cat(dense, dim=1)), 0.2))
        return 0.2 * self.conv5(torch.cat(dense, dim=1)) + x


class CFWFusion(nn.Module):
    """Controllable Feature Wrapping (official ``Fuse_sft_block_ResidualDenseBlock``).

    ``out = dec + w * F(cat[enc, dec])`` with ``F`` = ResBlock(2C->C), dense blocks, ResBlock(C->C).
    """

    def __init__(self, channels: int, num_dense_blocks: int = 2, growth: int = 32):
        super().__init__()
        self.encode_enc_1 = CFWResBlock(2 * channels, channels)
        self.encode_enc_2 = nn.Sequential(*(ResidualDenseBlock(channels, growth) for _ in range(num_dense_blocks)))
        self.encode_enc_3 = CFWResBlock(channels, channels)

    def forward(self, enc_feat: torch.Tensor, dec_feat: torch.Tensor, fusion_w: float) -> torch.Tensor:
        correction = self.encode_enc_1(torch.cat([enc_feat.to(dec_feat.dtype), dec_feat], dim=1))
        correction = self.encode_enc_3(self.encode_enc_2(correction))
        return dec_feat + fusion_w * correction


@dataclasses.dataclass
class VideoVAEConfig:
    """Shape of ``VideoAutoencoderKLResi`` (real values are the defaults).

    Encoder and decoder share ``ddconfig`` (``ch``, ``ch_mult``, ``num_res_blocks``, ``z_channels``);
    the decoder has ``num_res_blocks + 1`` blocks per level and a CFW block at every level except
    the first and the last, fed by the encoder level of the same index.
    """

    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    embed_dim: int = 4
    out_channels: int = 3
    #: decoder levels whose blocks are each followed by spatial attention (none in the real model)
    decoder_attn_levels: tuple[int, ...] = ()
    num_fuse_blocks: int = 2
    fuse_growth: int = 32
    #: clip length the temporal convolutions reshape with (``num_frames``)
    num_frames: int = TRAINED_FRAMES

    @property
    def fusion_levels(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.encoder.ch_mult) - 1))

    @classmethod
    def official(cls) -> "VideoVAEConfig":
        return cls()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], hints: dict | None = None) -> "VideoVAEConfig":
        """Infer from shapes; keys ``encoder.*``, ``quant_conv.*``, ``post_quant_conv.*``, ``decoder.*`` (``loss.*`` ignored).

        Hints read: ``num_frames`` (frames per clip for the temporal layers; official 5 when absent).
        """
        hints = hints or {}
        encoder = EncoderConfig.from_state_dict(subdict(sd, "encoder."))
        quant = require_key(sd, "quant_conv.weight", "video VAE")
        post_quant = require_key(sd, "post_quant_conv.weight", "video VAE")
        dec = subdict(sd, "decoder.")
        conv_in = require_key(dec, "conv_in.weight", "video VAE decoder")
        conv_out = require_key(dec, "conv_out.weight", "video VAE decoder")
        widths = encoder.level_channels
        num_levels = len(widths)
        if quant.shape[1] != 2 * encoder.z_channels or quant.shape[0] % 2:
            raise ValueError(f"video VAE: quant_conv {tuple(quant.shape)} does not fit z_channels={encoder.z_channels}")
        embed_dim = quant.shape[0] // 2
        if tuple(post_quant.shape[:2]) != (encoder.z_channels, embed_dim) or conv_in.shape[1] != encoder.z_channels:
            raise ValueError(f"video VAE: post_quant_conv {tuple(post_quant.shape)} / decoder.conv_in {tuple(conv_in.shape)} "
                             f"do not fit z_channels={encoder.z_channels}, embed_dim={embed_dim}")
        if conv_in.shape[0] != widths[-1]:
            raise ValueError(f"video VAE: decoder.conv_in has {conv_in.shape[0]} channels, the encoder's deepest level {widths[-1]}")
        up_levels = key_indices(dec, r"up\.(\d+)\.")
        if up_levels != list(range(num_levels)):
            raise ValueError(f"video VAE: decoder levels {up_levels} do not match the encoder's {num_levels}")
        attn_levels = []
        for level, width in enumerate(widths):
            blocks = key_indices(dec, rf"up\.{level}\.block\.(\d+)\.")
            if len(blocks) != encoder.num_res_blocks + 1:
                raise ValueError(f"video VAE: decoder level {level} has {len(blocks)} blocks, expected {encoder.num_res_blocks + 1}")
            got = require_key(dec, f"up.{level}.block.0.conv1.weight", "video VAE decoder").shape[0]
            if got != width:
                raise ValueError(f"video VAE: decoder level {level} is {got} wide, encoder level {level} is {width}")
            if f"up.{level}.attn.0.q.weight" in dec:
                attn_levels.append(level)
        fusion_levels = tuple(range(1, num_levels - 1))
        found_fusion = key_indices(dec, r"fusion_layer_(\d+)\.")
        if found_fusion != list(fusion_levels):
            raise ValueError(f"video VAE: expected CFW blocks at decoder levels {list(fusion_levels)}, found {found_fusion}")
        num_fuse_blocks, growth = 2, 32
        if fusion_levels:
            first = fusion_levels[0]
            num_fuse_blocks = len(key_indices(dec, rf"fusion_layer_{first}\.encode_enc_2\.(\d+)\."))
            growth = require_key(dec, f"fusion_layer_{first}.encode_enc_2.0.conv1.weight", "video VAE decoder").shape[0]
        num_frames = hints.get("num_frames")
        num_frames = TRAINED_FRAMES if num_frames is None else num_frames
        if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
            raise ValueError(f"video VAE: hint num_frames must be a positive integer, got {num_frames!r}")
        return cls(encoder=encoder, embed_dim=embed_dim, out_channels=conv_out.shape[0], decoder_attn_levels=tuple(attn_levels),
                   num_fuse_blocks=num_fuse_blocks, fuse_growth=growth, num_frames=num_frames)


class VideoDecoderMix(nn.Module):
    """Official ``VideoDecoder_Mix``: the SD VAE decoder with temporal mixing and CFW fusion (no tanh at the end)."""

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        self.config = config
        widths = config.encoder.level_channels
        top, frames = widths[-1], config.num_frames
        self.conv_in = nn.Conv2d(config.encoder.z_channels, top, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(top, top)
        self.mid.attn_1 = SpatialSelfAttention(top)
        self.mid.block_2 = ResnetBlock(top, top)
        # The official model registers the mid temporal layer on the decoder itself, not under ``mid``.
        self.temporal_mixing = SpatialTemporalConv(top, frames)
        self.up = nn.ModuleList()
        for level, width in enumerate(widths):
            block_in = widths[level + 1] if level + 1 < len(widths) else top
            stage = nn.Module()
            stage.block = nn.ModuleList(ResnetBlock(block_in if j == 0 else width, width) for j in range(config.encoder.num_res_blocks + 1))
            stage.temporal_mixing = nn.ModuleList(SpatialTemporalConv(width, frames) for _ in stage.block)
            stage.attn = nn.ModuleList(SpatialSelfAttention(width) for _ in stage.block) if level in config.decoder_attn_levels else nn.ModuleList()
            if level != 0:
                stage.upsample = Upsample(width)
            self.up.append(stage)
        for level in config.fusion_levels:
            self.add_module(f"fusion_layer_{level}", CFWFusion(widths[level], config.num_fuse_blocks, config.fuse_growth))
        self.norm_out = VAEGroupNorm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, enc_features: Sequence[torch.Tensor] | None, fusion_w: float) -> torch.Tensor:
        use_cfw = float(fusion_w) != 0.0
        if use_cfw and (enc_features is None or len(enc_features) != len(self.config.fusion_levels)):
            have = "none" if enc_features is None else len(enc_features)
            raise ValueError(f"CFW needs {len(self.config.fusion_levels)} encoder feature maps (from encode()), got {have}")
        h = self.mid.block_1(self.conv_in(z))
        h = self.mid.block_2(self.mid.attn_1(self.temporal_mixing(h)))
        for level in reversed(range(len(self.up))):
            stage = self.up[level]
            for j, block in enumerate(stage.block):
                h = stage.temporal_mixing[j](block(h))
                if len(stage.attn):
                    h = stage.attn[j](h)
            if use_cfw and level in self.config.fusion_levels:
                enc = enc_features[level - 1]
                if enc.shape != h.shape:
                    raise ValueError(f"CFW level {level}: encoder feature {tuple(enc.shape)} does not match the decoder's "
                                     f"{tuple(h.shape)}; encode the LR frames at the size this latent decodes to")
                h = getattr(self, f"fusion_layer_{level}")(enc, h, fusion_w)
            if level != 0:
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))  # in place: the normalised copy is fresh


class TemporalCFWVideoVAE(nn.Module):
    """``VideoAutoencoderKLResi`` at inference: LR frames -> CFW features; diffusion latent -> HR frames."""

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.encoder)
        self.quant_conv = nn.Conv2d(2 * config.encoder.z_channels, 2 * config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.encoder.z_channels, 1)
        self.decoder = VideoDecoderMix(config)

    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    def encode(self, x: torch.Tensor) -> tuple[DiagonalGaussianPosterior, list[torch.Tensor]]:
        """Frames ``[N, 3, H, W]`` in [-1, 1] -> (posterior, CFW features). The features are the last
        full-resolution maps of encoder levels 1 .. L-2 (real: ``[N,256,H/2,W/2]``, ``[N,512,H/4,W/4]``)."""
        h, features = self.encoder.forward_with_features(x, self.config.fusion_levels)
        return DiagonalGaussianPosterior(self.quant_conv(h)), features

    def decode(self, z_vae: torch.Tensor, enc_features: Sequence[torch.Tensor] | None, fusion_w: float) -> torch.Tensor:
        """Unscaled VAE latent ``[B*T, z, h, w]`` (diffusion latent / LATENT_SCALE) -> frames ``[B*T, 3, 8h, 8w]``.

        ``fusion_w`` is the CFW weight (the script's ``--dec_w``); 0 skips the CFW blocks and is exactly the
        plain temporal decoder, in which case ``enc_features`` may be None. Frames are video-major
        (row ``b*T + t``); the batch must be whole clips of ``num_frames``.
        """
        frames = self.config.num_frames
        if z_vae.shape[0] % frames:
            raise ValueError(f"the video decoder mixes clips of {frames} frames (num_frames), but got a batch of "
                             f"{z_vae.shape[0]} latents; pad the sequence to a multiple of {frames} frames")
        return self.decoder(self.post_quant_conv(z_vae), enc_features, fusion_w)
