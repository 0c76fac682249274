"""host.py with and without ComfyUI: stand-in ComfyUI modules exercise the adapter's host paths."""
import io
import sys
import types

import pytest
import torch

from mgld_vsr import host
from mgld_vsr.pipeline import hooks as hooks_module
from mgld_vsr.pipeline.hooks import Hooks, ProgressCounter, TerminalProgress


@pytest.fixture
def fake_comfy(tmp_path, monkeypatch):
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path / "models")
    extra = str(tmp_path / "extra" / "mgld")
    fp.folder_names_and_paths = {"mgld": ([extra], {".ckpt"})}  # as if extra_model_paths.yaml declared it
    fp.get_folder_paths = lambda name: fp.folder_names_and_paths[name][0]
    fp.get_filename_list = lambda name: ["mgldvsr_unet.ckpt"]
    fp.get_full_path = lambda name, f: str(tmp_path / f) if f == "mgldvsr_unet.ckpt" else None
    fp.get_input_directory = lambda: str(tmp_path / "input")
    fp.get_output_directory = lambda: str(tmp_path / "output")
    fp.get_annotated_filepath = lambda name: str(tmp_path / "input" / name)
    comfy = types.ModuleType("comfy")
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.soft_empty_cache = lambda: None
    mm.interrupted = False

    def throw():
        if mm.interrupted:
            raise RuntimeError("Processing interrupted")

    mm.throw_exception_if_processing_interrupted = throw
    utils = types.ModuleType("comfy.utils")
    updates = []

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            updates.append((value, total, preview is not None))

    utils.ProgressBar = ProgressBar
    comfy.model_management, comfy.utils = mm, utils
    for name, module in (("folder_paths", fp), ("comfy", comfy), ("comfy.model_management", mm), ("comfy.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(fp=fp, mm=mm, updates=updates, extra=extra)


def test_model_folder_registration_keeps_extra_paths(fake_comfy):
    host.register_model_folder()
    paths, extensions = fake_comfy.fp.folder_names_and_paths["mgld"]
    assert paths[0].endswith("models/mgld") and fake_comfy.extra in paths
    assert {".ckpt", ".pth", ".safetensors"} <= extensions
    assert host.list_models() == ["mgldvsr_unet.ckpt"]
    with pytest.raises(FileNotFoundError, match="raft-things.pth' not found. Put it in"):
        host.model_path("raft-things.pth")


def test_progress_interrupt_and_devices_go_through_comfyui(fake_comfy):
    hooks = host.hooks()
    counter = ProgressCounter(hooks, 3, "sampling")
    counter.step(torch.zeros(5, 4, 8, 8))
    counter.step()
    assert [u[:2] for u in fake_comfy.updates] == [(0, 3), (1, 3), (2, 3)]  # the bar appears when the stage starts
    fake_comfy.mm.interrupted = True
    with pytest.raises(RuntimeError, match="interrupted"):
        counter.step()
    assert host.compute_device() == torch.device("cpu")


def test_standalone_fallbacks(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MGLD_MODELS_DIR", str(tmp_path))
    (tmp_path / "raft-things.pth").write_bytes(b"x")
    assert host.list_models() == ["raft-things.pth"]
    assert host.model_path("raft-things.pth") == str(tmp_path / "raft-things.pth")
    host.check_interrupt()  # no ComfyUI: nothing to interrupt
    bar = host.Progress()
    bar(1, 2, "decoding")
    bar(2, 2, "decoding")
    assert "decoding: 2/2 (100 %)" in capsys.readouterr().err  # stderr is not a terminal here: plain lines
    with host.announce("loading raft-things.pth"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "loading raft-things.pth ..." and lines[1].startswith("loading raft-things.pth: done in ")


def test_standalone_weights_folder_is_outside_the_source_package(tmp_path, monkeypatch, caplog):
    """``./weights`` by default; the old ``./models/mgld`` (inside the pack's ``models/`` package when run from the
    pack's folder) still works, with a notice saying where to move the files."""
    monkeypatch.delenv("MGLD_MODELS_DIR", raising=False)
    monkeypatch.setenv("MGLD_HOME", str(tmp_path))
    assert host.model_dirs() == [str(tmp_path / "weights")]
    old = tmp_path / "models" / "mgld"
    old.mkdir(parents=True)
    (old / "raft-things.pth").write_bytes(b"x")
    assert host.list_models() == ["raft-things.pth"]
    with caplog.at_level("WARNING", logger="MGLD-VSR"):
        assert host.model_path("raft-things.pth") == str(old / "raft-things.pth")
    assert any("old weights folder" in r.getMessage() and str(tmp_path / "weights") in r.getMessage()
               for r in caplog.records)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "raft-things.pth").write_bytes(b"y")
    assert host.model_path("raft-things.pth") == str(tmp_path / "weights" / "raft-things.pth")  # the new folder first


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_in_a_log_is_plain_lines_with_elapsed_rate_and_eta(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(hooks_module.time, "monotonic", clock)
    log = io.StringIO()  # not a terminal
    hooks = Hooks(progress=TerminalProgress(log))
    counter = ProgressCounter(hooks, 20, "sampling")
    for _ in range(20):
        clock.now += 2.0  # two seconds per step
        counter.step()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 11  # the start, then every tenth
    assert lines[0].startswith("sampling: 0/20 (0 %), 00:00 elapsed")
    assert lines[5] == "sampling: 10/20 (50 %), 00:20 elapsed, 00:20 left,  2.00s/it"
    assert lines[-1].startswith("sampling: 20/20 (100 %), 00:40 elapsed, 00:00 left")
    # a slow stage still says something at least every line_seconds
    slow = io.StringIO()
    counter = ProgressCounter(Hooks(progress=TerminalProgress(slow, line_seconds=60)), 1000, "decoding")
    clock.now += 61
    counter.step()
    assert slow.getvalue().splitlines()[-1].startswith("decoding: 1/1000 (0 %), 01:01 elapsed")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_one_bar_per_stage():
    screen = _Terminal()
    progress = TerminalProgress(screen)
    for what, total in (("optical flow", 3), ("sampling", 4)):
        counter = ProgressCounter(Hooks(progress=progress), total, what)
        for _ in range(total):
            counter.step()
    text = screen.getvalue()
    assert "\r" in text  # redrawn in place
    finals = [line.split("\r")[-1] for line in text.split("\n")]
    assert finals[0].startswith("optical flow: 100%") and "3/3 [" in finals[0]
    assert finals[1].startswith("sampling: 100%") and "4/4 [" in finals[1] and "it/s]" in finals[1]
