"""LR frame preparation and output conversion, as the official inference script does it.

LR frames are mapped to [-1, 1], bicubically upsampled by ``s = max(512 / short side, scale)``
(the model works at >= 512 px), reflect-padded on the bottom/right, and the result is cropped
back and converted to 8-bit by truncation at the end.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch.nn import functional as F

from .defaults import LATENT_TILE_STEP, MAX_SCALE, MIN_SCALE, OFFICIAL_PAD_MULTIPLE, OFFICIAL_SCALE

#: The diffusion model was trained on 512 px crops: shorter LR inputs are upsampled further.
MIN_SHORT_SIDE = 512


def uint8_to_model_range(frames: torch.Tensor) -> torch.Tensor:
    """``[N,H,W,3]`` uint8 -> ``[N,3,H,W]`` float32 in [-1, 1]."""
    return (frames.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5


def upsample_factor(height: int, width: int, scale: float, min_short_side: int = MIN_SHORT_SIDE) -> float:
    return max(min_short_side / min(height, width), float(scale))


def bicubic_upsample(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Bicubic resize to ``(int(H*s), int(W*s))`` (no antialias, align_corners=False), clamped to [-1, 1]."""
    h, w = frames.shape[-2:]
    out = F.interpolate(frames, size=(int(h * factor), int(w * factor)), mode="bicubic", align_corners=False)
    return out.clamp(-1.0, 1.0)


def official_padding(height: int, width: int, multiple: int = OFFICIAL_PAD_MULTIPLE) -> tuple[int, int]:
    """Bottom/right padding of the official script: when either side is unaligned, *both* sides get
    ``(side // m + 1) * m - side``, so an already aligned side grows by a full ``m``."""
    if height % multiple == 0 and width % multiple == 0:
        return 0, 0
    return (height // multiple + 1) * multiple - height, (width // multiple + 1) * multiple - width


def reflect_pad(frames: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    if pad_h == 0 and pad_w == 0:
        return frames
    if pad_h >= frames.shape[-2] or pad_w >= frames.shape[-1]:
        return F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")  # reflect needs pad < side
    return F.pad(frames, (0, pad_w, 0, pad_h), mode="reflect")


def flow_network_input(padded: torch.Tensor) -> torch.Tensor:
    """RAFT input: [0, 1] frames bicubically shrunk to a quarter of the padded size (not re-clamped)."""
    h, w = padded.shape[-2:]
    frames01 = ((padded + 1.0) / 2.0).clamp(0.0, 1.0)
    return F.interpolate(frames01, size=(h // 4, w // 4), mode="bicubic", align_corners=False)


def fit_to_size(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop ``[N,H,W,C]`` frames to ``size``, repeating the last row/column where they are short of it."""
    h, w = size
    frames = frames[:, :h, :w]
    short_h, short_w = h - frames.shape[1], w - frames.shape[2]
    if short_h > 0:
        frames = torch.cat([frames, frames[:, -1:].expand(-1, short_h, -1, -1)], dim=1)
    if short_w > 0:
        frames = torch.cat([frames, frames[:, :, -1:].expand(-1, -1, short_w, -1)], dim=2)
    return frames


def to_uint8(frames01: torch.Tensor) -> torch.Tensor:
    """``[N,3,H,W]`` in [0, 1] -> ``[N,H,W,3]`` uint8 by truncation, as ``astype(uint8)`` does."""
    return (frames01.permute(0, 2, 3, 1) * 255.0).to(torch.uint8)


def patch_starts(length: int, size: int, stride: int) -> list[int]:
    """Image-tile starts of the official splitter: every ``stride``, clamped to the end, de-duplicated."""
    if length <= size:
        return [0]
    starts = []
    for start in range(0, length, stride):
        start = min(start, length - size)
        if start not in starts:
            starts.append(start)
    return starts


@dataclasses.dataclass(frozen=True)
class LRPlan:
    """Geometry of one clip through the pipeline: LR size -> upsampled -> padded -> latent grid.

    Both modes pad as the official script does (to a multiple of 32, with its +32 rule), so one
    flow computation serves both; the padding costs at most 32 pixels per side.
    """

    lr_size: tuple[int, int]
    scale: float
    factor: float  # actual upsampling factor: max(512 / short side, scale)
    upsampled: tuple[int, int]
    padded: tuple[int, int]

    @classmethod
    def create(cls, height: int, width: int, scale: float = OFFICIAL_SCALE,
               min_short_side: int = MIN_SHORT_SIDE) -> "LRPlan":
        """``min_short_side`` is 512 for real use (the model's training size); tests lower it to stay small."""
        if height < 2 or width < 2:
            raise ValueError(f"frames of {height}x{width} pixels are too small to process")
        if not (MIN_SCALE <= float(scale) <= MAX_SCALE):
            raise ValueError(f"scale must be between {MIN_SCALE:g} and {MAX_SCALE:g}, got {scale}")
        factor = upsample_factor(height, width, scale, min_short_side)
        up = (int(height * factor), int(width * factor))
        pad = official_padding(*up)
        return cls((height, width), float(scale), factor, up, (up[0] + pad[0], up[1] + pad[1]))

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.padded[0] // 8, self.padded[1] // 8

    @property
    def largest_tile(self) -> int:
        """The largest latent tile side that fits the latent grid (a whole number of ``LATENT_TILE_STEP``)."""
        side = min(self.latent_size)
        return side - side % LATENT_TILE_STEP

    @property
    def flow_size(self) -> tuple[int, int]:
        """Resolution RAFT runs at: a quarter of the padded frame (about the LR size at scale 4)."""
        return self.padded[0] // 4, self.padded[1] // 4

    @property
    def flow_content_size(self) -> tuple[int, int]:
        """The part of the RAFT grid (top left of :attr:`flow_size`) that shows the picture, not the padding."""
        (fh, fw), (ph, pw) = self.flow_size, self.padded
        return max(1, round(self.upsampled[0] * fh / ph)), max(1, round(self.upsampled[1] * fw / pw))

    @property
    def output_size(self) -> tuple[int, int]:
        """Final frame size in both modes: ``round(scale x LR side)`` on each side, halves rounded up.

        The working size (``upsampled``) truncates ``LR x factor`` and, for short LR sides, is shrunk
        back afterwards; truncating twice lost a row or column (96x128 at x4 came out 384x511).
        """
        return tuple(math.floor(self.scale * side + 0.5) for side in self.lr_size)

    @property
    def official_shrunk_size(self) -> tuple[int, int]:
        """The official script's shrink when a short LR side forced ``factor > scale``: the *padded*
        result resized to ``int(padded x scale / factor)`` (so its padded border is resized along)."""
        return int(self.padded[0] * self.scale / self.factor), int(self.padded[1] * self.scale / self.factor)

    def prepare(self, frames: torch.Tensor, device=None) -> torch.Tensor:
        """LR frames ``[n,H,W,3]`` (uint8, or float in [0,1]) -> upsampled, padded ``[n,3,Hp,Wp]`` in [-1, 1]."""
        if tuple(frames.shape[1:3]) != self.lr_size:
            raise ValueError(f"frames are {tuple(frames.shape[1:3])}, the plan was made for {self.lr_size}")
        x = frames.to(device)
        x = uint8_to_model_range(x) if x.dtype == torch.uint8 else (x.permute(0, 3, 1, 2).float() - 0.5) / 0.5
        up = bicubic_upsample(x, self.factor)
        return reflect_pad(up, self.padded[0] - up.shape[-2], self.padded[1] - up.shape[-1])
