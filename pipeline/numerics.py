"""Finite-value checks between stages: a precision problem stops with one line that says what to change.

Half precision can overflow with real weights (fp16 has a range of +-65504), and a NaN in one
stage silently becomes a black or grey video two stages later. Each stage (VAE encode, every
sampling step, decode, optical flow) checks its output and, if anything is NaN or infinite, raises
:class:`NonFiniteError` naming the stage, the precision it ran in, and the precision to use instead.
"""
from __future__ import annotations

import torch

#: Where each network's precision is chosen (the loader nodes' titles), for the advice.
DIFFUSION_LOADER = "MGLD Diffusion Model Loader"
VIDEO_VAE_LOADER = "MGLD Video VAE Loader"
RAFT_LOADER = "MGLD RAFT Loader"

PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}


class NonFiniteError(ValueError):
    """A stage produced NaN or infinite values (a ValueError: the node reports it in one line)."""


def precision_advice(dtype: torch.dtype, loader: str) -> str:
    """What to choose instead of ``dtype`` in ``loader``'s precision widget."""
    if dtype == torch.float16:
        return f"set precision to bf16 in {loader} (NVIDIA compute capability 8+) or to fp32"
    if dtype == torch.bfloat16:
        return f"set precision to fp32 in {loader}"
    return f"this already ran in {PRECISION_NAMES.get(dtype, str(dtype))}: check the weight file of {loader} and the input frames"


def check_finite(tensor: torch.Tensor, stage: str, dtype: torch.dtype, loader: str) -> torch.Tensor:
    """Return ``tensor`` unchanged if it is finite everywhere, otherwise raise :class:`NonFiniteError`.

    ``stage`` names what produced it ("VAE encode", "sampling step 12 of 50", ...), ``dtype`` the
    precision its network ran in, ``loader`` the node whose precision setting chose it.
    Storage-free (meta) tensors, used to count memory, are not checked.
    """
    if tensor.is_meta or bool(torch.isfinite(tensor).all()):
        return tensor
    bad = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
    precision = PRECISION_NAMES.get(dtype, str(dtype))
    raise NonFiniteError(f"{stage} produced {bad} values in {precision}: {precision_advice(dtype, loader)}")
