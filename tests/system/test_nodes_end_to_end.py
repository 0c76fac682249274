"""The nodes end to end with the tiny release files (full-size random RAFT included): loaders, flow, samplers,
decoder, warping error and saving as ComfyUI would call them, the headless runner's caching over the basic
workflow, and run_workflow.py naming the weights it lacks. Slow (tens of seconds each on 2 cores): system tier;
the node definitions and quick node checks stay in tests/integration/test_nodes.py."""
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


def _dominant_hz(audio: dict) -> float:
    wave = audio["waveform"][0, 0]
    spectrum = torch.fft.rfft(wave).abs()
    return float(spectrum.argmax()) * audio["sample_rate"] / wave.shape[-1]


def test_nodes_end_to_end_with_audio_and_exact_fps(models_dir, clip, tmp_path):
    diffusion, = NODES["MGLDDiffusionModelLoader"]().load("mgldvsr_unet.ckpt", "auto")
    vae, = NODES["MGLDVideoVAELoader"]().load("video_vae_cfw.ckpt", "auto")
    raft, = NODES["MGLDRAFTLoader"]().load("raft-things.pth")
    frames, fps, audio, count = NODES["MGLDLoadVideo"]().load(str(clip), 0, 0, 1, 0.0)
    assert count == 4 and frames.shape == (4, 32, 32, 3)
    assert Fraction(fps).limit_denominator(1001) == Fraction(24000, 1001)
    assert abs(_dominant_hz(audio) - 1000) < 10
    flow, flow_preview, occlusion_preview, cut_preview = NODES["MGLDFlow"]().compute(raft, frames, 0.5)
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

def test_official_mode_through_the_nodes(models_dir, clip):
    """The official sampler feeds the decoder's official path (segments, per-tile decode, 8-bit)."""
    diffusion, = NODES["MGLDDiffusionModelLoader"]().load("mgldvsr_unet.ckpt", "fp32")
    vae, = NODES["MGLDVideoVAELoader"]().load("video_vae_cfw.ckpt", "fp32")
    raft, = NODES["MGLDRAFTLoader"]().load("raft-things.pth")
    frames, fps, audio, count = NODES["MGLDLoadVideo"]().load(str(clip), 0, 3, 1, 0.0)
    flow, _, _, _ = NODES["MGLDFlow"]().compute(raft, frames, 0.5)
    latent, = NODES["MGLDSamplerOfficial"]().sample(diffusion, frames, flow, 2, 10.0, 42, 32)
    assert [len(segment) for segment in latent.segments] == [5]  # 3 frames padded to one 5-frame segment
    images, = NODES["MGLDDecode"]().decode(vae, latent, frames, 0.5, "adain")
    assert images.shape == (3, 128, 128, 3)
    assert torch.equal(images, (images * 255).round() / 255)  # official output is 8-bit
    with pytest.raises(ValueError, match="no memory cap; set it to 0"):
        NODES["MGLDDecode"]().decode(vae, latent, frames, 0.5, "adain", 768, 2.0)

