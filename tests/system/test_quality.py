"""benchmarks/quality.py: its metrics on cases whose answer is known, and its whole run (the shipped
stand-in through the real pipeline on held-out frames) at a very small size: the JSON layout the
issue fixes and figures that make sense. Needs the held-out clip (fetched once with pip, see
benchmarks/standin/data.py) and OpenCV (DIS flow, degradation)."""
import math
import pathlib
import sys

import pytest
import torch

pytest.importorskip("cv2", reason="quality.py's flow and degradation need opencv-python-headless (tests/requirements.txt)")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import quality  # noqa: E402

MODES = {"untiled", "default", "fixed_grid", "official"}


def test_seam_score_finds_a_line_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(3, 4, 40, 40, generator=generator)
    noisy = reference + 0.1 * torch.randn(reference.shape, generator=generator)
    with_line = noisy.clone()
    with_line[..., 20, :] += 0.5  # one latent row off by much more than the noise
    assert quality.seam_score(noisy, reference) < 1.3
    assert quality.seam_score(with_line, reference) > 3.0
    assert quality.seam_score(with_line.transpose(-1, -2), reference.transpose(-1, -2)) > 3.0


def test_line_contrast_finds_a_line_but_not_a_plateau():
    """A line one or two latent px wide stands out locally; a broad region deviating more (a frame-edge tile's
    plateau) raises the frame-wide seam score but is no line."""
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(3, 4, 40, 40, generator=generator)
    noisy = reference + 0.1 * torch.randn(reference.shape, generator=generator)
    line, wide_line, plateau = noisy.clone(), noisy.clone(), noisy.clone()
    line[..., :, 20] += 0.3
    wide_line[..., 20:22, :] += 0.3  # two rows: the nearest neighbour is not part of the comparison
    plateau[..., 24:, :] += 0.25 * torch.randn(plateau[..., 24:, :].shape, generator=generator).abs()
    assert quality.line_contrast(noisy, reference) < 1.2
    assert quality.line_contrast(line, reference) > 2.0
    assert quality.line_contrast(wide_line, reference) > 2.0
    assert quality.seam_score(plateau, reference) > 1.5 > 1.2 > quality.line_contrast(plateau, reference)


def test_border_flicker_compares_border_pairs_with_the_rest():
    errors = torch.tensor([1.0, 1.0, 3.0, 1.0, float("nan"), 1.0])
    borders = [False, False, True, False, True, False]
    assert quality.border_flicker(errors, borders) == pytest.approx(3.0)  # the NaN pair (a cut) is left out
    assert quality.border_flicker(errors, [False] * 6) is None


def test_border_pairs_of_disjoint_and_overlapping_windows():
    from mgld_vsr.pipeline.sampling.windows import Window

    disjoint = [Window((0, 1, 2, 3, 4), (1.0,) * 5), Window((5, 6, 7, 8, 9), (1.0,) * 5)]
    assert quality.border_pairs(disjoint) == [i == 4 for i in range(9)]
    # windows 0-4 and 4-8 share frame 4: the pairs entering and leaving the shared frame are borders
    shared = [Window((0, 1, 2, 3, 4), (1, 2, 3, 2, 1)), Window((4, 5, 6, 7, 8), (1, 2, 3, 2, 1))]
    assert quality.border_pairs(shared) == [i in (3, 4) for i in range(8)]
    # a mirrored repeat (weight 0) does not make a frame a member
    mirrored = [Window((0, 1, 2, 1, 0), (1, 1, 1, 0, 0))]
    assert quality.border_pairs(mirrored) == [False, False]


def test_variant_changes_the_named_sampling_options():
    from mgld_vsr.pipeline.sampling.plan import SamplingOptions

    base = SamplingOptions(steps=13, tile=32)
    changed = quality.variant(base, "start_fraction=0,FINISH_FRACTION=0.12,finish_window_overlap=1")
    assert (changed.start_fraction, changed.finish_fraction, changed.finish_window_overlap) == (0.0, 0.12, 1)
    assert (changed.steps, changed.tile) == (13, 32)
    with pytest.raises(SystemExit):
        quality.variant(base, "START_FRACTON=0")


def test_seam_sources_untiles_only_the_named_phases_and_puts_the_plan_back():
    """benchmarks/seam_sources.py: the named phases see the untiled reference's own layout, every other step is
    planned as today, and the plan's rules are restored afterwards (even after an error)."""
    import seam_sources
    from mgld_vsr.pipeline.sampling.plan import SamplingPlan

    setting = quality.Setting(frames=6, steps=13, lr_size=(128, 176))
    latent = (64, 88)  # 2 x 2.75 native tiles
    options = quality.mode_options(setting, latent)

    def layouts(name):
        return [step.tiles for step in SamplingPlan.create(options[name], 6, latent).steps]

    today = layouts("default")
    whole = ((0, 0, 64, 88),)  # one tile, the whole latent
    assert layouts("untiled")[0].tiles == whole
    with seam_sources.untiled_phases(("finishing",)):
        finishing_untiled = layouts("default")
        grid = layouts("fixed_grid")  # other modes are not the study's
    assert [layout.tiles == whole for layout in finishing_untiled] == [False] * 11 + [True] * 2  # 2 of 13 finish
    assert finishing_untiled[:11] == today[:11]
    assert grid == layouts("fixed_grid")
    with seam_sources.untiled_phases(("shifted",)):
        shifted_untiled = layouts("default")
    assert [layout.tiles == whole for layout in shifted_untiled] == [False] + [True] * 10 + [False] * 2
    assert shifted_untiled[0] == today[0] and shifted_untiled[11:] == today[11:]
    with pytest.raises(ValueError, match="unknown phase"):
        with seam_sources.untiled_phases(("middle",)):
            pass
    with pytest.raises(RuntimeError):
        with seam_sources.untiled_phases(seam_sources.PHASES):
            raise RuntimeError("a run that fails")
    assert layouts("default") == today


def test_seam_sources_noise_control_mixes_in_other_noise_of_the_same_variance():
    import seam_sources
    from mgld_vsr.pipeline.sampling import loop
    from mgld_vsr.pipeline.sampling.schedule import respaced_schedule

    schedule = respaced_schedule(13)
    x0, noise = torch.zeros(1, 4, 64, 64), torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    plain = loop.q_sample_respace(schedule, x0, noise)
    with seam_sources.mixed_start_noise(0.3):
        mixed = loop.q_sample_respace(schedule, x0, noise)
    assert torch.equal(loop.q_sample_respace(schedule, x0, noise), plain)  # put back
    assert mixed.std() == pytest.approx(plain.std(), rel=0.03)
    correlation = float(torch.corrcoef(torch.stack([mixed.flatten(), plain.flatten()]))[0, 1])
    assert correlation == pytest.approx((1 - 0.3 ** 2) ** 0.5, abs=0.01)


def test_edge_deviation_finds_deviation_at_the_last_steps_tile_edges():
    from mgld_vsr.pipeline.sampling.plan import SamplingOptions, SamplingPlan

    # 2 steps on a 32x32 latent with 16-px tiles: one shifted step, one blended finishing step
    plan = SamplingPlan.create(SamplingOptions(steps=2, tile=16), 3, (32, 32))
    last = quality.edge_mask((32, 32), plan.steps[-1].tiles.tiles)
    assert last[7:9].all() and last[:, 15:17].all() and not last[:6, :6].any()  # whole rows and columns
    reference = torch.zeros(3, 4, 32, 32)
    latents = torch.full_like(reference, 0.1)
    latents[..., last] += 1.0
    row = quality.edge_deviation(latents, reference, plan)
    assert row["last_step_edges"] == pytest.approx(1.1)
    assert row["interior"] == pytest.approx(0.1)
    assert row["last_over_interior"] == pytest.approx(11.0)
    assert row["any_step_edges"] <= row["last_step_edges"]
    # tile edges near every row and column: no interior, so no ratio rather than a division by nothing
    from types import SimpleNamespace
    from mgld_vsr.pipeline.sampling.tiling import TileLayout

    tiny_tiles = TileLayout(tuple((y, x, 2, 2) for y in range(1, 15, 2) for x in range(1, 15, 2)), None)
    dense = SimpleNamespace(steps=[SimpleNamespace(tiles=tiny_tiles)])
    row = quality.edge_deviation(latents[..., :16, :16], reference[..., :16, :16], dense)
    assert row["interior"] is None and row["last_over_interior"] is None


@pytest.fixture(scope="module")
def report():
    # 4 frames in 3-frame windows, 2 steps (one shifted, one finishing), 32-px latent tiles on the 64x64
    # latent of 512-px frames (the flow code's smallest input): tiles and windows really split.
    setting = quality.Setting(frames=4, steps=2, lr_size=(128, 128))
    return quality.benchmark(setting, window=3, seams=True, log=lambda _: None)


def test_report_layout(report):
    assert set(report["modes"]) == MODES
    for name, row in report["modes"].items():
        assert {"seam", "border_flicker", "warping_error", "psnr", "ssim", "unet_tflop_per_frame", "wall_s"} <= set(row), name
    assert report["modes"]["untiled"]["seam"] is None  # the reference itself


def test_figures_make_sense(report):
    modes = report["modes"]
    for name in MODES - {"untiled"}:
        assert math.isfinite(modes[name]["seam"]) and modes[name]["seam"] >= 1.0, name
    for name, row in modes.items():
        assert math.isfinite(row["warping_error"]) and row["warping_error"] > 0, name
        assert 0 < row["ssim"] <= 1, name
        # every mode renders the picture: far closer to the truth than a flat grey frame (about 6-8 dB)
        assert row["psnr"] > 15.0, (name, row["psnr"])
        # tiling changes the result only locally
        assert abs(row["psnr"] - modes["untiled"]["psnr"]) < 1.0, (name, row["psnr"], modes["untiled"]["psnr"])
    assert modes["default"]["border_flicker"] is not None and math.isfinite(modes["default"]["border_flicker"])
    # overlapping tiles and windows cost UNet work; one tile and one window cost the least
    flops = {name: row["unet_tflop_per_frame"] for name, row in modes.items()}
    assert flops["untiled"] < flops["default"] < flops["fixed_grid"], flops
    assert report["criteria"]["pass"] in (True, False)


def test_seams_section_covers_the_planned_tiled_modes(report):
    # official mode has no sampling plan and the untiled run is the reference: neither has a row
    assert set(report["seams"]) == {"default", "fixed_grid"}
    for name, row in report["seams"].items():
        assert row["all"] > 0 and row["last_step_edges"] > 0, (name, row)


def _case(modes: dict) -> dict:
    return {"modes": {name: dict(zip(("seam", "border_flicker", "warping_error", "psnr"), row))
                      for name, row in modes.items()}}


def test_worst_cases_pick_each_modes_worst_case_and_the_defaults_margins():
    reports = {
        "a": _case({"untiled": (None, 1.0, 10.0, 30.0), "default": (1.1, 1.3, 11.0, 29.9),
                    "fixed_grid": (1.2, 1.0, 10.0, 29.8)}),
        "b": _case({"untiled": (None, 0.9, 20.0, 25.0), "default": (1.4, 1.0, 21.0, 24.5),
                    "fixed_grid": (1.25, 0.95, 22.0, 24.9)}),
    }
    worst = quality.worst_cases(reports)
    assert set(worst) == {"untiled", "default", "fixed_grid"}
    d = worst["default"]
    assert d["seam"] == {"value": 1.4, "case": "b"}
    assert d["border_flicker"] == {"value": 1.3, "case": "a"}
    # warping error and PSNR against the same case's untiled run, not across contents
    assert d["warping_error_vs_untiled"] == {"value": pytest.approx(1.1), "case": "a"}
    assert d["psnr_vs_untiled"] == {"value": pytest.approx(-0.5), "case": "b"}
    assert d["seam_minus_grid"] == {"value": pytest.approx(0.15), "case": "b"}
    assert d["border_flicker_minus_grid"] == {"value": pytest.approx(0.3), "case": "a"}
    assert d["warping_error_vs_grid"] == {"value": pytest.approx(1.1), "case": "a"}
    assert worst["untiled"]["seam"] is None  # the reference has no seam figure
    assert worst["fixed_grid"]["border_flicker"] == {"value": 1.0, "case": "a"}


def test_suite_criteria_allow_five_percent_more_warping_error_than_the_grid():
    table = {"default": {"seam": 1.1, "border_flicker": 1.0, "warping_error": 10.4},
             "fixed_grid": {"seam": 1.2, "border_flicker": 1.0, "warping_error": 10.0}}
    assert quality.criteria(table)["pass"] is False  # issue #10's bar on the quick case: no more than the grid
    assert quality.criteria(table, quality.SUITE_WARP_TOLERANCE)["pass"] is True
    table["default"]["seam"] = 1.21  # within the grid + 0.1 but above 1.2
    assert quality.criteria(table, quality.SUITE_WARP_TOLERANCE)["pass"] is False


def test_suite_cases_are_held_out_and_cover_what_issue_30_asks():
    import data as standin_data
    from mgld_vsr.pipeline.frames import LRPlan

    cases = quality.SUITE
    assert len({c.name for c in cases}) == len(cases)
    clip = [c for c in cases if c.photo is None]
    assert len({(c.start, c.origin) for c in clip}) >= 2  # at least two shots of the held-out clip
    photos = [c for c in cases if c.photo is not None]
    assert photos and not {c.photo for c in photos} & set(standin_data.TRAIN_IMAGES)
    latents = [LRPlan.create(*c.setting.lr_size, scale=4, min_short_side=quality.MIN_SHORT_SIDE).latent_size
               for c in cases]
    partial = [(h, w) for h, w in latents if h % quality.TILE or w % quality.TILE]
    assert any(w > h for h, w in partial) and any(h > w for h, w in partial)  # one wider, one taller
    assert max(c.setting.frames for c in cases) > 2 * quality.SamplingOptions().window


def test_suite_command_prints_every_case_and_the_worst_case(tmp_path):
    """The --suite path end to end on one case at a tiny size (3 frames, 2 steps): tables, criteria,
    worst-case lines and the JSON report."""
    import json
    import subprocess

    pytest.importorskip("skimage", reason="the suite's photograph case needs scikit-image (tests/requirements.txt)")
    out = tmp_path / "suite.json"
    script = pathlib.Path(quality.__file__)
    done = subprocess.run([sys.executable, str(script), "--suite", "--cases", "moon-pan", "--frames", "3", "--steps", "2",
                           "--threads", "1", "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert "## case moon-pan" in text and "worst case over the suite" in text
    assert "autoencoder" in text and "issue #30 criteria for the default" in text
    report = json.loads(out.read_text())
    assert list(report["cases"]) == ["moon-pan"]
    case = report["cases"]["moon-pan"]
    assert case["settings"]["frames"] == 3 and case["settings"]["steps"] == 2
    assert set(case["modes"]) == MODES
    # the stand-in's ceiling: its own latents decoded come closer to the truth than any sampled ones
    assert case["bicubic"]["autoencoder_psnr"] > max(row["psnr"] for row in case["modes"].values()) - 0.5
    assert set(report["worst"]) == MODES
    assert report["worst"]["default"]["seam"] == {"value": case["modes"]["default"]["seam"], "case": "moon-pan"}
    assert report["pass"] == case["criteria"]["pass"]
    assert report["cpu_s"] > 0 and report["wall_s"] > 0
    done = subprocess.run([sys.executable, str(script), "--suite", "--cases", "nowhere"], capture_output=True, text=True)
    assert done.returncode != 0 and "no case nowhere" in done.stderr
