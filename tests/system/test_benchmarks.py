"""The speed and work benchmarks at tiny settings: speed.py's CPU comparison of the two modes writes the
record its documented figures come from, its attention section compares like with like, and flops.py
counts the default mode from the sampling plan (each latent pixel of each frame once per shifted step)."""
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import flops  # noqa: E402
import speed  # noqa: E402

from mgld_vsr.pipeline import official  # noqa: E402
from mgld_vsr.pipeline.sampling import guidance, loop  # noqa: E402
from mgld_vsr.pipeline.sampling.plan import SamplingOptions, SamplingPlan  # noqa: E402


def test_cpu_comparison_writes_both_modes_and_their_ratio(tmp_path, golden_dir, monkeypatch):
    monkeypatch.setenv("MGLD_GOLDEN_DIR", str(golden_dir))
    path = tmp_path / "speed.json"
    # 2 frames of 128x128 (512-px model frames, the flow code's smallest), 1 step: seconds, not minutes
    returned = speed.main(["--cpu", "--frames", "2", "--steps", "1", "--lr", "128x128", "--json", str(path)])
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(returned))
    assert (written["frames"], written["steps"], written["lr"]) == (2, 1, [128, 128])
    for mode in ("official", "default"):
        r = written["modes"][mode]
        assert r["cpu_s_per_frame"] == pytest.approx(r["sampling_cpu_s_per_frame"] + r["decoding_cpu_s_per_frame"])
        # the timed wrappers saw the UNet and the guidance of both samplers
        assert 0 < r["unet_share"] < 1 and 0 < r["guidance_share"] < 1, (mode, r)
        assert r["unet_share"] + r["guidance_share"] < 1
    assert written["speedup_cpu"] == pytest.approx(written["modes"]["official"]["cpu_s_per_frame"]
                                                   / written["modes"]["default"]["cpu_s_per_frame"])
    assert written["speedup_wall"] == pytest.approx(written["modes"]["official"]["wall_s_per_frame"]
                                                    / written["modes"]["default"]["wall_s_per_frame"])
    # the guidance timing is put back where the samplers look it up
    assert official.motion_guidance_step is guidance.motion_guidance_step
    assert loop.clip_guidance_step is guidance.clip_guidance_step


def test_attention_section_times_a_real_split():
    rows = speed.attention_split(tiles=(64,), repeats=1)  # asserts the two ways agree before timing them
    row = rows["64"]
    assert row["shape"] == [5, 5, 64 * 64, 64]
    assert row["calls_split"] > 1  # the score matrix of a 64-px tile does not fit one chunk
    assert row["split_s"] > 0 and row["one_call_s"] > 0


class AreaPricedNetworks:
    """Prices a denoising evaluation by its latent area (5 frames), so work counts latent pixels."""

    def denoise_eval(self, h: int, w: int, frames: int = 5) -> int:
        return h * w * frames


def test_default_mode_work_counts_every_planned_tile_and_window_frame():
    h, w, steps, frames = 64, 128, 6, 12
    all_shifted = SamplingPlan.create(SamplingOptions(steps=steps, start_fraction=0, finish_fraction=0), frames, (h, w))
    # disjoint tiles and windows: every latent pixel of every frame once per step
    assert flops.default_mode_work(AreaPricedNetworks(), all_shifted) == h * w * steps
    shipped = flops.default_plan(h, w, steps, frames)
    assert any(step.phase == "blended" for step in shipped.steps)
    expected = sum(sum(th * tw for _, _, th, tw in step.tiles.tiles) * step.window_frames for step in shipped.steps) / frames
    assert flops.default_mode_work(AreaPricedNetworks(), shipped) == expected > h * w * steps


def test_official_canvas_tiles_of_the_documented_cases():
    # 128 -> 512, 1080p and 4K latents: the 'tiles/step' column of docs/benchmarks.md
    assert flops.latent_tiles(64, 64) == (64, 64, 1)
    assert flops.latent_tiles(136, 244) == (64, 64, 28)
    assert flops.latent_tiles(272, 484) == (64, 64, 120)
    assert flops.latent_tiles(120, 120) == (64, 64, 9)  # inside one of the script's 960-px image tiles


def test_preview_decode_work_is_the_shown_frames_decoder_windows_decoded_whole():
    """The preview decodes every decoder window holding a shown frame, whole, in the decoder node's fitted tiles:
    priced by decoded latent area, that is the windows' frames times (at least) the whole latent."""

    class AreaPricedDecoder:
        def cfw_window_tile(self, th: int, tw: int) -> int:
            return th * tw * 5  # a 5-frame window tile

    h, w = 135, 240  # the 1080p latent
    plan = flops.default_plan(h, w, 4, 20)
    one = flops.preview_decode_work(AreaPricedDecoder(), plan, (10, 15))  # exactly the window 10..14
    two = flops.preview_decode_work(AreaPricedDecoder(), plan, (8, 13))  # straddles windows 5..9 and 10..14
    assert one >= 5 * h * w and one < 5 * h * w * 1.5  # whole frames, plus the decode tiles' overlaps
    assert two == 2 * one
