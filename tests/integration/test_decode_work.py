"""The decoder does each frame's work once: disjoint temporal windows and spatial tiles fitted to the frame."""
import pytest
import torch

from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.sampling.tiling import fitted_origins
from mgld_vsr.pipeline.decoding.cfw import DECODE_WINDOW_OVERLAP, decode_video
from mgld_vsr.pipeline.sampling.loop import VideoLatents


def test_fitted_tiles_at_1080p_cover_the_frame_once_plus_the_overlap():
    # 1080p: a 136 x 244 latent (1088 x 1952 at the model), 96-px latent tiles (the node's 768 px), 8 px overlap.
    # Snapped 96-px tiles covered 2 x 96 = 192 rows and 3 x 96 = 288 columns (1.67x the area);
    # fitted ones take the same number of tiles, 2 of 72 rows (64 + 8) and 3 of 87 columns (overlaps 8, 9).
    assert fitted_origins(136, 96, 8) == (72, [0, 64])
    assert fitted_origins(244, 96, 8) == (87, [0, 79, 157])
    assert fitted_origins(60, 96, 8) == (60, [0])  # smaller than a tile: one tile, the side itself


@pytest.mark.parametrize("length", [9, 17, 64, 95, 96, 97, 136, 244, 272, 484, 1001])
@pytest.mark.parametrize("tile,overlap", [(96, 8), (64, 8), (16, 8), (33, 5)])
def test_fitted_tiles_are_the_fewest_and_share_the_side_evenly(length, tile, overlap):
    size, origins = fitted_origins(length, tile, overlap)
    assert size <= tile and origins[0] == 0 and origins[-1] + size == length
    covered = torch.zeros(length)
    for o in origins:
        covered[o:o + size] += 1
    assert (covered >= 1).all()
    for a, b in zip(origins, origins[1:]):
        assert a + size - b >= min(overlap, size - 1)  # neighbours share at least the overlap
    if length > tile:
        fewest = -(-(length - overlap) // (tile - overlap))
        assert len(origins) == fewest
        # the side once, the overlaps, and less than one pixel per tile of rounding
        assert len(origins) * size < length + (len(origins) - 1) * overlap + len(origins)


class CountingDecoder(torch.nn.Module):
    """A video VAE stand-in with spatial context (a 3x3 convolution over the upsampled latent) that counts work."""

    num_frames = 5

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)
        self.encoded = self.decoded = 0

    def encode(self, lr):
        self.encoded += lr.shape[0] * lr.shape[-2] * lr.shape[-1]
        return None, [lr]

    def decode(self, z, features, w):
        assert z.shape[0] % self.num_frames == 0
        self.decoded += z.shape[0] * z.shape[-2] * z.shape[-1]
        return torch.tanh(self.conv(torch.nn.functional.interpolate(z, scale_factor=8))) + w * 0 * features[0]


@pytest.mark.parametrize("tile", [0, 16])
def test_each_frame_is_decoded_once(tile):
    assert DECODE_WINDOW_OVERLAP == 0
    plan = LRPlan.create(64, 96, 4, min_short_side=256)  # a 32 x 48 latent
    n = 10  # two windows of 5
    g = torch.Generator().manual_seed(0)
    latents = VideoLatents(torch.randn(n, 4, *plan.latent_size, generator=g), plan, torch.zeros(n - 1, dtype=torch.bool))
    frames = torch.randint(0, 256, (n, 64, 96, 3), dtype=torch.uint8, generator=g)
    decoder = CountingDecoder()
    with torch.no_grad():
        out = decode_video(latents, frames, decoder, tile=tile, colorfix="none")
    assert out.shape == (n, 256, 384, 3) and torch.isfinite(out).all()
    h, w = plan.latent_size
    if tile == 0:
        assert decoder.decoded == n * h * w and decoder.encoded == n * 64 * h * w
    else:
        # fitted 16-px tiles with 8 px overlap: 3 x 5 tiles of 16 x 16 on 32 x 48 (each side: length + 8 per seam)
        assert decoder.decoded == n * (3 * 16) * (5 * 16)


def test_shared_decoder_frames_are_still_available():
    """Windows sharing frames (the old default) are blended as before when asked for."""
    plan = LRPlan.create(64, 96, 4, min_short_side=256)
    n = 8
    g = torch.Generator().manual_seed(1)
    latents = VideoLatents(torch.randn(n, 4, *plan.latent_size, generator=g), plan, torch.zeros(n - 1, dtype=torch.bool))
    frames = torch.randint(0, 256, (n, 64, 96, 3), dtype=torch.uint8, generator=g)
    decoder = CountingDecoder()
    with torch.no_grad():
        shared = decode_video(latents, frames, decoder, overlap=2, colorfix="none")
    h, w = plan.latent_size
    assert decoder.decoded == 10 * h * w  # windows 0-4 and 3-7
    with torch.no_grad():
        disjoint = decode_video(latents, frames, CountingDecoder(), colorfix="none")
    assert shared.shape == disjoint.shape
