"""Shifted partitions: disjoint tiles/windows whose borders move every step, each pixel/frame once."""
import pytest
import torch

from mgld_vsr.pipeline.sampling.partition import shifted_parts, shifted_tiles, step_shift
from mgld_vsr.pipeline.sampling.tiling import shifted_layout, shifted_tile_grid, stitch
from mgld_vsr.pipeline.sampling.windows import shifted_windows


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 9, 17, 31, 64])
@pytest.mark.parametrize("size", [2, 5, 8])
def test_parts_cover_once_with_sizes_in_range(length, size):
    low = -(-size // 2)
    for shift in range(size):
        parts = shifted_parts(length, size, shift)
        covered = [i for start, n in parts for i in range(start, start + n)]
        assert covered == list(range(length)), (length, size, shift, parts)
        if length >= low:
            assert all(low <= n <= size for _, n in parts), (length, size, shift, parts)


def test_cut_points_follow_the_shift():
    assert shifted_parts(20, 5, 0) == [(0, 5), (5, 5), (10, 5), (15, 5)]
    # inner cuts at 3 + 5k; the 2-frame tail joins its neighbour and the 7 are split 3 + 4
    assert shifted_parts(20, 5, 3) == [(0, 3), (3, 5), (8, 5), (13, 3), (16, 4)]
    # 1-frame head and tail join their neighbours; each 6 is split 3 + 3 to stay within 5
    assert shifted_parts(12, 5, 1) == [(0, 3), (3, 3), (6, 3), (9, 3)]


@pytest.mark.parametrize("length", [8, 60, 64, 68, 136, 244])
def test_latent_tiles_are_multiples_of_8_and_overlap_only_below_8(length):
    for step in range(12):
        tiles = shifted_tiles(length, 64, 8 * step_shift(step, 8, "x"))
        assert all(n % 8 == 0 and 8 <= n < 96 for _, n in tiles), tiles  # between tile/2 and 1.5 tile
        assert tiles[0][0] == 0 and sum(tiles[-1]) == length
        cover = torch.zeros(length)
        for start, n in tiles:
            cover[start:start + n] += 1
        assert cover.min() == 1
        if length % 8 == 0:
            assert cover.max() == 1
        else:  # the remainder is absorbed by sliding the last tile back by fewer than 8 pixels
            assert int((cover > 1).sum()) < 8


def test_borders_move_between_steps():
    borders = set()
    for step in range(8):
        tiles = shifted_tiles(136, 64, 8 * step_shift(step, 8, "y"))
        borders |= {start for start, _ in tiles[1:]}
    assert len(borders) >= 6  # no single border position persists through the steps
    starts = [tuple(w.frames[0] for w in shifted_windows(40, 5, step)) for step in range(6)]
    assert len(set(starts)) >= 3


def test_windows_cover_every_frame_once_and_respect_cuts():
    cuts = torch.zeros(29, dtype=torch.bool)
    cuts[11] = True  # a cut between frames 11 and 12
    for step in range(10):
        windows = shifted_windows(30, 5, step, cuts)
        frames = [f for w in windows for f in w.frames]
        assert sorted(frames) == list(range(30))
        for w in windows:
            assert 3 <= len(w.frames) <= 5
            assert not (min(w.frames) <= 11 < max(w.frames))


def test_short_shots_still_get_a_mirrored_full_window():
    (window,) = shifted_windows(3, 5, step=4)
    assert len(window.frames) == 5 and set(window.frames) == {0, 1, 2}
    assert sum(1 for w in window.weights if w > 0) == 3


def test_stitched_prediction_is_exact_for_a_pointwise_model_and_each_pixel_is_computed_once():
    x = torch.randn(5, 4, 40, 61)
    seen = torch.zeros(1, 1, 40, 61)

    def predict(origins, th, tw):
        out = []
        for y, xo in origins:
            seen[..., y:y + th, xo:xo + tw] += 1
            out.append(2 * x[..., y:y + th, xo:xo + tw] + 1)
        return out

    for step in range(4):
        seen.zero_()
        result = stitch(x, predict, shifted_layout(40, 61, 16, step), tiles_per_batch=3)
        torch.testing.assert_close(result, 2 * x + 1)
        assert seen.min() == 1 and int((seen > 1).sum()) < 8 * 40  # only the remainder columns twice


def test_tile_grid_uses_smaller_tiles_when_the_latent_is_smaller_than_a_tile():
    grid = shifted_tile_grid(40, 44, 64, step=0)
    assert all(th <= 40 and tw <= 44 and th % 8 == 0 and tw % 8 == 0 for _, _, th, tw in grid)
    assert all(y >= 0 and x >= 0 and y + th <= 40 and x + tw <= 44 for y, x, th, tw in grid)


def test_tiles_stay_inside_every_side_length():
    for length in range(8, 200):
        for step in range(6):
            tiles = shifted_tiles(length, 64, 8 * step_shift(step, 8, "y"))
            assert all(start >= 0 and start + n <= length for start, n in tiles), (length, step, tiles)
            assert tiles[0][0] == 0 and sum(tiles[-1]) == length
