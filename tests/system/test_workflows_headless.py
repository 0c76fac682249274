"""Every shipped workflow runs headless (run_workflow.py) with tiny weights and one sampling step, core video
nodes included: the basic workflow on a short variable-frame-rate clip with audio, whose saved video keeps the
clip's length and its audio in sync while the console shows what happened (model loading, progress with elapsed
time and ETA, the loader's resampling notice); the other workflows on three constant-rate frames."""
import logging
import re
import sys
from fractions import Fraction

import av
import pytest
import torch

import mgld_vsr
from golden_lib import REPO_ROOT
from mgld_vsr.runner import graph as headless
from mgld_vsr.runner.core_nodes import CORE_NODES
from mgld_vsr.pipeline import video_io
from vfr_clips import burst_audio, frame_indices, level_frames, onset_seconds, write_vfr_clip

sys.path.insert(0, str(REPO_ROOT))
import run_workflow  # noqa: E402

sys.path.remove(str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "workflows"))
from build_workflows import CORE_NODES as CORE_SPECS  # noqa: E402

sys.path.remove(str(REPO_ROOT / "workflows"))

WORKFLOWS = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
#: 4 frames 40-110 ms apart, the last showing for 50 ms: 0.24 s of video, 6 frames at 25 fps.
TIMES_MS, LAST_MS = [0, 40, 150, 190], 50
MARKER = 2  # the audio burst starts with this frame
LEVELS = dict(base=40, step=40)  # frame i has mean level 40 + 40 i, which the colour fix carries to the output


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory):
    frames = level_frames(len(TIMES_MS), texture=12, **LEVELS)
    start = TIMES_MS[MARKER] / 1000
    audio = burst_audio(0.4, start, start + 0.05, sample_rate=48000)  # longer than the video, as phones record
    return write_vfr_clip(tmp_path_factory.mktemp("clip") / "vfr.mkv", frames, TIMES_MS, LAST_MS, audio=audio,
                          sample_rate=48000)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """3 frames 32x32 at 24000/1001 fps with a second of 1 kHz tone."""
    frames = torch.stack([torch.from_numpy(f) for f in level_frames(3, texture=20)])
    tone = torch.sin(2 * torch.pi * 1000 * torch.arange(48000) / 48000)[None] * 0.5
    return video_io.write_video(tmp_path_factory.mktemp("clip") / "cfr.mkv", frames, Fraction(24000, 1001),
                                audio=video_io.AudioTrack(tone, 48000), codec="ffv1")


def _run(workflow, clip, output):
    """run_workflow.py on ``clip`` with every sampler at one step; returns the saved video, read back."""
    api = headless.to_api(headless.load_workflow(str(workflow)), mgld_vsr.NODE_CLASS_MAPPINGS)
    samplers = [node_id for node_id, node in api.items() if node["class_type"] == "MGLDSampler"]
    sets = [arg for node_id in samplers for arg in ("--set", f"{node_id}.steps=1")]
    assert run_workflow.main([str(workflow), "--input", str(clip), "--output", str(output), *sets]) == 0
    return video_io.read_video(output)


def _audio_seconds(path):
    """Length of the audio stream as stored in the file (not cut to the video by the reader)."""
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        return Fraction(samples, container.streams.audio[0].sample_rate)


def test_basic_workflow_keeps_a_variable_frame_rate_clip_in_sync(models_dir, vfr_clip, tmp_path, capsys, caplog):
    output = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="MGLD-VSR"):
        result = _run(REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json", vfr_clip, output)
    console = capsys.readouterr().err
    frame = 1 / result.fps
    # the source's 0.24 s of video, within one frame; its audio (0.4 s in the file) cut to the video, within one frame
    assert abs(result.duration - Fraction(TIMES_MS[-1] + LAST_MS, 1000)) <= frame
    assert result.frames.shape[1:] == (128, 128, 3)
    assert abs(_audio_seconds(output) - result.duration) <= frame
    # in sync: the frame on screen when the sound starts is the marked one (the colour fix keeps frame levels)
    onset = onset_seconds(result.audio.waveform[0], result.audio.sample_rate)
    shown = frame_indices(result.frames, **LEVELS)
    assert shown[round(onset * result.fps)] == MARKER, shown
    # the console says what happened: loading, per-stage progress with elapsed time and ETA in plain lines, resampling
    assert "MGLD: loading mgldvsr_unet.ckpt" in console and ": done in " in console
    assert "\r" not in console
    for stage in ("optical flow", "sampling", "decoding"):
        assert re.search(rf"^{stage}: (\d+)/\1 \(100 %\), \d\d:\d\d elapsed, 00:00 left", console, re.M), console
        assert re.search(rf"^{stage}: 0/\d+ \(0 %\), 00:00 elapsed", console, re.M), console
    notices = [r.getMessage() for r in caplog.records if "variable frame rate" in r.getMessage()]
    assert len(notices) == 1 and "4 source frames -> 6" in notices[0] and "loaded 6 frames" in notices[0]


#: Shipped workflows that save nothing until the user acts (their savers are muted): tested on their own below.
PREVIEW_ONLY = {"mgld_vsr_tune_guidance.json"}


@pytest.mark.parametrize("workflow", [p for p in WORKFLOWS if p.name != "mgld_vsr_basic.json" and p.name not in PREVIEW_ONLY],
                         ids=lambda p: p.stem)
def test_every_other_shipped_workflow_runs_headless(workflow, models_dir, short_clip, tmp_path):
    """Core video nodes included (the advanced workflow loads and saves through ComfyUI's own)."""
    output = tmp_path / "out.mp4"
    result = _run(workflow, short_clip, output)
    rate = 2 if workflow.stem.endswith("_x2") else 1  # the frame-rate workflows insert a frame between each two
    side = 32 if workflow.stem == "mgld_interpolate_x2" else 128  # interpolation alone keeps the size
    assert result.frames.shape == (1 + rate * 2, side, side, 3) and result.fps == Fraction(24000 * rate, 1001)
    assert abs(_audio_seconds(output) - result.duration) <= 1 / result.fps
    # the known frames in order, at every rate-th position (colour fix: levels kept)
    assert frame_indices(result.frames[::rate], base=30, step=15) == [0, 1, 2]


def test_core_stand_ins_have_comfyuis_sockets_and_widgets():
    """The stand-ins take a frontend-saved workflow as ComfyUI's own nodes do (as build_workflows.py records them)."""
    for name, spec in CORE_SPECS.items():
        cls = CORE_NODES[name]
        sockets = [(n, k if isinstance(k, str) else "COMBO", headless.is_widget(k, o))
                   for n, k, o, _ in headless.input_specs(cls)]
        assert [s for s in sockets if not s[2] or s[0] in {i[0] for i in spec["inputs"]}] == spec["inputs"], name
        assert list(cls.RETURN_TYPES) == [t for _, t in spec["outputs"]], name
        assert len(headless.widget_layout(cls)) == len(spec["widgets"]), name


def test_input_replaces_every_loader_and_unknown_nodes_are_named():
    api = headless.to_api(headless.load_workflow(str(REPO_ROOT / "example_workflows" / "mgld_vsr_advanced.json")),
                          mgld_vsr.NODE_CLASS_MAPPINGS)
    # core Load Video, and MGLD Load LR Video behind it (which reads that VIDEO when connected)
    assert headless.set_input_video(api, "/clips/a.mp4") == 2
    assert next(n for n in api.values() if n["class_type"] == "LoadVideo")["inputs"]["file"] == "/clips/a.mp4"
    workflow = {"nodes": [{"id": 1, "type": "VHS_LoadVideo", "widgets_values": []}], "links": []}
    with pytest.raises(headless.WorkflowError, match="VHS_LoadVideo.*Load ?Video"):
        headless.to_api(workflow, mgld_vsr.NODE_CLASS_MAPPINGS)


@pytest.fixture(scope="module")
def six_frames(tmp_path_factory):
    """6 frames 32x32 (more than one 5-frame window) at 24 fps."""
    frames = torch.stack([torch.from_numpy(f) for f in level_frames(6, texture=20)])
    return video_io.write_video(tmp_path_factory.mktemp("clip") / "six.mkv", frames, Fraction(24), codec="ffv1")


def test_tuning_workflow_sweeps_headless_and_a_new_strength_reruns_only_the_preview(models_dir, six_frames, capsys):
    """The tuning workflow runs headless: the sweep's table (strength, warping error, seconds) is printed; the full
    run stays muted; changing the strength list re-runs the preview (and what shows it), not the loaders or the flow."""
    workflow = REPO_ROOT / "example_workflows" / "mgld_vsr_tune_guidance.json"
    sets = ["--set", "MGLDGuidancePreview.steps=1", "--set", "MGLDGuidancePreview.strengths=0, 10"]
    assert run_workflow.main([str(workflow), "--input", str(six_frames), *sets]) == 0
    console = capsys.readouterr().err
    assert re.search(r"strength\s+warping error x1000\s+seconds", console), console
    assert re.search(r"^\s+0\s+\S+\s+\d+\.\d$", console, re.M) and re.search(r"^\s+10\s+\S+\s+\d+\.\d$", console, re.M)

    api = headless.to_api(headless.load_workflow(str(workflow)), mgld_vsr.NODE_CLASS_MAPPINGS)
    assert not any(n["class_type"] in ("MGLDSampler", "MGLDDecode", "MGLDSaveVideo") for n in api.values())  # muted
    headless.set_input_video(api, str(six_frames))
    headless.apply_overrides(api, mgld_vsr.NODE_CLASS_MAPPINGS, ["MGLDGuidancePreview.steps=1",
                                                                  "MGLDGuidancePreview.strengths=0, 10"])
    runner = headless.Runner(mgld_vsr.NODE_CLASS_MAPPINGS)
    first = runner.run(api)
    preview = next(i for i, n in api.items() if n["class_type"] == "MGLDGuidancePreview")
    grid, clips, a, b, pair, table = first[preview]
    assert clips.shape[0] == 2 * 5 and a.shape == b.shape and grid.shape[2] > 2 * a.shape[2]
    assert len(runner.executed) == len(api)
    headless.apply_overrides(api, mgld_vsr.NODE_CLASS_MAPPINGS, ["MGLDGuidancePreview.strengths=0, 5, 10"])
    runner.run(api)
    shows = {i for i, n in api.items() if n["class_type"] == "PreviewImage"}
    assert set(runner.executed) == {preview} | shows, runner.executed
    assert "      5 " in runner.texts[preview]
