"""What the "MGLD diffusion model" loader hands to the sampler: the networks of ``mgldvsr_unet.ckpt``.

The text tower (354 M parameters) only ever encodes the empty prompt, so its output is computed
once at load time and the tower is dropped. Converted per-component files are found by name
beside the chosen ``<stem>.unet.safetensors``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch
from torch import nn

from .checkpoint import CheckpointError
from .clip_tokenizer import tokenize
from .loader import load_component, load_components

DIFFUSION_PARTS = ("unet", "lr_encoder", "first_stage")


@dataclasses.dataclass
class MGLDDiffusion:
    unet: nn.Module
    lr_encoder: nn.Module
    first_stage: nn.Module
    context: Optional[torch.Tensor]  # [1, 77, C] penultimate-layer text condition of the empty prompt
    raft: Optional[nn.Module]  # flownet_model.* of the checkpoint, when present
    source: str

    def networks(self) -> dict:
        return {"unet": self.unet, "lr_encoder": self.lr_encoder, "first_stage": self.first_stage}

    def require_context(self) -> torch.Tensor:
        if self.context is None:
            raise CheckpointError(f"{self.source}: this file has no text encoder (cond_stage_model.*), so the text "
                                  "condition cannot be computed; use the official mgldvsr_unet.ckpt")
        return self.context


def empty_prompt_context(text_encoder: nn.Module) -> torch.Tensor:
    tokens = tokenize([""]).to(next(text_encoder.parameters()).device)
    with torch.no_grad():
        return text_encoder.encode(tokens).float().cpu()


def load_diffusion(path: str, dtype: torch.dtype = torch.float32, device="cpu",
                   first_stage_dtype: Optional[torch.dtype] = None) -> MGLDDiffusion:
    """Load ``mgldvsr_unet.ckpt`` (or its safetensors conversion) for sampling.

    ``first_stage_dtype`` (default ``dtype``) lets the VAE encoder stay in fp32 where half-precision
    VAEs are unsafe (Apple MPS) while the UNet runs in half precision. RAFT always loads in fp32.
    """
    dtypes = {"first_stage": first_stage_dtype or dtype, "raft": torch.float32}
    suffix = ".unet.safetensors"
    if path.endswith(suffix):  # converted: one file per component beside each other
        stem = path[: -len(suffix)]
        found = {}
        for name in (*DIFFUSION_PARTS, "text_encoder", "raft"):
            part = f"{stem}.{name}.safetensors"
            if os.path.isfile(part):
                found[name] = load_component(part, name, dtype=dtypes.get(name, dtype), device=device)
            elif name in DIFFUSION_PARTS:
                raise CheckpointError(f"{part}: missing; run_workflow.py convert-weights writes it next to {os.path.basename(path)}")
    else:
        found = load_components(path, [*DIFFUSION_PARTS, "text_encoder", "raft"], dtype=dtype, device=device,
                                optional=["text_encoder", "raft"], dtypes=dtypes)
    text = found.pop("text_encoder", None)
    context = empty_prompt_context(text) if text is not None else None
    del text
    return MGLDDiffusion(found["unet"], found["lr_encoder"], found["first_stage"], context, found.get("raft"), path)
