"""Out-of-memory fallback: a step or decode window that runs out of memory is retried with smaller tiles."""
import pytest
import torch

from stub_models import WindowConsistentDenoiser, stub_models
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.hooks import Hooks
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.memory.oom import is_out_of_memory, smaller_tile
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, VideoLatents, sample_video
from mgld_vsr.pipeline.decoding.cfw import decode_video


class SmallMemoryDenoiser(WindowConsistentDenoiser):
    """Raises the allocator's out-of-memory error for tiles larger than ``limit`` latent pixels, like a small GPU."""

    def __init__(self, limit: int, error=None):
        super().__init__()
        self.limit, self.error, self.seen = limit, error, []

    def forward(self, x, t, context, cond, num_frames=None):
        area = x.shape[-2] * x.shape[-1]
        self.seen.append(area)
        if area > self.limit:
            raise self.error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x, t, context, cond, num_frames)


def _clip(n=5, size=64):
    frames = torch.linspace(40, 200, n).view(n, 1, 1, 1).expand(n, size, size, 3).to(torch.uint8).contiguous()
    plan = LRPlan.create(size, size, 4, min_short_side=64)  # 32x32 latent
    return frames, plan


def _sample(unet, options, hooks=None):
    frames, plan = _clip()
    models = {**stub_models(), "unet": unet}
    with torch.no_grad():
        return sample_video(frames, MotionField.still(5, plan.latent_size), plan, **models,
                            context=torch.zeros(1, 77, 4), options=options, hooks=hooks)


@pytest.mark.parametrize("overlap", [0, 8])
def test_sampling_retries_with_smaller_tiles_and_finishes(overlap):
    messages = []
    unet = SmallMemoryDenoiser(limit=16 * 16)
    result = _sample(unet, SamplingOptions(steps=3, tile=32, tile_overlap=overlap),
                     hooks=Hooks(message=messages.append)).latents
    assert any(area > 16 * 16 for area in unet.seen)  # the first attempt really ran out of memory
    failures = [i for i, area in enumerate(unet.seen) if area > 16 * 16]
    assert all(area <= 16 * 16 for area in unet.seen[failures[-1] + 1:])  # then only small tiles
    assert messages and "16-px latent tiles" in messages[0]
    # the stub is per-pixel, so a run that used small tiles from the start gives the same latents
    reference = _sample(WindowConsistentDenoiser(), SamplingOptions(steps=3, tile=16, tile_overlap=min(overlap, 8))).latents
    torch.testing.assert_close(result, reference)


def test_sampling_gives_up_clearly_when_the_smallest_tile_does_not_fit():
    with pytest.raises(MemoryError, match="even with 16-px latent tiles"), \
            pytest.warns(RuntimeWarning, match="retrying the step"):  # without hooks the retry is a warning
        _sample(SmallMemoryDenoiser(limit=8 * 8), SamplingOptions(steps=2, tile=32))


def test_other_errors_are_not_retried():
    unet = SmallMemoryDenoiser(limit=0, error=RuntimeError("shape mismatch in conv"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _sample(unet, SamplingOptions(steps=2, tile=32))
    assert len(unet.seen) == 1


def test_out_of_memory_recognised_across_backends():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1.2 GB)"))
    assert not is_out_of_memory(RuntimeError("expected scalar type Half"))
    assert smaller_tile(64) == 32 and smaller_tile(40) == 16 and smaller_tile(24) is None


def test_decoding_retries_with_smaller_tiles():
    class SmallMemoryDecoder(torch.nn.Module):
        """Pixel-local decoder that fails on latents wider than 16 pixels."""

        num_frames = 5

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))
            self.widths = []

        def encode(self, lr):
            return None, [lr]

        def decode(self, z, features, w):
            self.widths.append(z.shape[-1])
            if z.shape[-1] > 16:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return torch.nn.functional.interpolate(z[:, :3], scale_factor=8, mode="nearest") * 0.1 + w * features[0]

    frames, plan = _clip()
    z = torch.randn(5, 4, *plan.latent_size, generator=torch.Generator().manual_seed(0))
    latents = VideoLatents(z, plan, torch.zeros(4, dtype=torch.bool))
    messages = []
    decoder = SmallMemoryDecoder()
    out = decode_video(latents, frames, decoder, tile=0, colorfix="none", hooks=Hooks(message=messages.append))
    assert out.shape[0] == 5 and max(decoder.widths) == 32 and decoder.widths[-1] <= 16
    assert messages and "128-px tiles" in messages[0]
