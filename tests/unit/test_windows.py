"""Temporal window planning: coverage, blending weights, shots and mirrored padding."""
import pytest
import torch

from mgld_vsr.pipeline.sampling.windows import mirrored, official_segments, plan_windows, shots, window_starts


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 13, 31])
@pytest.mark.parametrize("window,overlap", [(5, 2), (5, 0), (5, 4), (3, 1), (8, 3)])
def test_every_frame_gets_weight_and_windows_have_full_length(n, window, overlap):
    plan = plan_windows(n, window, overlap)
    weight = torch.zeros(n)
    for w in plan:
        assert len(w.frames) == window
        assert all(0 <= f < n for f in w.frames)
        for f, wt in zip(w.frames, w.weights):
            weight[f] += wt
    assert (weight > 0).all()


def test_overlapping_windows_share_frames_and_end_flush():
    plan = plan_windows(13, 5, 2)
    assert [w.frames[0] for w in plan] == [0, 3, 6, 8]
    assert plan[-1].frames[-1] == 12
    assert window_starts(13, 5, 2) == [0, 3, 6, 8]
    assert plan[0].weights == (1.0, 2.0, 3.0, 2.0, 1.0)


def test_short_clips_are_mirrored_and_repeats_carry_no_weight():
    assert mirrored(3, 5) == [0, 1, 2, 1, 0]
    assert mirrored(2, 5) == [0, 1, 0, 1, 0]
    assert mirrored(1, 5) == [0, 0, 0, 0, 0]
    (w,) = plan_windows(3, 5, 2)
    assert w.frames == (0, 1, 2, 1, 0)
    assert w.weights == (1.0, 2.0, 3.0, 0.0, 0.0)


def test_windows_restart_at_scene_cuts():
    cuts = torch.zeros(11, dtype=torch.bool)
    cuts[5] = True  # between frames 5 and 6
    assert shots(12, cuts) == [(0, 6), (6, 12)]
    for w in plan_windows(12, 5, 2, cuts):
        assert max(w.frames) <= 5 or min(w.frames) >= 6
    # a two-frame shot between cuts is padded from its own frames only
    cuts = torch.tensor([False, True, False, True, False])
    assert plan_windows(6, 5, 2, cuts)[1].frames == (2, 3, 2, 3, 2)


def test_official_segments_repeat_the_last_frame():
    assert official_segments(7) == [[0, 1, 2, 3, 4], [5, 6, 6, 6, 6]]
    assert official_segments(5) == [[0, 1, 2, 3, 4]]


def test_bad_window_parameters():
    with pytest.raises(ValueError, match="at least 2"):
        plan_windows(5, 1, 0)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(5, 5, 5)
    with pytest.raises(ValueError, match="at least one frame"):
        plan_windows(0)
