"""The text condition of MGLD-VSR: the OpenCLIP ViT-H/14 text tower read at its penultimate layer.

The official model wraps open_clip's ``CLIP`` (visual tower removed) in ``FrozenOpenCLIPEmbedder``
with ``layer="penultimate"``: token + positional embedding, a stack of pre-LayerNorm residual blocks
with causal self-attention, stopped one block short of the end, then ``ln_final`` on every one of the
77 positions. The pooled/projected CLIP embedding is never formed, so ``text_projection`` and
``logit_scale`` are not held here (the loader ignores them on purpose).

Parameter names equal the checkpoint keys after the prefix ``cond_stage_model.model.``.
"""
from __future__ import annotations

import dataclasses
import json

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .config_utils import indices, shape

_LAYER_SKIP = {"last": 0, "penultimate": 1}


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
    """Sizes of the text tower. ``layer`` picks where the sequence is read out ("penultimate" in MGLD-VSR)."""

    vocab_size: int = 49408
    context_length: int = 77
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_width: int = 4096
    layer: str = "penultimate"

    def __post_init__(self):
        if self.layer not in _LAYER_SKIP:
            raise ValueError(f"text encoder: layer must be one of {sorted(_LAYER_SKIP)}, got {self.layer!r}")
        if self.heads < 1 or self.width % self.heads:
            raise ValueError(f"text encoder: width {self.width} is not divisible into {self.heads} heads")
        if self.layers <= _LAYER_SKIP[self.layer]:
            raise ValueError(f"text encoder: {self.layers} block(s) are too few to read the {self.layer} layer")

    @classmethod
    def official(cls) -> "TextEncoderConfig":
        """OpenCLIP ViT-H-14 (laion2b_s32b_b79k) as used by MGLD-VSR."""
        return cls()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], hints: dict) -> "TextEncoderConfig":
        """Infer sizes from tensor shapes; the head count cannot be seen in the shapes.

        Hints read (top level, or inside a ``config`` entry given as dict or JSON string, as in the
        fixture weights' safetensors metadata):
        ``heads`` (default ``width // 64``, at least 1: 16 for ViT-H-14), ``layer`` ("penultimate" by default,
        the official YAML's value; "last" runs every block).
        """
        name = "text encoder"
        vocab, width = shape(sd, "token_embedding.weight", name)
        context, pos_width = shape(sd, "positional_embedding", name)
        if pos_width != width:
            raise ValueError(f"{name}: positional_embedding width {pos_width} != token_embedding width {width}")
        blocks = indices(sd, "transformer.resblocks.")
        if not blocks or blocks != list(range(len(blocks))):
            raise ValueError(f"{name}: transformer.resblocks indices {blocks} are not 0..L-1")
        mlp_width = shape(sd, "transformer.resblocks.0.mlp.c_fc.weight", name)[0]
        for i in blocks:
            if shape(sd, f"transformer.resblocks.{i}.attn.in_proj_weight", name) != (3 * width, width):
                raise ValueError(f"{name}: block {i} attn.in_proj_weight is not [{3 * width}, {width}]")
            if shape(sd, f"transformer.resblocks.{i}.mlp.c_fc.weight", name) != (mlp_width, width):
                raise ValueError(f"{name}: block {i} mlp.c_fc.weight is not [{mlp_width}, {width}]")
        shape(sd, "ln_final.weight", name)
        merged = _flat_hints(hints)
        heads = merged.get("heads", max(width // 64, 1))
        try:
            heads = int(heads)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: hint heads={heads!r} is not an integer") from exc
        return cls(
            vocab_size=vocab, context_length=context, width=width, layers=len(blocks), heads=heads,
            mlp_width=mlp_width, layer=str(merged.get("layer", "penultimate")),
        )


def _flat_hints(hints: dict) -> dict:
    """Top-level hints overlaid on a nested ``config`` (a dict or the metadata's JSON string)."""
    nested = (hints or {}).get("config")
    if isinstance(nested, str):
        try:
            nested = json.loads(nested)
        except ValueError:
            nested = None
    merged = dict(nested) if isinstance(nested, dict) else {}
    merged.update({k: v for k, v in (hints or {}).items() if k != "config"})
    return merged


class CausalSelfAttention(nn.Module):
    """``nn.MultiheadAttention`` maths with packed q/k/v rows; token i attends to tokens 0..i only."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "n l (h d) -> n h l d", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(rearrange(out, "n h l d -> n l (h d)"))


class FeedForward(nn.Module):
    """``c_fc`` -> exact (erf) GELU -> ``c_proj``; open_clip's ViT-H text tower does not use QuickGELU."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block: attention then MLP, each added back to the stream."""

    def __init__(self, width: int, heads: int, mlp_width: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = FeedForward(width, mlp_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(config.width, config.heads, config.mlp_width) for _ in range(config.layers)
        )


class OpenCLIPTextEncoder(nn.Module):
    """Token ids ``[N, 77]`` -> cross-attention context ``[N, 77, width]`` for the denoising UNet.

    Every block is held (the checkpoint carries them all), but with ``layer="penultimate"`` the last
    one is skipped, exactly as the official embedder does.
    """

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.width))
        self.transformer = _Transformer(config)
        self.ln_final = nn.LayerNorm(config.width)

    def encode(self, token_ids: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """Context for each row of token ids; ``layer`` overrides the config's read-out layer."""
        layer = self.config.layer if layer is None else layer
        if layer not in _LAYER_SKIP:
            raise ValueError(f"layer must be one of {sorted(_LAYER_SKIP)}, got {layer!r}")
        if token_ids.dim() != 2 or token_ids.shape[1] != self.config.context_length:
            raise ValueError(
                f"token ids must be [N, {self.config.context_length}], got {tuple(token_ids.shape)}"
            )
        if token_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"token ids must be an integer tensor, got {token_ids.dtype}")
        token_ids = token_ids.to(device=self.token_embedding.weight.device, dtype=torch.long)
        x = self.token_embedding(token_ids) + self.positional_embedding
        blocks = self.transformer.resblocks
        for block in list(blocks)[: len(blocks) - _LAYER_SKIP[layer]]:
            x = block(x)
        return self.ln_final(x)

    forward = encode
