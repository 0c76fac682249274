"""Inputs shared by the RAFT tests of two tiers: a smooth image pair with a known shift, and a random RAFT."""
import torch
from torch.nn import functional as F

from mgld_vsr.models.raft import RAFT, RAFTConfig


def smooth_pair(h, w, dx, dy, seed=0):
    """Two ``[1,3,h,w]`` crops of one smooth texture, the second shifted by ``(dx, dy)`` pixels."""
    torch.manual_seed(seed)
    big = F.interpolate(torch.rand(1, 3, 12, 12), size=(h + 16, w + 16), mode="bicubic", align_corners=False).clamp(0, 1)
    return big[..., 8 : 8 + h, 8 : 8 + w].contiguous(), big[..., 8 + dy : 8 + dy + h, 8 + dx : 8 + dx + w].contiguous()


def random_raft() -> RAFT:
    """Default PyTorch init (flows of a few pixels) with non-trivial BatchNorm statistics."""
    torch.manual_seed(1)
    m = RAFT(RAFTConfig())
    for name, buf in m.named_buffers():
        if name.endswith("running_mean"):
            buf.uniform_(-0.1, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.8, 1.2)
    return m.eval().requires_grad_(False)
