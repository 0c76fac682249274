"""host.py with and without ComfyUI: stand-in ComfyUI modules exercise the adapter's host paths."""
import io
import sys
import types

import pytest
import torch

from mgld_vsr.nodes import host
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


# ------------------------------------------------------------------------ ComfyUI's model management

@pytest.fixture
def fake_manager(fake_comfy, monkeypatch):
    """Stand-ins for ComfyUI's ModelPatcher and load_models_gpu, recording what they are asked."""
    mp = types.ModuleType("comfy.model_patcher")
    calls = []

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            model.device = offload_device  # as ComfyUI's does

    def load_models_gpu(models, memory_required=0, **_):
        calls.append((list(models), memory_required))
        for patcher in models:
            patcher.model.device = patcher.load_device  # ComfyUI records where the model now computes

    mp.ModelPatcher = ModelPatcher
    fake_comfy.mm.load_models_gpu = load_models_gpu
    monkeypatch.setitem(sys.modules, "comfy.model_patcher", mp)
    sys.modules["comfy"].model_patcher = mp
    return calls


def test_stages_load_networks_through_comfyuis_model_manager(fake_manager, fake_comfy):
    from mgld_vsr.models.placement import compute_device
    from mgld_vsr.nodes.common import on_compute_device

    fake_comfy.mm.get_torch_device = lambda: torch.device("cuda")  # never used for compute here
    unet, vae = torch.nn.Linear(4, 4), torch.nn.Conv2d(3, 3, 1)
    weights = sum(t.numel() * t.element_size() for m in (unet, vae) for t in m.parameters())
    assert host.manages_models()
    with on_compute_device(unet, vae, reserve=lambda: weights + 12345) as device:
        assert device == torch.device("cuda")
        assert compute_device(unet) == torch.device("cuda")  # where the pipeline sends this stage's tensors
        assert unet.weight.device.type == "cpu"  # moved by ComfyUI (here: the stand-in), never by hand
    (patchers, memory_required), = fake_manager
    assert [p.model for p in patchers] == [unet, vae] and memory_required == 12345  # activations beyond the weights
    with on_compute_device(unet):
        pass
    assert fake_manager[1][0][0] is patchers[0]  # one patcher per network: ComfyUI sees the same model again


def test_partial_loads_stream_the_layers_left_in_ram(fake_manager, fake_comfy):
    """The patcher's network streams layers ComfyUI left behind (here every layer: computed on 'meta')."""
    fake_comfy.mm.get_torch_device = lambda: torch.device("meta")
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    host.load_models([net])
    out = net(torch.ones(1, 4, device="meta"))  # weights on the CPU, compute on 'meta': each layer streamed
    assert out.device.type == "meta" and net[0].weight.device.type == "cpu"


def test_previews_show_the_predicted_clean_latents_with_comfyuis_previewer(fake_comfy, monkeypatch):
    lp, formats = types.ModuleType("latent_preview"), types.ModuleType("comfy.latent_formats")
    shown = []

    class Previewer:
        def decode_latent_to_preview_image(self, preview_format, x0):
            shown.append(x0)
            return (preview_format, "image", 512)

    lp.get_previewer = lambda device, latent_format: Previewer() if latent_format.name == "SD15" else None
    formats.SD15 = lambda: types.SimpleNamespace(name="SD15")
    monkeypatch.setitem(sys.modules, "latent_preview", lp)
    monkeypatch.setitem(sys.modules, "comfy.latent_formats", formats)
    sys.modules["comfy"].latent_formats = formats
    hooks = host.hooks()
    x0 = torch.randn(5, 4, 8, 8)
    ProgressCounter(hooks, 2, "sampling").step(x0)
    assert torch.equal(shown[0], x0[:1])  # the window's first frame
    # the stage announces itself at 0 (no preview yet); the preview rides on this step's own update
    assert fake_comfy.updates[-1] == (1, 2, True) and all(not shown for *_, shown in fake_comfy.updates[:-1])
    lp.get_previewer = lambda device, latent_format: None  # the user's preview method: none
    assert host.hooks().preview is None


def test_pack_errors_show_by_class_name_inside_comfyui(fake_comfy):
    from mgld_vsr.models.checkpoint import CheckpointError

    class Node:
        FUNCTION = "run"

        def run(self, kind):
            raise kind("mgldvsr_unet.ckpt: no UNet weights in this file")

    host.show_errors_by_class_name({"Node": Node})

    def comfyui_name(kind):  # execution.full_type_name
        return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"

    with pytest.raises(CheckpointError) as caught:
        Node().run(CheckpointError)
    assert comfyui_name(type(caught.value)) == "CheckpointError"
    assert str(caught.value) == "mgldvsr_unet.ckpt: no UNet weights in this file"
    assert caught.traceback[-1].name == "run"  # the traceback still ends where it was raised
    with pytest.raises(ValueError) as caught:
        Node().run(ValueError)
    assert type(caught.value) is ValueError


def test_core_video_in_and_out(fake_comfy, monkeypatch, tmp_path):
    """The saver's VIDEO is ComfyUI's VideoFromFile in the host; the loader reads a core VIDEO's frames."""
    from fractions import Fraction

    import mgld_vsr
    from mgld_vsr.pipeline import video_io

    impl = types.ModuleType("comfy_api.input_impl")
    impl.VideoFromFile = lambda path: ("VideoFromFile", path)
    monkeypatch.setitem(sys.modules, "comfy_api", types.ModuleType("comfy_api"))
    monkeypatch.setitem(sys.modules, "comfy_api.input_impl", impl)
    assert host.video_from_file("/out/x.mp4") == ("VideoFromFile", "/out/x.mp4")

    loader = mgld_vsr.NODE_CLASS_MAPPINGS["MGLDLoadVideo"]()
    images = torch.arange(10).float().view(10, 1, 1, 1).expand(10, 4, 6, 3) / 10  # frame i is all i/10
    audio = {"waveform": torch.arange(10 * 4800).float().view(1, 1, -1), "sample_rate": 48000}  # 0.1 s a frame
    core = video_io.FrameVideo(images, Fraction(10), audio)
    frames, fps, out_audio, count = loader.load("ignored.mp4", 2, 3, 2, 0.0, video_input=core)
    assert count == 3 and fps == 5.0 and frames.shape == (3, 4, 6, 3)
    assert torch.allclose(frames[:, 0, 0, 0], torch.tensor([0.2, 0.4, 0.6]))
    waveform = out_audio["waveform"][0, 0]
    assert waveform[0] == 2 * 4800 and waveform.numel() == 3 * 2 * 4800  # the audio under frames 2..7
    with pytest.raises(ValueError, match="past the end"):
        loader.load("ignored.mp4", 12, 0, 1, 0.0, video_input=core)
    path = tmp_path / "clip.mkv"
    video_io.write_video(path, (images * 255).round().to(torch.uint8), Fraction(10), codec="ffv1")
    frames, fps, _, count = loader.load("ignored.mp4", 1, 2, 1, 0.0, video_input=video_io.FileVideo(str(path)))
    assert count == 2 and fps == 10.0 and abs(float(frames[0, 0, 0, 0]) - 0.1) < 0.01  # read from its file
