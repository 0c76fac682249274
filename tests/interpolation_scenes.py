"""Scenes whose frame at any time is known exactly, for frame-interpolation tests and benchmarks.

Both are rendered from continuous functions: a band-limited texture translating at a constant
(sub-pixel) velocity, and a textured square moving over a still textured background, which
uncovers background behind it and covers background ahead of it.
"""
import math

import torch


def waves(h, w, dx, dy):
    """``[1,3,h,w]`` band-limited colour texture (periods 9-19 px) shifted by ``(dx, dy)`` pixels."""
    y = torch.arange(h, dtype=torch.float64).view(h, 1) - dy
    x = torch.arange(w, dtype=torch.float64).view(1, w) - dx
    r = 0.5 + 0.15 * torch.sin(2 * math.pi * x / 17 + 0.3) + 0.1 * torch.sin(2 * math.pi * (0.6 * x + 0.8 * y) / 11)
    g = 0.5 + 0.2 * torch.sin(2 * math.pi * (x - y) / 19) + 0.1 * torch.cos(2 * math.pi * y / 13)
    b = 0.5 + 0.2 * torch.cos(2 * math.pi * (0.3 * x + y) / 9)
    return torch.stack([r, g, b]).unsqueeze(0).float()


def square_scene(t, h=64, w=96, x0=28, top=20, side=24, speed=8):
    """The frame at time ``t``: a light textured square at ``x0 + speed * t`` (rounded) over a dark background."""
    frame = 0.6 * waves(h, w, 0, 0)
    square = 0.4 + 0.6 * waves(h, w, 40.0, 0).flip(-1)
    left = x0 + round(speed * t)
    frame[..., top:top + side, left:left + side] = square[..., top:top + side, x0:x0 + side]
    return frame


def square_flows(h=64, w=96, x0=28, top=20, side=24, speed=8):
    """The true ``(flow_01, flow_10)`` of :func:`square_scene` between t = 0 and t = 1."""
    flow_01, flow_10 = torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w)
    flow_01[:, 0, top:top + side, x0:x0 + side] = speed
    flow_10[:, 0, top:top + side, x0 + speed:x0 + speed + side] = -speed
    return flow_01, flow_10
