"""RAFT's recurrent update operator (the 'BasicUpdateBlock' of the normal-size RAFT).

Each iteration encodes the current flow and the correlation features it looks up (motion encoder),
updates the hidden state with a separable convolutional GRU, and predicts a residual flow (flow
head) plus the weights of the convex 8x upsampling (mask head).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MotionEncoder(nn.Module):
    """Fuses correlation features and the current flow into 128 motion channels (126 learned + the flow)."""

    def __init__(self, corr_channels: int):
        super().__init__()
        self.convc1 = nn.Conv2d(corr_channels, 256, 1)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(192 + 64, 128 - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        c = F.relu(self.convc2(F.relu(self.convc1(corr))))
        f = F.relu(self.convf2(F.relu(self.convf1(flow))))
        motion = F.relu(self.conv(torch.cat((c, f), dim=1)))
        return torch.cat((motion, flow), dim=1)


class SepConvGRU(nn.Module):
    """Convolutional GRU applied twice: first with 1x5 kernels (horizontal), then with 5x1 (vertical)."""

    def __init__(self, hidden_dim: int, input_dim: int):
        super().__init__()
        both = hidden_dim + input_dim
        self.convz1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))

    @staticmethod
    def _gru_step(h: torch.Tensor, x: torch.Tensor, conv_z: nn.Conv2d, conv_r: nn.Conv2d, conv_q: nn.Conv2d) -> torch.Tensor:
        hx = torch.cat((h, x), dim=1)
        update = torch.sigmoid(conv_z(hx))
        reset = torch.sigmoid(conv_r(hx))
        candidate = torch.tanh(conv_q(torch.cat((reset * h, x), dim=1)))
        return (1 - update) * h + update * candidate

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self._gru_step(h, x, self.convz1, self.convr1, self.convq1)
        return self._gru_step(h, x, self.convz2, self.convr2, self.convq2)


class FlowHead(nn.Module):
    """Two 3x3 convolutions from the hidden state to a 2-channel flow residual."""

    def __init__(self, input_dim: int, hidden_dim: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    """One refinement step: (hidden, context, correlation, flow) -> (hidden', upsampling logits, delta flow)."""

    def __init__(self, corr_channels: int, hidden_dim: int = 128, context_dim: int = 128, upsample_factor: int = 8):
        super().__init__()
        self.encoder = MotionEncoder(corr_channels)
        self.gru = SepConvGRU(hidden_dim, input_dim=context_dim + 128)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=256)
        self.mask = nn.Sequential(
            nn.Conv2d(hidden_dim, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, upsample_factor * upsample_factor * 9, 1),
        )

    def forward(
        self, hidden: torch.Tensor, context: torch.Tensor, corr: torch.Tensor, flow: torch.Tensor, with_mask: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``with_mask=False`` skips the mask head (its output only matters for the returned iteration)."""
        motion = self.encoder(flow, corr)
        hidden = self.gru(hidden, torch.cat((context, motion), dim=1))
        delta_flow = self.flow_head(hidden)
        # The official model scales the mask logits by 0.25 (a training-time gradient balance).
        upsample_logits = 0.25 * self.mask(hidden) if with_mask else None
        return hidden, upsample_logits, delta_flow
