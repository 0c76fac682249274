"""The sampling plan (pipeline/sampling/plan.py): which steps blend tiles, where windows and tiles fall.

Every expected value here is worked out by hand from the rules the docstrings of plan.py, windows.py,
tiling.py and partition.py state (shares of the steps, overlaps as shares of the tile, cut points at
``shift + k * size``, end parts under half a part joining their neighbour), not read off the code's output.
"""
import dataclasses

import pytest
import torch

from mgld_vsr.pipeline.sampling import plan as plan_module
from mgld_vsr.pipeline.sampling.plan import SamplingOptions, SamplingPlan

LATENT = (64, 80)  # 8 x 10 units of 8 latent pixels


def make(steps=50, frames=12, latent=LATENT, cuts=None, **options):
    return SamplingPlan.create(SamplingOptions(steps=steps, **{"tile": 32, **options}), frames, latent, cuts)


def phases(plan):
    return [(step.phase, step.tiles.overlap) for step in plan.steps]


def cuts_after(frames, *after):
    """``cuts[i]`` is a cut between frames i and i+1."""
    cuts = torch.zeros(frames - 1, dtype=torch.bool)
    cuts[list(after)] = True
    return cuts


# ------------------------------------------------------------------------------------------------
# which steps blend tiles, and by how much


def test_fifty_steps_start_with_two_quarter_overlap_steps_and_end_with_four_half_overlap_steps():
    # "2 + 4 of 50 steps": 0.04 * 50 = 2 starting steps, 0.08 * 50 = 4 finishing steps.
    # Tile 32: the start overlaps by a quarter (8, whole 8-px units), the finish by half (16).
    plan = make(steps=50)
    assert len(plan.steps) == 50
    assert phases(plan) == [("blended", 8)] * 2 + [("shifted", None)] * 44 + [("blended", 16)] * 4


def test_thirteen_steps_one_starting_and_two_finishing():
    # start: 0.04 * 13 = 0.52 rounds to 1 ("none below 13 steps"); finish: 0.08 * 13 = 1.04 rounds up to 2
    # (the quality benchmark's "two finishing steps of 13").
    plan = make(steps=13)
    assert phases(plan) == [("blended", 8)] + [("shifted", None)] * 10 + [("blended", 16)] * 2


@pytest.mark.parametrize("steps,start,finish", [
    (1, 0, 1),     # 0.54 -> 0; ceil(0.08) = 1: the finish always has at least one step
    (3, 0, 1),     # 0.62 -> 0; ceil(0.24) = 1
    (12, 0, 1),    # 0.98 -> 0; ceil(0.96) = 1
    (20, 1, 2),    # 1.3 -> 1; ceil(1.6) = 2
    (100, 4, 8),   # 4.5 -> 4; ceil(8) = 8
])
def test_starting_and_finishing_step_counts(steps, start, finish):
    plan = make(steps=steps)
    assert phases(plan) == [("blended", 8)] * start + [("shifted", None)] * (steps - start - finish) + [("blended", 16)] * finish


def test_finishing_wins_when_the_shares_overlap():
    # start 0.6 of 5 steps = 3, finish 0.6 of 5 = 3: steps 2, 3, 4 finish, so only 0 and 1 start.
    plan = make(steps=5, start_fraction=0.6, finish_fraction=0.6)
    assert phases(plan) == [("blended", 8)] * 2 + [("blended", 16)] * 3


def test_zero_shares_shift_every_step():
    assert phases(make(steps=10, start_fraction=0, finish_fraction=0)) == [("shifted", None)] * 10


@pytest.mark.parametrize("tile,start,finish", [(8, 8, 4), (16, 8, 8), (40, 8, 20), (64, 16, 32)])
def test_overlaps_follow_the_tile(tile, start, finish):
    # start: a quarter of the tile in whole 8-px units, at least 8; finish: half the tile
    plan = make(steps=50, tile=tile)
    assert plan.steps[0].tiles.overlap == start and plan.steps[1].tiles.overlap == start
    assert plan.steps[2].tiles.overlap is None
    assert {step.tiles.overlap for step in plan.steps[-4:]} == {finish}


def test_a_tile_overlap_blends_every_step_with_it():
    plan = make(steps=13, tile_overlap=8)
    assert phases(plan) == [("blended", 8)] * 13
    first = plan.steps[0].tiles.tiles
    assert all(step.tiles.tiles == first for step in plan.steps)  # the fixed grid: nothing moves


def test_the_blended_grids_on_a_64x80_latent():
    # 32-px tiles every tile - overlap, the last flush with the end, visited column by column.
    plan = make(steps=50)
    # start (overlap 8, stride 24): rows 0, 24, then 32 flush with 64; columns 0, 24, then 48 flush with 80
    assert plan.steps[0].tiles.tiles == tuple((y, x, 32, 32) for x in (0, 24, 48) for y in (0, 24, 32))
    # finish (overlap 16, stride 16): rows 0, 16, 32; columns 0, 16, 32, 48
    assert plan.steps[-1].tiles.tiles == tuple((y, x, 32, 32) for x in (0, 16, 32, 48) for y in (0, 16, 32))


# ------------------------------------------------------------------------------------------------
# shifted tiles


@pytest.mark.parametrize("latent,tile", [(LATENT, 32), ((40, 48), 16), ((64, 64), 64), ((56, 120), 24)])
def test_shifted_tiles_cover_the_latent_exactly_once_and_move_every_step(latent, tile):
    plan = make(steps=20, latent=latent, tile=tile)
    shifted = [step for step in plan.steps if step.phase == "shifted"]
    assert len(shifted) == 17
    for step in shifted:
        cover = torch.zeros(latent, dtype=torch.int64)
        for y, x, th, tw in step.tiles.tiles:
            assert th % 8 == 0 and tw % 8 == 0 and th >= min(tile, latent[0]) // 2 and tw >= min(tile, latent[1]) // 2
            cover[y:y + th, x:x + tw] += 1
        assert bool((cover == 1).all()), step.index
    layouts = [step.tiles.tiles for step in shifted]
    if tile < min(latent):
        assert len(set(layouts)) > 1
    if 24 <= tile < min(latent):
        # the y cut offset advances by 0.618 of a part a step (+1.85 or -1.15 of 3 units, +2.5 or -1.5 of 4):
        # always into another unit, so no two steps in a row share a layout
        assert all(a != b for a, b in zip(layouts[:-1], layouts[1:]))


def test_the_first_shifted_step_cuts_at_whole_tiles():
    # step 0 (no starting steps with 3 steps) has no shift: rows cut at 32 (two tiles), columns at 32 and 64,
    # whose 16-px end part is half a tile, not shorter, so it stays a tile of its own.
    plan = make(steps=3)
    assert plan.steps[0].phase == "shifted"
    assert plan.steps[0].tiles.tiles == ((0, 0, 32, 32), (32, 0, 32, 32), (0, 32, 32, 32), (32, 32, 32, 32),
                                         (0, 64, 32, 16), (32, 64, 32, 16))


def test_a_side_that_is_not_a_multiple_of_8_is_covered_with_less_than_8_px_of_overlap():
    plan = make(steps=12, latent=(61, 83))
    for step in plan.steps:
        if step.phase != "shifted":
            continue
        for side, parts in ((61, {(y, th) for y, _, th, _ in step.tiles.tiles}),
                            (83, {(x, tw) for _, x, _, tw in step.tiles.tiles})):
            cover = torch.zeros(side, dtype=torch.int64)
            for start, size in parts:
                assert size % 8 == 0
                cover[start:start + size] += 1
            assert cover.min() == 1 and cover.max() == 2  # the last tile ends at the side, sliding back
            assert 0 < int((cover == 2).sum()) < 8, (step.index, side, sorted(parts))


# ------------------------------------------------------------------------------------------------
# windows


def frame_weights(step, frames):
    weight = torch.zeros(frames)
    for window in step.windows:
        for f, w in zip(window.frames, window.weights):
            weight[f] += w
    return weight


@pytest.mark.parametrize("frames,after", [(12, ()), (12, (6,)), (17, (2, 9)), (3, ()), (9, (0, 7))])
@pytest.mark.parametrize("extra", [{}, {"window_overlap": 2}, {"finish_window_overlap": 1}])
def test_every_step_weights_every_frame_and_no_window_crosses_a_cut(frames, after, extra):
    cuts = cuts_after(frames, *after)
    shot_of = torch.cat([torch.zeros(1, dtype=torch.int64), cuts.long().cumsum(0)])
    plan = make(steps=13, frames=frames, cuts=cuts, **extra)
    for step in plan.steps:
        assert bool((frame_weights(step, frames) > 0).all()), step.index
        for window in step.windows:
            assert len({int(shot_of[f]) for f in window.frames}) == 1, (step.index, window)


def test_shifted_windows_split_each_shot_without_overlap():
    # Step 0, window 5, a cut after frame 6: shot 0..6 is cut at 5, its 2-frame end joins the part before
    # (7 frames) and is split 3 + 4; shot 7..11 is one window.
    plan = make(steps=13, frames=12, cuts=cuts_after(12, 6))
    assert [w.frames for w in plan.steps[0].windows] == [(0, 1, 2), (3, 4, 5, 6), (7, 8, 9, 10, 11)]
    for step in plan.steps:
        assert sorted(f for w in step.windows for f in w.frames) == list(range(12))  # each frame once a step
        assert all(set(w.weights) == {1.0} for w in step.windows)
    assert len({tuple(w.frames for w in step.windows) for step in plan.steps}) > 1  # the borders move


def test_a_shot_shorter_than_a_window_is_mirrored_with_repeats_unweighted():
    plan = make(steps=3, frames=3)
    for step in plan.steps:
        assert [(w.frames, w.weights) for w in step.windows] == [((0, 1, 2, 1, 0), (1.0, 2.0, 3.0, 0.0, 0.0))]


def test_a_window_overlap_fixes_the_windows_every_step():
    # 12 frames, windows of 5 overlapping by 2: starts 0, 3, 6 and the last flush at 7, triangular weights.
    plan = make(steps=13, frames=12, window_overlap=2)
    expected = [tuple(range(s, s + 5)) for s in (0, 3, 6, 7)]
    for step in plan.steps:
        assert [w.frames for w in step.windows] == expected
        assert all(w.weights == (1.0, 2.0, 3.0, 2.0, 1.0) for w in step.windows)
    assert plan.window_visits == 13 * 4


def test_a_finishing_window_overlap_shares_frames_only_in_the_finishing_steps():
    plan = make(steps=13, frames=12, finish_window_overlap=2)
    shared = [tuple(range(s, s + 5)) for s in (0, 3, 6, 7)]
    for step in plan.steps[:-2]:
        assert sorted(f for w in step.windows for f in w.frames) == list(range(12))
    for step in plan.steps[-2:]:
        assert [w.frames for w in step.windows] == shared


# ------------------------------------------------------------------------------------------------
# the plan as a whole


def test_steps_walk_the_respaced_schedule_from_noisiest_to_clean():
    plan = make(steps=50)
    assert [step.index for step in plan.steps] == list(range(50))
    assert [step.j for step in plan.steps] == list(range(49, -1, -1))
    # 50 of 1000 timesteps kept evenly from 0 to 999: the first step sees 999, the last 0, always descending
    t = [step.t_model for step in plan.steps]
    assert t[0] == 999 and t[-1] == 0 and all(a > b for a, b in zip(t[:-1], t[1:]))


def test_window_visits_is_the_number_of_windows_over_all_steps():
    plan = make(steps=13, frames=17, cuts=cuts_after(17, 2, 9))
    assert plan.window_visits == sum(len(step.windows) for step in plan.steps)
    # shots of 3, 7 and 7 frames: the 3-frame shot is one mirrored window at every step, the 7-frame shots
    # two disjoint windows each (3 to 5 frames): 5 windows a step
    assert all(len(step.windows) == 5 for step in plan.steps)
    assert plan.window_visits == 13 * 5


def test_with_options_keeps_the_windows_and_changes_the_tiles():
    cuts = cuts_after(12, 6)
    plan = make(steps=13, frames=12, cuts=cuts)
    smaller = plan.with_options(dataclasses.replace(plan.options, tile=16))
    assert smaller.num_frames == 12 and smaller.latent_size == LATENT and torch.equal(smaller.cuts, cuts)
    assert [step.windows for step in smaller.steps] == [step.windows for step in plan.steps]
    assert [step.t_model for step in smaller.steps] == [step.t_model for step in plan.steps]
    assert all(a.tiles != b.tiles for a, b in zip(plan.steps, smaller.steps))
    # Step 8 cuts the 8 row units at 3 + 4k (3 | 4 | 1) and the 10 column units at 1 + 4k (1 | 4 | 4 | 1): the
    # 1-unit end parts join their neighbours, so a 40x40 tile (5 units a side); no part may exceed 5 units.
    assert plan.largest_tile() == (40, 40)
    # 16-px tiles: parts of 1 or 2 units, never more
    assert smaller.largest_tile() == (16, 16)


@pytest.mark.parametrize("bad", [
    dict(steps=0), dict(steps=1001), dict(strength=-1.0), dict(strength=float("inf")), dict(strength=float("nan")),
    dict(window=1), dict(window_overlap=5), dict(window_overlap=-1), dict(tile=12), dict(tile=0), dict(tile=96),
    dict(tile_overlap=32), dict(tile_overlap=-8), dict(tiles_per_batch=0), dict(memory_budget_gb=-1.0),
    dict(start_fraction=-0.1), dict(finish_fraction=1.5), dict(finish_window_overlap=5),
])
def test_invalid_options_are_refused_before_any_work(monkeypatch, bad):
    def no_work(*args, **kwargs):
        raise AssertionError("planned steps for invalid options")

    for name in ("respaced_schedule", "windows_at", "tile_layout_at"):
        monkeypatch.setattr(plan_module, name, no_work)  # spies: none may run
    options = dict(bad)
    with pytest.raises(ValueError):
        make(steps=options.pop("steps", 13), **options)
