"""RAFT feature and context encoders (the 'BasicEncoder' of the normal-size RAFT).

One network shape serves two roles: ``fnet`` (instance norm, 256 output channels) turns each frame
into the 1/8-resolution features that are correlated, and ``cnet`` (batch norm with frozen
statistics, 256 = 128 hidden + 128 context channels) encodes the first frame for the update block.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that always normalises with its stored statistics (RAFT's cnet is run in eval mode).

    Same parameters and buffers as ``nn.BatchNorm2d`` so official keys load unchanged; the running
    statistics are never updated, even if the module is put in training mode.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def make_norm(kind: str, channels: int) -> nn.Module:
    """``instance``: parameter-free InstanceNorm (fnet, no keys); ``batch``: frozen BatchNorm (cnet)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "batch":
        return FrozenBatchNorm2d(channels)
    raise ValueError(f"unknown RAFT norm kind {kind!r} (expected 'instance' or 'batch')")


class ResidualBlock(nn.Module):
    """Two 3x3 conv-norm-ReLU layers plus a shortcut; the first conv may have stride 2.

    With stride 2 the shortcut is a strided 1x1 conv followed by a third norm. The official code
    stores that norm as ``norm3`` *and* as ``downsample.1`` (one module, two names), so both key
    sets exist in raft-things.pth; sharing one module here reproduces exactly that.
    """

    def __init__(self, in_channels: int, channels: int, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = make_norm(norm, channels)
        self.norm2 = make_norm(norm, channels)
        if stride == 1:
            self.downsample = None
        else:
            self.norm3 = make_norm(norm, channels)
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + y)


class BasicEncoder(nn.Module):
    """7x7 stride-2 stem, three stages of two residual blocks (64, 96 /2, 128 /2), 1x1 projection.

    Output is at 1/8 of the input resolution.
    """

    def __init__(self, output_dim: int, norm: str):
        super().__init__()
        self.norm1 = make_norm(norm, 64)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.layer1 = self._stage(64, 64, norm, stride=1)
        self.layer2 = self._stage(64, 96, norm, stride=2)
        self.layer3 = self._stage(96, 128, norm, stride=2)
        self.conv2 = nn.Conv2d(128, output_dim, 1)

    @staticmethod
    def _stage(in_channels: int, channels: int, norm: str, stride: int) -> nn.Sequential:
        return nn.Sequential(
            ResidualBlock(in_channels, channels, norm, stride=stride), ResidualBlock(channels, channels, norm, stride=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv2(x)
