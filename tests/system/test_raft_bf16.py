"""The full-size RAFT (random weights) in bf16 stays close to float32. CPUs without native bf16 emulate it: about
30 s on one core, so system tier (tests/integration/test_raft.py keeps the other checks of the module)."""
import pytest
import torch
from torch.nn import functional as F

from mgld_vsr.models.raft import RAFT, RAFTConfig


@pytest.fixture(scope="module")
def model():
    """Default PyTorch init (flows of a few pixels) with non-trivial BatchNorm statistics."""
    torch.manual_seed(1)
    m = RAFT(RAFTConfig())
    for name, buf in m.named_buffers():
        if name.endswith("running_mean"):
            buf.uniform_(-0.1, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.8, 1.2)
    return m.eval().requires_grad_(False)


def smooth_pair(h, w, dx, dy, seed=0):
    torch.manual_seed(seed)
    big = F.interpolate(torch.rand(1, 3, 12, 12), size=(h + 16, w + 16), mode="bicubic", align_corners=False).clamp(0, 1)
    return big[..., 8 : 8 + h, 8 : 8 + w].contiguous(), big[..., 8 + dy : 8 + dy + h, 8 + dx : 8 + dx + w].contiguous()


def test_bf16_close_to_fp32(model):
    a, b = smooth_pair(128, 128, dx=3, dy=2)
    ref = model(a, b)
    with torch.device("meta"):
        half = RAFT(RAFTConfig())
    half.load_state_dict({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in model.state_dict().items()},
                         assign=True)
    with torch.no_grad():
        out = half.eval()(a.bfloat16(), b.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert ref.abs().max() > 0.5  # the comparison is not between two near-zero fields
    assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max() + 0.05

