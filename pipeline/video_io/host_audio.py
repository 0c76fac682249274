"""Conversion between :class:`AudioTrack` and the host's ``{"waveform", "sample_rate"}`` dictionaries."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch

from .data import AudioTrack


# --------------------------------------------------------------------------------------------------
# ComfyUI's AUDIO dictionaries


def audio_to_comfy(audio: Optional[AudioTrack]) -> Optional[dict]:
    """:class:`AudioTrack` -> ``{"waveform": [1, C, S] float32, "sample_rate": int}``; None stays None."""
    if audio is None:
        return None
    waveform = audio.waveform.detach().to("cpu", torch.float32).unsqueeze(0).contiguous()
    return {"waveform": waveform, "sample_rate": int(audio.sample_rate)}


def audio_from_comfy(audio: Any) -> Optional[AudioTrack]:
    """A host AUDIO value -> :class:`AudioTrack`, or None for "no audio" (None, a missing waveform,
    zero samples or an empty batch). Only the first item of a batch is used. ``[C, S]`` and ``[S]``
    waveforms are accepted too."""
    if audio is None:
        return None
    if isinstance(audio, AudioTrack):
        return audio if audio.samples else None
    if not isinstance(audio, Mapping) and not (hasattr(audio, "__getitem__") and hasattr(audio, "keys")):
        raise ValueError(f"audio must be a dict with 'waveform' and 'sample_rate', got {type(audio).__name__}")
    if "waveform" not in audio.keys():
        return None
    waveform = audio["waveform"]
    if waveform is None:
        return None
    waveform = torch.as_tensor(waveform)
    if waveform.ndim == 3:
        if waveform.shape[0] == 0:
            return None
        waveform = waveform[0]
    elif waveform.ndim == 1:
        waveform = waveform[None]
    elif waveform.ndim != 2:
        raise ValueError(f"audio waveform must be [B, C, S], [C, S] or [S], got shape {tuple(waveform.shape)}")
    if waveform.shape[0] == 0 or waveform.shape[1] == 0:
        return None
    rate = audio["sample_rate"] if "sample_rate" in audio.keys() else None
    if rate is None or int(rate) <= 0:
        raise ValueError(f"audio sample_rate must be a positive integer, got {rate!r}")
    return AudioTrack(waveform.detach().to("cpu", torch.float32).contiguous(), int(rate))


