"""Long videos: the streaming decode-and-save node, and the headless runner's use of it.

The decoder runs on a small latent grid (the LR plan's minimum short side lowered, as other tests do)
with the fixture set's tiny video VAE, so every test here takes seconds.
"""
import math
import os
import pathlib
from fractions import Fraction

import pytest
import torch

import mgld_vsr
from golden_lib import REPO_ROOT
from mgld_vsr.runner import graph as headless
from mgld_vsr.nodes import host
from mgld_vsr.nodes import stream
from mgld_vsr.pipeline import video_io
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.hooks import Interrupted
from mgld_vsr.pipeline.sampling.loop import VideoLatents

NODES = mgld_vsr.NODE_CLASS_MAPPINGS
FPS = 24000 / 1001
FRAMES = 7  # two decoder windows (5 frames, 2 shared)


@pytest.fixture(scope="module")
def video_vae(golden_dir):
    from weights_index import weights_file_with_prefix
    from mgld_vsr.models.loader import load_component

    return load_component(weights_file_with_prefix(golden_dir / "weights", "decoder."), "video_vae")


@pytest.fixture(scope="module")
def inputs():
    """LR frames 16x16 (IMAGE), their MGLD_LATENT on an 8x8 grid (64x64 output) and 1 s of a 1 kHz tone."""
    g = torch.Generator().manual_seed(3)
    plan = LRPlan.create(16, 16, 4.0, min_short_side=64)
    latents = torch.randn(FRAMES, 4, *plan.latent_size, generator=g)
    latent = VideoLatents(latents, plan, torch.zeros(FRAMES - 1, dtype=torch.bool))
    frames = torch.rand(FRAMES, 16, 16, 3, generator=g)
    t = torch.arange(48000) / 48000
    audio = {"waveform": (0.5 * torch.sin(2 * math.pi * 1000 * t)).view(1, 1, -1), "sample_rate": 48000}
    return latent, frames, audio


@pytest.fixture
def output_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MGLD_HOME", str(tmp_path))
    return tmp_path / "output" / "MGLD"


def _stream(video_vae, inputs, prefix="MGLD/stream", codec="ffv1"):
    latent, frames, audio = inputs
    audio = None if codec == "png" else audio  # a png folder holds no sound
    return NODES["MGLDDecodeAndSave"]().decode_and_save(video_vae, latent, frames, 1.0, "adain", 768, FPS, prefix,
                                                        codec, 19, "auto", audio)


def test_streamed_file_equals_decode_then_save(video_vae, inputs, output_home):
    latent, frames, audio = inputs
    result = _stream(video_vae, inputs)
    path = result["result"][0]
    assert result["ui"]["images"][0]["filename"] == os.path.basename(path)
    back = video_io.read_video(path)
    assert back.frames.shape == (FRAMES, 64, 64, 3)
    assert back.fps == Fraction(24000, 1001)
    assert back.audio is not None and abs(back.audio.duration - FRAMES * 1001 / 24000) < 0.03  # muxed, trimmed

    images, = NODES["MGLDDecode"]().decode(video_vae, latent, frames, 1.0, "adain", 768)
    saved = NODES["MGLDSaveVideo"]().save(images, FPS, "MGLD/two_nodes", "ffv1", 19, "auto", audio)["result"][0]
    assert torch.equal(video_io.read_video(saved).frames, back.frames)  # lossless codec: the very same pixels
    assert sorted(os.listdir(output_home)) == sorted([os.path.basename(path), os.path.basename(saved)])


def test_frames_reach_the_writer_while_decoding(video_vae, inputs, output_home, monkeypatch):
    events = []
    real_decode, real_write = stream.decode_frames, video_io.write_video

    def decode_frames(*args, **kwargs):
        for index, frame in real_decode(*args, **kwargs):
            events.append(("decoded", index))
            yield index, frame

    def write_video(*args, on_frame=None, **kwargs):
        def written(count):
            events.append(("written", count))
            on_frame(count)

        return real_write(*args, on_frame=written, **kwargs)

    monkeypatch.setattr(stream, "decode_frames", decode_frames)
    monkeypatch.setattr(video_io, "write_video", write_video)
    _stream(video_vae, inputs, codec="h264")
    assert [e for e in events if e[0] == "decoded"] == [("decoded", i) for i in range(FRAMES)]
    assert events.index(("written", 1)) < events.index(("decoded", FRAMES - 1))
    held = 0  # decoded frames the writer has not taken yet: never more than the one in hand
    for kind, _ in events:
        held += 1 if kind == "decoded" else -1
        assert 0 <= held <= 1


@pytest.mark.parametrize("codec", ["h264", "png"])
def test_cancel_mid_way_leaves_nothing_under_the_final_name(video_vae, inputs, output_home, monkeypatch, codec):
    decoded, checks = [], []
    real_decode = stream.decode_frames

    def decode_frames(*args, **kwargs):
        for index, frame in real_decode(*args, **kwargs):
            decoded.append(index)
            yield index, frame

    def cancel_on_fifth_check():  # the host's Cancel button, seen by decoder windows and written frames alike
        checks.append(len(decoded))
        if len(checks) == 5:
            raise Interrupted("cancelled")

    monkeypatch.setattr(stream, "decode_frames", decode_frames)
    monkeypatch.setattr(host, "check_interrupt", cancel_on_fifth_check)
    with pytest.raises(Interrupted):
        _stream(video_vae, inputs, prefix="MGLD/cancelled", codec=codec)
    assert 0 < len(decoded) < FRAMES  # stopped mid-way, with frames already in the temporary file
    leftovers = os.listdir(output_home) if output_home.exists() else []
    assert leftovers == [], leftovers


def test_rejects_latents_of_other_clips(video_vae, inputs, output_home):
    latent, frames, audio = inputs
    node = NODES["MGLDDecodeAndSave"]()
    with pytest.raises(ValueError, match="must come from an MGLD sampler"):
        node.decode_and_save(video_vae, {"samples": latent.latents}, frames, 1.0, "adain", 768, FPS, "MGLD/x",
                             "h264", 19, "auto")
    with pytest.raises(ValueError, match=f"holds {FRAMES} frames but 3"):
        node.decode_and_save(video_vae, latent, frames[:3], 1.0, "adain", 768, FPS, "MGLD/x", "h264", 19, "auto")
    with pytest.raises(ValueError, match="multiple of 64"):
        node.decode_and_save(video_vae, latent, frames, 1.0, "adain", 100, FPS, "MGLD/x", "h264", 19, "auto")
    assert not output_home.exists() or os.listdir(output_home) == []


def test_widgets_are_the_decoders_then_the_savers():
    names = lambda kind: [n for n, *_ in headless.widget_layout(NODES[kind])]  # noqa: E731
    # a public contract (saved workflows): widgets added to the decoder or saver later go at the end
    assert names("MGLDDecodeAndSave")[:7] == ["fusion_w", "color_fix", "decode_tile", "filename_prefix", "codec", "crf",
                                              "pixel_format"]
    assert set(names("MGLDDecodeAndSave")) == set(names("MGLDDecode")) | set(names("MGLDSaveVideo")) | set(
        names("MGLDInterpolateFrames")), \
        "MGLDDecodeAndSave should offer every decoder, saver and interpolation widget (append new ones at its end)"
    assert NODES["MGLDDecodeAndSave"].OUTPUT_NODE


def test_save_converts_frame_by_frame_exactly(output_home):
    frames = torch.rand(3, 24, 32, 3) * 1.2 - 0.1  # out-of-range values are clamped, as before
    saved = NODES["MGLDSaveVideo"]().save(frames, 24.0, "MGLD/exact", "ffv1", 19, "auto")["result"][0]
    expected = (frames.clamp(0, 1) * 255.0).round().to(torch.uint8)
    assert torch.equal(video_io.read_video(saved).frames, expected)
    with pytest.raises(ValueError, match="empty"):
        NODES["MGLDSaveVideo"]().save(frames[:0], 24.0, "MGLD/empty", "ffv1", 19, "auto")


def _api(name):
    return headless.to_api(headless.load_workflow(str(REPO_ROOT / "example_workflows" / name)), NODES)


def test_runner_streams_the_basic_workflow_like_the_long_video_workflow():
    api = _api("mgld_vsr_basic.json")
    decode = next(i for i, n in api.items() if n["class_type"] == "MGLDDecode")
    save = next(i for i, n in api.items() if n["class_type"] == "MGLDSaveVideo")
    assert headless.stream_to_file(api, NODES) == [save]
    assert decode not in api and api[save]["class_type"] == "MGLDDecodeAndSave"
    long_video = _api("mgld_vsr_long_video.json")
    merged = next(n for n in long_video.values() if n["class_type"] == "MGLDDecodeAndSave")
    assert {k for k, v in merged["inputs"].items() if isinstance(v, list)} == {"video_vae", "latent", "frames", "fps",
                                                                               "audio"}
    # the same graph as the shipped long-video workflow, up to the output name (and the interpolation's settings,
    # which the long-video workflow states, multiplier 1 = off, and the basic one leaves at their defaults)
    assert merged["inputs"]["multiplier"] == 1
    stated = {k: v for k, v in merged["inputs"].items() if k not in ("multiplier", "scene_cut_threshold", "raft_resolution")}
    assert {**api[save]["inputs"], "filename_prefix": None} == {**stated, "filename_prefix": None}
    assert sorted(n["class_type"] for n in api.values()) == sorted(n["class_type"] for n in long_video.values())


def test_runner_keeps_decoded_frames_that_other_nodes_use():
    api = _api("mgld_vsr_basic.json")
    api["99"] = {"class_type": "MGLDWarpingError", "title": "metric",
                 "inputs": {"frames": ["7", 0], "flow": ["5", 0], "frames_b": ["7", 0]}}
    assert headless.stream_to_file(api, NODES) == []
    assert api["7"]["class_type"] == "MGLDDecode" and api["8"]["class_type"] == "MGLDSaveVideo"


def test_runner_keeps_the_saver_whose_video_output_is_used():
    """The merged node returns the path only: a saver whose VIDEO feeds another node is not merged."""
    api = _api("mgld_vsr_basic.json")
    api["99"] = {"class_type": "MGLDLoadVideo", "title": "reload",
                 "inputs": {"video": "x.mp4", "start_frame": 0, "frame_count": 0, "every_nth": 1, "force_fps": 0.0,
                            "video_input": ["8", 1]}}
    assert headless.stream_to_file(api, NODES) == []
    assert api["8"]["class_type"] == "MGLDSaveVideo"


def test_run_workflow_streams_unless_told_not_to(tmp_path, monkeypatch):
    """The command line hands the runner the merged graph, with the saver pointed at --output (it writes there itself)."""
    import sys

    sys.path.insert(0, str(REPO_ROOT))
    import run_workflow

    sys.path.remove(str(REPO_ROOT))
    graphs = []

    def run(self, api):
        graphs.append(sorted(n["class_type"] for n in api.values()))
        results = {}
        for node_id, node in api.items():
            results[node_id] = (node.get("output_path"),)
            if node.get("output_path"):
                pathlib.Path(node["output_path"]).write_bytes(b"video")
        return results

    monkeypatch.setattr(headless.Runner, "run", run)
    monkeypatch.setattr(headless, "missing_weights", lambda api: [])
    basic = str(REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json")
    assert run_workflow.main([basic, "--output", str(tmp_path / "streamed.mp4")]) == 0
    assert "MGLDDecodeAndSave" in graphs[0] and "MGLDDecode" not in graphs[0] and "MGLDSaveVideo" not in graphs[0]
    assert run_workflow.main([basic, "--output", str(tmp_path / "two_nodes.mp4"), "--no-stream"]) == 0
    assert "MGLDDecode" in graphs[1] and "MGLDSaveVideo" in graphs[1] and "MGLDDecodeAndSave" not in graphs[1]
    assert (tmp_path / "streamed.mp4").read_bytes() == (tmp_path / "two_nodes.mp4").read_bytes() == b"video"
