"""benchmarks/gpu.py --tiny: the GPU benchmark's own code (its sections live in speed.py and memory.py)
run on CPU with the tiny networks, so the command a scarce GPU window depends on is known to run end to
end and to write every figure issue #14 asks for (a GPU run then differs only in sizes, dtypes and the
sections that need CUDA)."""
import json
import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu  # noqa: E402
import speed  # noqa: E402


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory, golden_dir, monkeypatch_module):
    monkeypatch_module.setenv("MGLD_GOLDEN_DIR", str(golden_dir))
    path = tmp_path_factory.mktemp("gpu") / "gpu.json"
    # no time budget here: on a loaded machine the tiny run can outlast the default one, and this run
    # is meant to show that every section works (the budget has its own test below)
    returned = gpu.main(["--tiny", "--budget-s", "1e9", "--json", str(path)])
    written = json.loads(path.read_text())
    return returned, written


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_writes_what_it_returns(report):
    returned, written = report
    assert written["tiny"] is True and written["device"] == "cpu"
    assert set(written["sections"]) == set(returned["sections"])


def test_every_section_ran(report):
    sections = report[1]["sections"]
    expected = {"speed_512/default/float32", "speed_512/official/float32", "window_1080p", "unet_tflops", "fast_paths"}
    assert expected <= set(sections)
    assert any(name.startswith("memory/") for name in sections)
    assert not [name for name, s in sections.items() if "skipped" in s], "the tiny run skipped a whole section"


def test_speed_sections_split_the_stages_and_add_up(report):
    sections = report[1]["sections"]
    for name in ("speed_512/default/float32", "speed_512/official/float32", "window_1080p"):
        s = sections[name]
        stages = ("raft_s_per_frame", "encode_s_per_frame", "sampling_s_per_frame_50_steps", "decode_s_per_frame")
        assert all(_positive(s[k]) for k in stages), (name, s)
        assert s["total_s_per_frame"] == pytest.approx(sum(s[k] for k in stages))
        assert s["vs_paper_a100"] == pytest.approx(s["total_s_per_frame"] / speed.PAPER_S_PER_FRAME)
    assert sections["speed_512/default/float32"]["lr"] == [128, 128]


def test_memory_estimates_every_stage_and_says_what_it_could_not_measure(report):
    memory = next(s for name, s in report[1]["sections"].items() if name.startswith("memory/"))
    for stage in ("raft", "encode", "sampling_tile", "guidance", "decode_tile"):
        assert _positive(memory[stage]["estimate_gb"]), stage
        assert memory[stage]["measured"] == {"skipped": "needs CUDA"}


def test_unet_throughput_is_flops_over_time(report):
    s = report[1]["sections"]["unet_tflops"]
    assert _positive(s["tflop_per_eval"]) and _positive(s["s_per_eval"])
    assert s["achieved_tflops"] == pytest.approx(s["tflop_per_eval"] / s["s_per_eval"])
    assert s["fraction_of_peak"] == "unknown"  # no peak is listed for a CPU


def test_fast_paths_are_measured_with_and_without(report):
    paths = report[1]["sections"]["fast_paths"]
    backends = paths["sdpa_backends_s"]
    assert _positive(backends["math"]) and _positive(backends["default"])
    assert _positive(paths["channels_last_s"]["with"]) and _positive(paths["channels_last_s"]["without"])
    assert paths["torch_compile_s"] == {"skipped": "pass --compile"}
    step = paths["window_step_host_round_trip_s"]
    assert _positive(step["with_host_state"]) and _positive(step["device_resident"])
    assert paths["window_transfer_s"] == {"skipped": "needs CUDA"}
    batched = paths["batched_tiles_s"]
    assert _positive(batched["tiles_per_batch_1"]) and _positive(batched["tiles_per_batch_4"])


def test_a_spent_time_budget_skips_the_remaining_sections(tmp_path, golden_dir, monkeypatch):
    monkeypatch.setenv("MGLD_GOLDEN_DIR", str(golden_dir))
    returned = gpu.main(["--tiny", "--budget-s", "0", "--json", str(tmp_path / "g.json")])
    assert all(s.get("skipped", "").startswith("time budget") for s in returned["sections"].values())
