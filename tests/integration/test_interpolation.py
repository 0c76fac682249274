"""Frame interpolation against scenes whose true in-between frames are known.

Scenes are rendered from continuous functions, so the frame at any time tau is known exactly: a
band-limited texture translating by a sub-pixel velocity, and a textured square moving over a
textured background (a revealed and a covered region). Flows given are the true ones; the
occlusion masks are the pack's own consistency check of those flows.
"""
import math
from fractions import Fraction

import pytest
import torch

import mgld_vsr
from mgld_vsr.runner import graph as headless
from mgld_vsr.pipeline import video_io
from mgld_vsr.pipeline.motion.flow_ops import forward_splat
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.interpolation import (interpolate_frames, interpolate_pair, interpolate_video,
                                                    interpolated_count, interpolated_fps, linear_intermediate_flows,
                                                    synthesize)
from mgld_vsr.pipeline.motion.field import ClipFlow
from mgld_vsr.pipeline.motion.pairs import ClipFlowMotion, PairMotion, RAFTMotion, raft_working_size
from interpolation_scenes import square_flows, square_scene, waves

NODES = mgld_vsr.NODE_CLASS_MAPPINGS


def _fixture_network(prefix, name):
    from golden_lib import default_golden_dir
    from weights_index import weights_file_with_prefix
    from mgld_vsr.models.loader import load_component

    return load_component(weights_file_with_prefix(default_golden_dir() / "weights", prefix), name)


@pytest.fixture(scope="module")
def raft():
    return _fixture_network("module.", "raft")


@pytest.fixture(scope="module")
def video_vae():
    return _fixture_network("decoder.", "video_vae")


def psnr(a, b):
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


def constant_flow(h, w, u, v):
    flow = torch.empty(1, 2, h, w)
    flow[:, 0], flow[:, 1] = u, v
    return flow


# ------------------------------------------------------------------------------ pair synthesis

@pytest.mark.parametrize("velocity", [(3.3, -1.7), (-5.6, 2.45)])
def test_translation_by_a_sub_pixel_velocity_lands_on_the_midpoint(velocity):
    h, w, (u, v) = 72, 96, velocity
    frame0, frame1, truth = waves(h, w, 0, 0), waves(h, w, u, v), waves(h, w, u / 2, v / 2)
    motion = PairMotion.from_flows(constant_flow(h, w, u, v), constant_flow(h, w, -u, -v))
    middle = synthesize(frame0, frame1, motion, 0.5)
    inner = (..., slice(8, -8), slice(8, -8))  # away from the borders, where content enters and leaves
    assert psnr(middle[inner], truth[inner]) >= 35
    assert psnr(((frame0 + frame1) / 2)[inner], truth[inner]) < 32  # a plain cross-fade is visibly wrong
    for k, frame in enumerate(interpolate_pair(frame0, frame1, motion, 4), start=1):  # and at 1/4, 2/4, 3/4
        assert psnr(frame[inner], waves(h, w, u * k / 4, v * k / 4)[inner]) >= 35


def _square_motion():
    return PairMotion.from_flows(*square_flows())


def test_occluding_object_takes_each_region_from_the_frame_that_sees_it():
    frame0, frame1 = square_scene(0), square_scene(1)
    motion = _square_motion()
    # The consistency check marks what the square uncovers (frame 1) and what it is about to cover (frame 0).
    assert motion.occlusion_1[0, 0, 21:43, 29:35].min() == 1 and motion.occlusion_0[0, 0, 21:43, 53:59].min() == 1
    for k, frame in enumerate(interpolate_pair(frame0, frame1, motion, 4), start=1):
        truth, tau = square_scene(k / 4), k / 4
        naive = (1 - tau) * frame0 + tau * frame1
        revealed = (..., slice(20, 44), slice(28, 28 + 2 * k))  # background the square has uncovered: frame 1 only
        covered = (..., slice(20, 44), slice(52 + 2 * k, 60))  # background it is about to cover: frame 0 only
        for region in (revealed, covered):
            error, naive_error = (frame - truth)[region].abs().mean(), (naive - truth)[region].abs().mean()
            assert naive_error > 0.05 and error < 0.05 * naive_error, (k, float(error), float(naive_error))
        assert psnr(frame, truth) > 40


def test_splatted_flows_beat_the_linear_approximation_at_motion_edges():
    """Super SloMo's linear flow combination assumes the flow at a pixel is the same at times 0, t and 1: at the
    square's edges it sends pixels to the wrong place; the splatted flows do not."""
    frame0, frame1, truth = square_scene(0), square_scene(1), square_scene(0.5)
    motion = _square_motion()
    ours = synthesize(frame0, frame1, motion, 0.5)
    from mgld_vsr.pipeline.motion import interpolation

    flow_t0, flow_t1 = linear_intermediate_flows(motion, 0.5)
    from mgld_vsr.pipeline.motion.flow_ops import flow_warp

    linear = 0.5 * flow_warp(frame0, flow_t0) + 0.5 * flow_warp(frame1, flow_t1)
    assert (linear - truth).abs().mean() > 10 * (ours - truth).abs().mean()
    assert interpolation.OCCLUDED_SPLAT_WEIGHT < 1 / 8  # below the smallest blend weight (m = 8)


def test_forward_splat_moves_values_and_reports_holes():
    values = torch.arange(12.0).view(1, 1, 3, 4)
    shifted, weight, coverage = forward_splat(values, constant_flow(3, 4, 1.0, 0.0), torch.ones(1, 1, 3, 4))
    assert torch.equal(shifted[0, 0, :, 1:], values[0, 0, :, :3]) and shifted[0, 0, :, 0].abs().max() == 0
    assert torch.equal(coverage[0, 0, :, 0], torch.zeros(3))  # nothing lands in the first column: a hole
    half, weight, _ = forward_splat(values, constant_flow(3, 4, 0.5, 0.0), torch.full((1, 1, 3, 4), 2.0))
    assert torch.allclose(half[0, 0, 0], torch.tensor([0.0, 1.0, 3.0, 5.0]))  # bilinear halves, times the weight 2
    assert torch.allclose(weight[0, 0, 0], torch.tensor([1.0, 2.0, 2.0, 2.0]))


# ------------------------------------------------------------------------------ cuts, counts, fps

class ExactMotion:
    """The flows of a clip of constant velocity, with cuts where told (a test's stand-in for RAFT)."""

    def __init__(self, velocity=(0.0, 0.0), cuts=(), num_frames=None):
        self.velocity, self.cuts, self.num_frames, self.asked = velocity, set(cuts), num_frames, []

    def is_cut(self, index, frame0, frame1):
        return index in self.cuts

    def native_flows(self, index, frame0, frame1):
        h, w = frame0.shape[-2:]
        u, v = self.velocity
        return constant_flow(h, w, u, v), constant_flow(h, w, -u, -v)

    def __call__(self, index, frame0, frame1):
        self.asked.append(index)
        return PairMotion.from_flows(*self.native_flows(index, frame0, frame1))


def _two_shots():
    red = torch.zeros(2, 40, 48, 3)
    red[..., 0] = torch.linspace(0.5, 1, 48)
    blue = torch.zeros(2, 40, 48, 3)
    blue[..., 2] = torch.linspace(1, 0.4, 48)
    return torch.cat([red, blue])  # frames 1 and 2 are on either side of a cut


@pytest.mark.parametrize("multiplier", [2, 3, 4])
def test_a_scene_cut_inserts_repeats_of_the_nearer_frame_never_a_blend(multiplier):
    frames = _two_shots()
    motion = ExactMotion(cuts={1})
    out = interpolate_video(frames, multiplier, motion)
    m = multiplier
    for k in range(1, m):
        nearer = frames[1] if k / m <= 0.5 else frames[2]
        assert torch.equal(out[m + k], nearer), k
    assert motion.asked == [0, 2]  # no motion is even computed across the cut
    assert not torch.equal(interpolate_video(frames, m, ExactMotion())[m + 1], frames[1])  # without the cut: blended


class TranslationRAFT(torch.nn.Module):
    """A stand-in for RAFT on clips that only move sideways: the best whole-pixel shift, as a constant flow.

    RAFT itself (the fixture's is full size) takes tens of seconds per pair on the test machines; what these
    tests check is what is done with its flows.
    """

    def __init__(self, search=10):
        super().__init__()
        self.search, self.pairs = search, 0

    def forward(self, image1, image2):
        self.pairs += image1.shape[0]
        r, w = self.search, image1.shape[-1]
        flows = torch.zeros(image1.shape[0], 2, *image1.shape[-2:])
        for k, (a, b) in enumerate(zip(image1, image2)):  # image2 at p + shift shows what image1 shows at p
            errors = [float((b[..., r + s:w - r + s] - a[..., r:w - r]).abs().mean()) for s in range(-r, r + 1)]
            flows[k, 0] = errors.index(min(errors)) - r
        return flows


def test_cut_detection_uses_the_threshold_like_the_flow_node():
    frames = _two_shots()
    raft = TranslationRAFT()
    out = interpolate_video(frames, 2, RAFTMotion(raft, 128, cut_threshold=0.5))
    assert torch.equal(out[3], frames[1]) and raft.pairs == 2 * 2  # RAFT both ways on pairs 0 and 2 only
    blended = interpolate_video(frames, 2, RAFTMotion(raft, 128, cut_threshold=1.0))  # 1 disables, as in the flow node
    assert not torch.equal(blended[3], frames[1]) and not torch.equal(blended[3], frames[2])


def _still_flow(frames: int, cut_scores=None):
    """The flow node's output for an LR clip of 16x16 frames (64x64 output) without motion."""
    plan = LRPlan.create(16, 16, 4.0, min_short_side=64)
    pairs = max(frames - 1, 0)
    zeros = torch.zeros(pairs, 2, *plan.flow_size)
    scores = torch.zeros(pairs) if cut_scores is None else torch.tensor(cut_scores)
    return ClipFlow(zeros, zeros.clone(), torch.zeros(1, 2, *plan.flow_size), torch.zeros(1, 2, *plan.flow_size),
                    plan, scores > 0.5, scores)


@pytest.mark.parametrize("n", [1, 2, 5, 13])
@pytest.mark.parametrize("multiplier", [2, 3, 4])
def test_frame_counts_fps_and_audio_through_the_node(n, multiplier):
    frames = torch.rand(n, 64, 64, 3, generator=torch.Generator().manual_seed(n))
    audio = {"waveform": torch.randn(1, 2, 48000 * n // 30), "sample_rate": 48000}
    waveform = audio["waveform"].clone()
    out, fps, audio_out = NODES["MGLDInterpolateFrames"]().interpolate(frames, 30000 / 1001, multiplier, 0.5, 540,
                                                                       audio=audio, flow=_still_flow(n))
    expected = n + (multiplier - 1) * (n - 1)
    assert out.shape == (expected, 64, 64, 3) == (interpolated_count(n, multiplier), 64, 64, 3)
    assert video_io.to_fraction(fps) == Fraction(30000 * multiplier, 1001)  # 29.97 x 2 is 60000/1001, exactly
    assert interpolated_fps(30000 / 1001, multiplier) == Fraction(30000 * multiplier, 1001)
    assert torch.equal(out[::multiplier], frames)  # the known frames, untouched, every m-th
    assert audio_out["sample_rate"] == 48000 and torch.equal(audio_out["waveform"], waveform)  # same duration


def test_node_refuses_missing_or_foreign_motion_before_any_work():
    node = NODES["MGLDInterpolateFrames"]()
    frames = torch.rand(4, 64, 64, 3)
    with pytest.raises(ValueError, match="MGLD Interpolate Frames: no motion.*connect flow"):
        node.interpolate(frames, 24.0, 2, 0.5, 540)
    with pytest.raises(ValueError, match="MGLD Interpolate Frames: the flow covers 5 frames but the clip has 4.*RAFT"):
        node.interpolate(frames, 24.0, 2, 0.5, 540, flow=_still_flow(5))
    with pytest.raises(ValueError, match="from 1 to 8"):
        node.interpolate(frames, 24.0, 9, 0.5, 540, flow=_still_flow(4))


def test_node_with_raft_on_frames_of_any_size(raft):
    frames = torch.cat([waves(100, 150, 0, 0), waves(100, 150, 2.5, 1)]).permute(0, 2, 3, 1)
    assert raft_working_size(100, 150, 540) == (128, 192)  # never below RAFT's minimum side
    assert raft_working_size(1080, 1920, 540) == (540, 960)
    out, fps, audio = NODES["MGLDInterpolateFrames"]().interpolate(frames, 24.0, 3, 0.5, 540, raft=raft)
    assert out.shape == (4, 100, 150, 3) and fps == 72.0 and audio is None
    assert torch.equal(out[0], frames[0]) and torch.equal(out[3], frames[1])
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_streaming_holds_one_pair_and_yields_frames_as_they_arrive():
    events = []

    def source():
        for i in range(4):
            events.append(("in", i))
            yield waves(24, 32, 2 * i, 0)[0].permute(1, 2, 0)

    for frame in interpolate_frames(source(), 3, ExactMotion((2.0, 0.0))):
        events.append(("out", tuple(frame.shape)))
    ins = [i for i, e in enumerate(events) if e[0] == "in"]
    outs = [i for i, e in enumerate(events) if e[0] == "out"]
    assert len(outs) == 10 and outs[0] < ins[2]  # frames leave before the next input is read
    # at most the pair in hand: input i+2 is read only after everything up to input i+1 has been handed on
    for i in range(2, 4):
        assert sum(1 for j in outs if j < ins[i]) == 3 * (i - 1)


# ------------------------------------------------------------------------------ metric

def test_warping_error_on_the_interpolated_clip():
    from mgld_vsr.pipeline.motion.warping_error import warping_errors

    frames = torch.stack([waves(128, 128, 6.0 * i, 0)[0].permute(1, 2, 0) for i in range(3)])
    doubled = interpolate_video(frames, 2, ExactMotion((6.0, 0.0)))
    faded = doubled.clone()
    faded[1::2] = (frames[:-1] + frames[1:]) / 2  # what a frame blend inserts
    # measured with the motion of the doubled clip (half the original per frame), pair by pair
    good, bad = warping_errors(doubled, ExactMotion((3.0, 0.0))), warping_errors(faded, ExactMotion((3.0, 0.0)))
    assert good.shape == bad.shape == (4,) and good.max() < 0.01 and bad.min() > 3 * good.max()
    # the node measures a clip of another length than the LR flow's with RAFT on the frames themselves
    metric = NODES["MGLDWarpingError"]()
    error, plot, _ = metric.measure(doubled, raft=TranslationRAFT(), frames_b=faded)["result"]
    error_b, _, _ = metric.measure(faded, raft=TranslationRAFT())["result"]
    assert plot.shape == (1, 256, 512, 3)
    assert error == pytest.approx(float(good.mean()) * 1000, abs=1e-3) and error_b > 3 * error + 10
    with pytest.raises(ValueError, match="flow covers 3 frames but frames has 5: connect raft"):
        metric.measure(doubled, flow=_still_flow(3))


# ------------------------------------------------------------------------------ headless fusion

def _api(name):
    from golden_lib import REPO_ROOT

    return headless.to_api(headless.load_workflow(str(REPO_ROOT / "example_workflows" / name)), NODES)


def test_runner_streams_decode_interpolate_save_as_one_node():
    api = _api("mgld_vsr_x4_fps_x2.json")
    interpolate = next(n for n in api.values() if n["class_type"] == "MGLDInterpolateFrames")
    load = next(i for i, n in api.items() if n["class_type"] == "MGLDLoadVideo")
    flow = next(i for i, n in api.items() if n["class_type"] == "MGLDFlow")
    save = next(i for i, n in api.items() if n["class_type"] == "MGLDSaveVideo")
    assert headless.stream_to_file(api, NODES) == [save]
    merged = api[save]
    assert merged["class_type"] == "MGLDDecodeAndSave"
    assert {n["class_type"] for n in api.values()} == {"MGLDDiffusionModelLoader", "MGLDVideoVAELoader", "MGLDRAFTLoader",
                                                      "MGLDLoadVideo", "MGLDFlow", "MGLDSampler", "MGLDDecodeAndSave"}
    # the fps and audio that went into the interpolation (the loader's), its settings and its flow
    assert merged["inputs"]["fps"] == [load, 1] and merged["inputs"]["audio"] == [load, 2]
    assert merged["inputs"]["flow"] == [flow, 0] and merged["inputs"]["multiplier"] == interpolate["inputs"]["multiplier"]
    assert merged["inputs"]["scene_cut_threshold"] == interpolate["inputs"]["scene_cut_threshold"]


def test_runner_keeps_the_interpolation_apart_when_its_outputs_go_elsewhere():
    api = _api("mgld_vsr_x4_fps_x2.json")
    interpolate = next(i for i, n in api.items() if n["class_type"] == "MGLDInterpolateFrames")
    load = next(i for i, n in api.items() if n["class_type"] == "MGLDLoadVideo")
    save = next(i for i, n in api.items() if n["class_type"] == "MGLDSaveVideo")
    api[save]["inputs"]["fps"] = [load, 1]  # saved at the original rate (slow motion): not what the merged node writes
    assert headless.stream_to_file(api, NODES) == []
    api = _api("mgld_vsr_x4_fps_x2.json")
    api["99"] = {"class_type": "MGLDWarpingError", "title": "metric", "inputs": {"frames": [interpolate, 0]}}
    assert headless.stream_to_file(api, NODES) == []


# ------------------------------------------------------------------------------ long videos: interpolated as written

def test_decode_and_save_with_a_multiplier_writes_what_the_three_nodes_write(video_vae, tmp_path, monkeypatch):
    """MGLD Decode + Save Video with multiplier 2 = Decode -> Interpolate Frames -> Save, pixel for pixel (FFV1),
    at exactly twice the fps, with the audio; the decoder's frames reach the file while it is still decoding."""
    from mgld_vsr.nodes import stream
    from mgld_vsr.pipeline.sampling.loop import VideoLatents

    monkeypatch.setenv("MGLD_HOME", str(tmp_path))
    n = 7  # two decoder windows
    g = torch.Generator().manual_seed(5)
    plan = LRPlan.create(16, 16, 4.0, min_short_side=64)
    latents = torch.randn(n, 4, *plan.latent_size, generator=g)
    latent = VideoLatents(latents, plan, torch.zeros(n - 1, dtype=torch.bool))  # an MGLD_LATENT
    lr = torch.rand(n, 16, 16, 3, generator=g)
    flow = _still_flow(n, cut_scores=[0, 0, 0.9, 0, 0, 0])  # a cut after frame 2
    pairs = flow.flows_backward.shape[0]
    flow.flows_backward[:] = torch.randn(pairs, 2, 1, 1, generator=g)  # a different pan per pair
    flow.flows_forward[:] = -flow.flows_backward
    t = torch.arange(48000) / 48000
    audio = {"waveform": (0.5 * torch.sin(2 * math.pi * 1000 * t)).view(1, 1, -1), "sample_rate": 48000}
    vae = video_vae
    events = []
    real_interpolate = stream.interpolate_frames

    def interpolate_frames(source, *args, **kwargs):
        def decoded():
            for frame in source:
                events.append("decoded")
                yield frame

        for frame in real_interpolate(decoded(), *args, **kwargs):
            events.append("written")
            yield frame

    monkeypatch.setattr(stream, "interpolate_frames", interpolate_frames)
    fps = 24000 / 1001
    streamed = NODES["MGLDDecodeAndSave"]().decode_and_save(vae, latent, lr, 1.0, "adain", 768, fps, "MGLD/streamed",
                                                            "ffv1", 19, "auto", audio, multiplier=2, flow=flow)
    images, = NODES["MGLDDecode"]().decode(vae, latent, lr, 1.0, "adain", 768)
    doubled, fps2, audio2 = NODES["MGLDInterpolateFrames"]().interpolate(images, fps, 2, 0.5, 540, audio=audio, flow=flow)
    saved = NODES["MGLDSaveVideo"]().save(doubled, fps2, "MGLD/three_nodes", "ffv1", 19, "auto", audio2)
    one, three = video_io.read_video(streamed["result"][0]), video_io.read_video(saved["result"][0])
    # (Matroska keeps millisecond timestamps: FFmpeg reads 48000/1001 back as 7001/146, which snaps back exactly)
    assert one.frames.shape == (2 * n - 1, 64, 64, 3) and video_io.to_fraction(float(one.fps)) == Fraction(48000, 1001)
    assert torch.equal(one.frames, three.frames)
    assert torch.equal(one.frames[5], one.frames[4])  # the frame inserted at the cut repeats the earlier side
    assert one.audio is not None and abs(one.audio.duration - (2 * n - 1) * 1001 / 48000) < 0.03  # trimmed to the video
    assert events[:4] == ["decoded", "decoded", "written", "written"]  # frame 0 and the inserted frame go on at once
    assert events.count("decoded") == n and len(events) - 1 - events[::-1].index("decoded") > events.index("written")
    with pytest.raises(ValueError, match="MGLD Decode \\+ Save Video: no motion"):
        NODES["MGLDDecodeAndSave"]().decode_and_save(vae, latent, lr, 1.0, "adain", 768, fps, "MGLD/x", "ffv1", 19,
                                                     "auto", multiplier=3)
