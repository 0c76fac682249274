"""The ComfyUI node classes, shipped workflows and headless runner, without ComfyUI (as CI runs them)."""
import json
import math
import os
import subprocess
import sys
from fractions import Fraction

import pytest
import torch

import mgld_vsr
from golden_lib import REPO_ROOT
from mgld_vsr.runner import graph as headless
from mgld_vsr.pipeline import video_io

NODES = mgld_vsr.NODE_CLASS_MAPPINGS
WORKFLOWS = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
sys.path.insert(0, str(REPO_ROOT / "workflows"))
from build_workflows import CORE_NODES  # noqa: E402


def _dominant_hz(audio: dict) -> float:
    wave = audio["waveform"][0, 0]
    spectrum = torch.fft.rfft(wave).abs()
    return float(spectrum.argmax()) * audio["sample_rate"] / wave.shape[-1]


def test_every_node_is_documented():
    for name, cls in NODES.items():
        assert cls.DESCRIPTION and cls.CATEGORY.startswith("MGLD-VSR/"), name
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), name
        for input_name, kind, options, _ in headless.input_specs(cls):
            assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert all(name.startswith("MGLD") for name in NODES)


def test_every_node_has_a_help_page():
    """ComfyUI's help panel asks WEB_DIRECTORY/docs/<NodeName>.md: one page per node naming every input and output."""
    docs = REPO_ROOT / mgld_vsr.WEB_DIRECTORY / "docs"
    assert sorted(p.stem for p in docs.glob("*.md")) == sorted(NODES)
    for name, cls in NODES.items():
        page = (docs / f"{name}.md").read_text()
        assert page.startswith(f"# {mgld_vsr.NODE_DISPLAY_NAME_MAPPINGS[name]}\n"), name
        assert "## When it fails" in page, name
        for input_name, *_ in headless.input_specs(cls):
            assert f"`{input_name}`" in page, f"{name}.md does not explain {input_name}"
        for output_name in cls.RETURN_NAMES:
            assert f"`{output_name}`" in page, f"{name}.md does not explain the output {output_name}"


def test_templates_come_from_example_workflows_only_with_thumbnails():
    """ComfyUI lists every *.json of these folders of a pack in its template browser: one copy only."""
    for folder in ("workflows", "workflow", "examples", "example"):
        assert not list((REPO_ROOT / folder).glob("*.json")), f"{folder}/ would list templates a second time"
    names = [p.stem for p in WORKFLOWS]
    assert names
    from PIL import Image

    for name in names:
        with Image.open(REPO_ROOT / "example_workflows" / f"{name}.jpg") as thumbnail:
            assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 128, name


def test_nodes_end_to_end_with_audio_and_exact_fps(models_dir, clip, tmp_path):
    diffusion, = NODES["MGLDDiffusionModelLoader"]().load("mgldvsr_unet.ckpt", "auto")
    vae, = NODES["MGLDVideoVAELoader"]().load("video_vae_cfw.ckpt", "auto")
    raft, = NODES["MGLDRAFTLoader"]().load("raft-things.pth")
    frames, fps, audio, count = NODES["MGLDLoadVideo"]().load(str(clip), 0, 0, 1, 0.0)
    assert count == 4 and frames.shape == (4, 32, 32, 3)
    assert Fraction(fps).limit_denominator(1001) == Fraction(24000, 1001)
    assert abs(_dominant_hz(audio) - 1000) < 10
    flow, flow_preview, occlusion_preview = NODES["MGLDFlow"]().compute(raft, frames, 0.5)
    assert flow.num_frames == 4 and flow_preview.shape[0] == 3 and occlusion_preview.shape[-1] == 3
    latent, = NODES["MGLDSampler"]().sample(diffusion, frames, flow, 2, 10.0, 0, 4.0, 5, 2, 64, 32)
    assert latent.latents.shape[0] == 4
    images, = NODES["MGLDDecode"]().decode(vae, latent, frames, 1.0, "adain")
    assert images.shape == (4, 128, 128, 3)
    measured = NODES["MGLDWarpingError"]().measure(images, flow, images.flip(0), "guided", "reversed")
    error, plot, text = measured["result"]
    assert plot.shape == (1, 256, 512, 3)
    assert measured["ui"]["text"] == [text] and text.splitlines()[1].startswith("guided")
    assert text.splitlines()[2].startswith("reversed")
    from mgld_vsr.pipeline.motion.warping_error import warping_errors

    per_pair = warping_errors(images, flow) * 1000
    measurable = per_pair[torch.isfinite(per_pair)]
    # random-weight RAFT may be inconsistent everywhere: then (and only then) the mean is undefined
    if measurable.numel():
        assert error == pytest.approx(float(measurable.mean()))
    else:
        assert math.isnan(error)
    result = NODES["MGLDSaveVideo"]().save(images, fps, "MGLD/test", "h264", 19, "auto", audio)
    path, core_video = result["result"]
    assert core_video.get_stream_source() == path  # the saved file as a VIDEO (ComfyUI's VideoFromFile in the host)
    assert result["ui"]["images"][0]["filename"] == os.path.basename(path)
    back = video_io.read_video(path)
    assert back.frames.shape == (4, 128, 128, 3) and back.fps == Fraction(24000, 1001)
    assert back.audio is not None and back.audio.duration <= 4 * 1001 / 24000 + 0.03  # trimmed to the video
    assert not [f for f in os.listdir(os.path.dirname(path)) if "partial" in f]

    with pytest.raises(ValueError, match="flow was computed on 4 frames"):
        NODES["MGLDSampler"]().sample(diffusion, frames[:3], flow, 2, 10.0, 0, 4.0, 5, 2, 64, 32)
    with pytest.raises(ValueError, match="must come from an MGLD sampler"):
        NODES["MGLDDecode"]().decode(vae, {"samples": latent.latents}, frames, 1.0, "adain")


def test_grayscale_and_alpha_frames_are_accepted():
    from mgld_vsr.nodes.common import image_to_frames

    assert image_to_frames(torch.rand(2, 8, 8, 1)).shape == (2, 8, 8, 3)
    with pytest.warns(RuntimeWarning, match="alpha is dropped"):  # said, not silent
        assert image_to_frames(torch.rand(2, 8, 8, 4)).shape == (2, 8, 8, 3)
    with pytest.raises(ValueError, match="empty"):
        image_to_frames(torch.rand(0, 8, 8, 3))


def test_frames_from_an_image_are_not_copied_unless_they_need_clamping():
    """A long clip's IMAGE is large: an in-range float32 batch is used as it is; out-of-range values
    are clamped in a copy, leaving ComfyUI's cached IMAGE untouched."""
    from mgld_vsr.nodes.common import image_to_frames

    images = torch.rand(3, 8, 8, 3)
    assert image_to_frames(images).data_ptr() == images.data_ptr()
    loud = images * 2 - 0.5
    before = loud.clone()
    frames = image_to_frames(loud)
    assert frames.min() >= 0 and frames.max() <= 1 and torch.equal(loud, before)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_node_definitions(path):
    data = json.loads(path.read_text())
    nodes = {n["id"]: n for n in data["nodes"]}
    output_types = {}
    for node in data["nodes"]:
        kind = node["type"]
        assert kind in NODES or kind in CORE_NODES, f"unknown node type {kind}"
        if kind in NODES:
            layout = headless.widget_layout(NODES[kind])
            values = node["widgets_values"]
            assert len(values) == len(layout), f"{kind}: {len(values)} widget values, expects {len(layout)}"
            for (name, widget_kind, options), value in zip(layout, values):
                if isinstance(widget_kind, (list, tuple)) and name not in ("ckpt_name", "vae_name", "raft_name", "video"):
                    assert value in widget_kind, f"{kind}.{name}={value!r} not in {widget_kind}"
                elif widget_kind in ("INT", "FLOAT"):
                    assert isinstance(value, (int, float)) and options.get("min", value) <= value <= options.get("max", value)
                elif widget_kind == "CONTROL":
                    assert value in headless.CONTROL_VALUES
            types = list(NODES[kind].RETURN_TYPES)
            inputs = {n: (k if isinstance(k, str) else "COMBO") for n, k, _, _ in headless.input_specs(NODES[kind])}
        else:
            assert len(node["widgets_values"]) == len(CORE_NODES[kind]["widgets"])
            types = [t for _, t in CORE_NODES[kind]["outputs"]]
            inputs = {n: t for n, t, _ in CORE_NODES[kind]["inputs"]}
        output_types[node["id"]] = types
        for slot in node["inputs"]:
            assert slot["name"] in inputs and slot["type"] == inputs[slot["name"]]
    for link_id, source, source_slot, target, target_slot, link_type in data["links"]:
        assert output_types[source][source_slot] == link_type
        assert nodes[target]["inputs"][target_slot]["type"] == link_type
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
    for node in data["nodes"]:  # every required socket is connected
        if node["type"] in NODES:
            specs = headless.input_specs(NODES[node["type"]])
            connected = {s["name"] for s in node["inputs"] if s["link"] is not None}
            for name, kind, options, required in specs:
                if required and not headless.is_widget(kind, options):
                    assert name in connected, f"{node['type']}.{name} is not connected"


def test_headless_runner_caches_like_comfyui(models_dir, clip):
    workflow = headless.load_workflow(str(REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json"))
    api = headless.to_api(workflow, NODES)
    next(n for n in api.values() if n["class_type"] == "MGLDLoadVideo")["inputs"]["video"] = str(clip)
    headless.apply_overrides(api, NODES, ["MGLDSampler.steps=2"])
    runner = headless.Runner(NODES)
    results = runner.run(api)
    assert len(runner.executed) == len(api)
    saved = next(results[i][0] for i, n in api.items() if n["class_type"] == "MGLDSaveVideo")
    assert video_io.read_video(saved).frames.shape[0] == 4  # a playable video
    by_type = {i: n["class_type"] for i, n in api.items()}
    headless.apply_overrides(api, NODES, ["MGLDSampler.guidance_strength=5"])
    runner.run(api)
    assert sorted(by_type[i] for i in runner.executed) == ["MGLDDecode", "MGLDSampler", "MGLDSaveVideo"]
    runner.run(api)
    assert runner.executed == []


def test_runner_says_which_weights_are_missing(tmp_path):
    out = subprocess.run([sys.executable, str(REPO_ROOT / "run_workflow.py"), str(REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json"),
                          "--models", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    for name in ("mgldvsr_unet.ckpt", "video_vae_cfw.ckpt", "raft-things.pth", str(tmp_path)):
        assert name in out.stderr


def test_runner_rejects_bad_overrides():
    api = headless.to_api(headless.load_workflow(str(REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json")), NODES)
    with pytest.raises(headless.WorkflowError, match="no input 'strength'"):
        headless.apply_overrides(api, NODES, ["MGLDSampler.strength=3"])
    with pytest.raises(headless.WorkflowError, match="choose one of"):
        headless.apply_overrides(api, NODES, ["MGLDDecode.color_fix=vivid"])
    headless.apply_overrides(api, NODES, ["MGLDSampler.steps=5000"])
    with pytest.raises(headless.WorkflowError, match="outside"):
        headless.Runner(NODES).run(api)


def test_cancel_during_saving_leaves_no_file(tmp_path, monkeypatch):
    from mgld_vsr.nodes import host

    monkeypatch.setenv("MGLD_HOME", str(tmp_path))
    written = []

    def cancel_after_two(index=None):
        written.append(index)
        if len(written) == 2:
            raise KeyboardInterrupt("cancelled")

    monkeypatch.setattr(host, "check_interrupt", cancel_after_two)
    frames = torch.rand(6, 32, 32, 3)
    with pytest.raises(KeyboardInterrupt):
        NODES["MGLDSaveVideo"]().save(frames, 24.0, "MGLD/cancel", "h264", 19, "auto")
    folder = tmp_path / "output" / "MGLD"
    leftovers = os.listdir(folder) if folder.exists() else []
    assert leftovers == [], leftovers  # neither a half-written video nor its temporary file


def test_official_mode_through_the_nodes(models_dir, clip):
    """The official sampler feeds the decoder's official path (segments, per-tile decode, 8-bit)."""
    diffusion, = NODES["MGLDDiffusionModelLoader"]().load("mgldvsr_unet.ckpt", "fp32")
    vae, = NODES["MGLDVideoVAELoader"]().load("video_vae_cfw.ckpt", "fp32")
    raft, = NODES["MGLDRAFTLoader"]().load("raft-things.pth")
    frames, fps, audio, count = NODES["MGLDLoadVideo"]().load(str(clip), 0, 3, 1, 0.0)
    flow, _, _ = NODES["MGLDFlow"]().compute(raft, frames, 0.5)
    latent, = NODES["MGLDSamplerOfficial"]().sample(diffusion, frames, flow, 2, 10.0, 42, 32)
    assert [len(segment) for segment in latent.segments] == [5]  # 3 frames padded to one 5-frame segment
    images, = NODES["MGLDDecode"]().decode(vae, latent, frames, 0.5, "adain")
    assert images.shape == (3, 128, 128, 3)
    assert torch.equal(images, (images * 255).round() / 255)  # official output is 8-bit
    with pytest.raises(ValueError, match="no memory cap; set it to 0"):
        NODES["MGLDDecode"]().decode(vae, latent, frames, 0.5, "adain", 768, 2.0)
