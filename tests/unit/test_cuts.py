"""Shot boundaries -> guided pairs, window splits and interpolation behaviour, on cases with known answers.

The detector scores here are written by hand as a detector would give them for each case (a hard cut: one
frame whose single-frame score is high; a dissolve: a single-frame peak in its middle and many-hot scores
over its frames; ...), so what is tested is the derivation, not a network. The frames of the flash and
histogram cases are real photographs (scikit-image), moved as a camera would.
"""
from __future__ import annotations

import pytest
import torch

from mgld_vsr.pipeline.motion.cuts import (Boundary, DetectorScores, ManualEdits, decide, detect, find_shots,
                                           parse_manual)
from mgld_vsr.pipeline.sampling.plan import SamplingOptions, SamplingPlan
from mgld_vsr.pipeline.sampling.windows import plan_windows, shifted_windows

N = 40


def scores(single=None, many=None, n=N, step=0.02, skip=0.03, odd=()):
    """Detector scores of an n-frame clip: all quiet except the given ``{frame: score}``; ``odd`` frames differ
    from both neighbours while their neighbours match (a flash)."""
    s, m = torch.zeros(n), torch.zeros(n)
    for f, v in (single or {}).items():
        s[f] = v
    for f, v in (many or {}).items():
        m[f] = v
    step_diff, skip_diff = torch.full((n - 1,), step), torch.full((n - 2,), 0.3)
    skip_diff[:] = skip
    for f in odd:
        step_diff[f - 1] = step_diff[f] = 0.3
        skip_diff[f - 1] = 0.01
    return DetectorScores("transnetv2", s, m, step_diff, skip_diff)


def frames_of_windows(windows):
    return [set(w.frames) for w in windows]


def no_window_mixes(windows, groups):
    """No window holds frames of two different groups (a group: a shot, or a transition)."""
    label = {}
    for g, frames in enumerate(groups):
        for f in frames:
            label[f] = g
    return all(len({label[f] for f in w}) == 1 for w in frames_of_windows(windows))


def test_hard_cut_blocks_one_pair_and_splits_windows_there():
    shots = decide(scores({19: 0.97}, {19: 0.9}), 0.5)
    assert shots.boundaries == (Boundary("cut", 19, 19, pytest.approx(0.97)),)
    assert torch.nonzero(shots.blocked_pairs()).flatten().tolist() == [19]
    assert torch.nonzero(shots.window_cuts()).flatten().tolist() == [19]
    assert shots.pair_kinds()[19] == "cut" and shots.pair_kinds().count("motion") == N - 2
    for step in range(4):
        assert no_window_mixes(shifted_windows(N, 5, step, shots.window_cuts()), [range(0, 20), range(20, N)])


def test_same_colour_cut_is_a_cut_like_any_other():
    """What makes a same-colour cut hard is finding it (benchmarks/cuts.py); once found it is handled the same."""
    shots = decide(scores({9: 0.8}), 0.5)
    assert shots.boundaries[0].kind == "cut" and shots.window_cuts()[9] and shots.blocked_pairs().sum() == 1


def test_ten_frame_dissolve_belongs_to_neither_shot():
    # frames 15..24 are a blend; the single-frame head peaks in the middle, the many-hot head covers it,
    # sagging below the threshold (but above half of it) at the ends, as TransNetV2's does
    many = {15: 0.35, 16: 0.7, 17: 0.85, 18: 0.9, 19: 0.9, 20: 0.9, 21: 0.88, 22: 0.8, 23: 0.6, 24: 0.4}
    shots = decide(scores({19: 0.8, 20: 0.55}, many), 0.5)
    assert [(b.kind, b.first, b.last) for b in shots.boundaries] == [("transition", 15, 24)]
    blocked = torch.nonzero(shots.blocked_pairs()).flatten().tolist()
    assert blocked == list(range(14, 25))  # (14,15) .. (24,25): nothing guided into, inside or out of it
    assert torch.nonzero(shots.window_cuts()).flatten().tolist() == [14, 24]
    kinds = shots.pair_kinds()
    assert all(kinds[p] == "crossfade" for p in blocked) and kinds[13] == kinds[25] == "motion"
    groups = [range(0, 15), range(15, 25), range(25, N)]
    for step in range(4):
        assert no_window_mixes(shifted_windows(N, 5, step, shots.window_cuts()), groups)
    assert no_window_mixes(plan_windows(N, 5, 2, shots.window_cuts()), groups)


def test_fade_through_black_is_one_transition():
    # fade out 10..14 to black at 14, fade in 15..19; the many-hot score dips in the black middle
    many = {10: 0.5, 11: 0.55, 12: 0.6, 13: 0.45, 14: 0.4, 15: 0.38, 16: 0.8, 17: 0.7, 18: 0.6, 19: 0.3}
    shots = decide(scores({16: 0.52}, many), 0.5)
    assert [(b.kind, b.first, b.last) for b in shots.boundaries] == [("transition", 10, 19)]
    assert torch.nonzero(shots.window_cuts()).flatten().tolist() == [9, 19]


def test_one_frame_flash_disables_only_its_two_pairs_and_splits_nothing():
    # a detector fooled by the flash at frame 20 sees two cuts; frames 19 and 21 match, so it is a flash
    shots = decide(scores({19: 0.9, 20: 0.85}, odd=(20,)), 0.5)
    assert [(b.kind, b.first) for b in shots.boundaries] == [("flash", 20)]
    assert torch.nonzero(shots.blocked_pairs()).flatten().tolist() == [19, 20]
    assert not shots.window_cuts().any()
    assert shots.pair_kinds()[19] == shots.pair_kinds()[20] == "cut"


def test_two_real_cuts_one_frame_apart_are_not_a_flash():
    """A one-frame shot between two different shots: its neighbours do not match, so both cuts stay."""
    shots = decide(scores({19: 0.9, 20: 0.85}), 0.5)  # no odd frame: frames 19 and 21 differ
    assert [b.kind for b in shots.boundaries] == ["cut"]  # the two-frame run is one cut at its peak ...
    assert shots.boundaries[0].first == 19


def test_fast_pan_scores_below_the_threshold_mark_nothing():
    shots = decide(scores({k: 0.2 for k in range(5, 35)}, {k: 0.3 for k in range(5, 35)}, step=0.12), 0.5)
    assert shots.boundaries == () and not shots.blocked_pairs().any() and not shots.window_cuts().any()


def test_threshold_one_disables_and_rethresholding_keeps_manual_edits():
    raw = scores({10: 0.97, 30: 0.6})
    assert decide(raw, 1.0).boundaries == ()
    shots = decide(raw, 0.5, parse_manual("cut after: 5"))
    assert [b.first for b in shots.boundaries] == [5, 10, 30]
    assert [b.first for b in shots.with_threshold(0.7).boundaries] == [5, 10]


def test_sampling_plan_splits_windows_at_transitions_through_its_cuts_argument():
    shots = decide(scores({19: 0.8}, {k: 0.9 for k in range(15, 25)}), 0.5)
    plan = SamplingPlan.create(SamplingOptions(steps=4, tile=8), N, (8, 8), shots.window_cuts())
    for step in plan.steps:
        assert no_window_mixes(step.windows, [range(0, 15), range(15, 25), range(25, N)])


# ----------------------------------------------------------------------------------------- manual list


def test_manual_list_parses_the_documented_forms():
    edits = parse_manual("cut after: 47, 112; no cut: 80, 90-92\ntransition: 30-40")
    assert edits == ManualEdits(cut_after=(47, 112), no_cut=(80, 90, 91, 92), transitions=((30, 40),))
    assert parse_manual("").empty and parse_manual("  ;  ").empty and parse_manual(None).empty
    assert parse_manual("Cut After : 3").cut_after == (3,)


@pytest.mark.parametrize("text, part", [("cut at 4", "cut at 4"), ("cut after: x", "'x'"), ("no cut:", "names no frame"),
                                        ("transition: 5", "range of frames"), ("no cut: 9-3", "ends before"),
                                        ("cut after: 3-5", "single frames")])
def test_manual_list_errors_name_the_part_not_understood(text, part):
    with pytest.raises(ValueError, match="cut after: 47") as err:
        parse_manual(text)
    assert part in str(err.value) and "\n" not in str(err.value)


def test_manual_edits_add_remove_and_are_checked_against_the_clip():
    raw = scores({10: 0.97}, {k: 0.9 for k in range(20, 26)} | {}, n=N)
    raw = DetectorScores(raw.detector, raw.single.index_put_((torch.tensor([22]),), torch.tensor(0.8)), raw.many,
                         raw.step_diff, raw.skip_diff)
    detected = decide(raw, 0.5)
    assert [(b.kind, b.first) for b in detected.boundaries] == [("cut", 10), ("transition", 20)]
    edited = decide(raw, 0.5, parse_manual("no cut: 10, 19; cut after: 3; transition: 30-33"))
    assert [(b.kind, b.first, b.last, b.manual) for b in edited.boundaries] == [
        ("cut", 3, 3, True), ("transition", 30, 33, True)]
    with pytest.raises(ValueError, match="outside the clip"):
        decide(raw, 0.5, parse_manual("cut after: 39"))  # 40 frames: the last pair is after frame 38
    with pytest.raises(ValueError, match="outside the clip"):
        find_shots(torch.rand(5, 8, 8, 3), "none", 0.5, "transition: 2-7")


def test_detector_none_marks_only_manual_boundaries():
    shots = find_shots(torch.rand(12, 16, 16, 3), "none", 0.5, "cut after: 4")
    assert shots.detector == "none" and [(b.kind, b.first) for b in shots.boundaries] == [("cut", 4)]
    with pytest.raises(ValueError, match="transnetv2, histogram, none"):
        detect(torch.rand(3, 8, 8, 3), "magic")


# ----------------------------------------------------------------------------------------- real pictures


def _photo_pan(n, row=20, speed=2, size=(36, 64)):
    import numpy as np
    from skimage import data

    image = torch.from_numpy(np.ascontiguousarray(data.astronaut())).float() / 255
    h, w = size
    return torch.stack([image[row:row + 2 * h:2, i * speed:i * speed + 2 * w:2] for i in range(n)])


def test_histogram_detector_with_the_flash_test_recognises_a_real_flash():
    clip = _photo_pan(30)
    flashed = clip.clone()
    flashed[12] = clip[12] * 0.3 + 0.7  # a camera flash: one frame washed out
    shots = find_shots(flashed, "histogram", 0.5)
    assert [(b.kind, b.first) for b in shots.boundaries] == [("flash", 12)]
    assert not shots.window_cuts().any() and torch.nonzero(shots.blocked_pairs()).flatten().tolist() == [11, 12]
    assert find_shots(clip, "histogram", 0.5).boundaries == ()  # the same pan without the flash


def test_missing_transnet_falls_back_to_the_histogram_with_one_warning(monkeypatch):
    from mgld_vsr.models import transnet
    from mgld_vsr.pipeline.motion import cuts

    monkeypatch.setattr(transnet, "weights_path", lambda: None)
    monkeypatch.setattr(cuts, "_transnet_cache", {})
    monkeypatch.setattr(cuts, "_warned", set())
    clip = torch.cat([_photo_pan(8), torch.rand(8, 36, 64, 3)])
    with pytest.warns(RuntimeWarning, match="histogram detector instead"):
        shots = find_shots(clip, "transnetv2", 0.5)
    assert shots.detector == "histogram" and [b.first for b in shots.boundaries] == [7]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process, not per clip
        assert find_shots(clip, "transnetv2", 0.5).detector == "histogram"


def test_flow_node_refuses_a_bad_manual_list_in_one_line_before_work():
    from mgld_vsr.nodes.flow import MGLDFlow

    verdict = MGLDFlow.VALIDATE_INPUTS(scene_cut_threshold=0.5, devices="local", cut_detector="transnetv2",
                                       manual_cuts="cut after: 4; nope")
    assert isinstance(verdict, str) and "\n" not in verdict
    assert verdict.startswith("MGLD Flow + Occlusion: manual_cuts = 'cut after: 4; nope': ")
    assert "cut after: 47" in verdict  # the expected form
    assert MGLDFlow.VALIDATE_INPUTS(scene_cut_threshold=0.5, devices="local", cut_detector="transnetv2",
                                    manual_cuts="cut after: 4") is True
    with pytest.raises(ValueError, match="manual_cuts = 'cut after: 9'.*outside the clip"):
        MGLDFlow().compute(None, torch.rand(5, 16, 16, 3), 0.5, manual_cuts="cut after: 9")  # before RAFT is touched


# ----------------------------------------------------------------------------------------- interpolation


def test_interpolation_cross_fades_inside_a_transition_and_repeats_at_a_cut():
    from mgld_vsr.pipeline.motion.interpolation import interpolate_video

    class Source:  # no motion anywhere: pair 0 inside a dissolve, pair 1 a hard cut
        num_frames = 3

        def pair_kind(self, index, frame0, frame1):
            return ("crossfade", "cut")[index]

        def is_cut(self, index, frame0, frame1):
            return True

        def __call__(self, index, frame0, frame1):
            raise AssertionError("no motion may be synthesised across a transition or a cut")

    frames = torch.rand(3, 8, 12, 3)
    out = interpolate_video(frames, 4, Source())
    assert out.shape[0] == 3 + 2 * 3
    for k, tau in enumerate((0.25, 0.5, 0.75)):
        assert torch.allclose(out[1 + k], (1 - tau) * frames[0] + tau * frames[1], atol=1e-6)
    assert torch.equal(out[5], frames[1]) and torch.equal(out[6], frames[1]) and torch.equal(out[7], frames[2])


def test_clip_flow_motion_takes_the_kinds_from_the_flow_shots():
    from mgld_vsr.pipeline.motion.field import ClipFlow
    from mgld_vsr.pipeline.motion.pairs import ClipFlowMotion

    shots = decide(scores({5: 0.9, 20: 0.6}, n=30), 0.5)
    zeros = torch.zeros(29, 2, 4, 4)
    flow = ClipFlow(zeros, zeros, zeros[:1], zeros[:1], None, shots.blocked_pairs(), shots.pair_scores(), shots)
    motion = ClipFlowMotion(flow)
    assert [p for p in range(29) if motion.pair_kind(p, None, None) == "cut"] == [5, 20]
    higher = ClipFlowMotion(flow, cut_threshold=0.7)  # the interpolation node's own threshold re-decides
    assert [p for p in range(29) if higher.pair_kind(p, None, None) == "cut"] == [5]
    assert torch.equal(flow.window_cuts, shots.window_cuts())
