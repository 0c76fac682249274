"""Hostile input (issue #12): every failure is one clear line before the work starts, nothing broken is
left under a final name, and nothing is lost without a word.

The cases are the ones tried by hand against the headless runner and the nodes (the README's
reliability table lists them). Cases refused before work assert that no weight file was opened;
runs that must do work use a save-only graph (load video -> save video) or the fixture set's tiny
release-format weights, so the file runs in well under three minutes.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

import mgld_vsr
from golden_lib import REPO_ROOT
from runner_cli import BASIC, FAST, assert_one_line_error, run, save_only
from mgld_vsr.runner import graph as headless
from mgld_vsr.models import loader
from mgld_vsr.pipeline import video_io

NODES = mgld_vsr.NODE_CLASS_MAPPINGS


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers


# `noise_clip` and `home` come from tests/system/conftest.py; `run`, `save_only` and
# `assert_one_line_error` from tests/runner_cli.py (shared with the other reliability tests).


@pytest.fixture
def loads(monkeypatch):
    """Every weight file opened during the test (none, for cases refused before work)."""
    opened = []
    read = loader.WeightFile.read.__func__

    def recording(cls, path, config_path=None):
        opened.append(str(path))
        return read(cls, path, config_path)

    monkeypatch.setattr(loader.WeightFile, "read", classmethod(recording))
    return opened


def ui(tmp_path, edit=None, name="workflow.json") -> pathlib.Path:
    """The basic workflow (UI format), edited, written to a file."""
    workflow = json.loads(BASIC.read_text())
    if edit is not None:
        edit(workflow)
    path = tmp_path / name
    path.write_text(json.dumps(workflow))
    return path


def node_of(workflow, kind):
    return next(n for n in workflow["nodes"] if n["type"] == kind)


def no_partial_files(folder) -> list:
    return [p.name for p in pathlib.Path(folder).rglob("*")] if pathlib.Path(folder).exists() else []


# --------------------------------------------------------------------------------------------------
# 1. Validated before any work: workflow structure


def _set_widget(kind, index, value):
    return lambda w: node_of(w, kind)["widgets_values"].__setitem__(index, value)


def _drop_link(kind, slot):
    def edit(w):
        node_of(w, kind)["inputs"][slot]["link"] = None
    return edit


def _dangling_link(w):
    node_of(w, "MGLDSampler")["inputs"][2]["link"] = 999


def _link_from_missing_node(w):
    link = next(link for link in w["links"] if link[0] == node_of(w, "MGLDSampler")["inputs"][2]["link"])
    link[1] = 77


def _wrong_type(w):  # the sampler's flow input fed by the loader's IMAGE output
    link = next(link for link in w["links"] if link[0] == node_of(w, "MGLDSampler")["inputs"][2]["link"])
    link[1], link[2] = node_of(w, "MGLDLoadVideo")["id"], 0


def _muted_source(w):
    node_of(w, "MGLDFlow")["mode"] = 2


def _unknown_type(w):
    node_of(w, "MGLDFlow")["type"] = "SomeOtherPackNode"


def _too_few_widgets(w):
    node_of(w, "MGLDSampler")["widgets_values"] = [50, 10.0]


STRUCTURE = {
    "json list": (lambda w: None, "holds a JSON list"),
    "empty object": (None, "is empty"),
    "missing link id": (_dangling_link, "uses link 999, which the workflow does not have"),
    "unconnected required input": (_drop_link("MGLDSampler", 2), "required input 'flow' (MGLD_FLOW) is not connected"),
    "link to a missing node": (_link_from_missing_node, "linked to node 77, which is not in the workflow"),
    "link of the wrong type": (_wrong_type, "input 'flow' takes MGLD_FLOW but is connected to output 'frames' (IMAGE)"),
    "string widget": (_set_widget("MGLDSampler", 0, "many"), "steps = 'many': is not a number"),
    "null widget": (_set_widget("MGLDSampler", 1, None), "input 'guidance_strength' has no value"),
    "too few widget values": (_too_few_widgets, "has 2 widget values, expected"),
    "input from a muted node": (_muted_source, "which is muted"),
    "node type of another pack": (_unknown_type, "is a 'SomeOtherPackNode', which this runner does not know"),
}


@pytest.mark.parametrize("case", STRUCTURE)
def test_broken_workflow_structure_is_one_line_before_any_work(case, tmp_path, capsys, home, loads):
    edit, message = STRUCTURE[case]
    if case == "json list":
        path = tmp_path / "w.json"
        path.write_text("[1, 2]")
    elif case == "empty object":
        path = tmp_path / "w.json"
        path.write_text("{}")
    else:
        path = ui(tmp_path, edit)
    code, err, seconds = run(capsys, path)
    assert code == 1
    assert_one_line_error(err, message)
    assert loads == [] and seconds < FAST


def test_numbers_typed_as_text_are_read_as_comfyui_reads_them(tmp_path, home):
    """``"20"`` in a number widget is 20 (ComfyUI converts it too); the value is checked after conversion."""
    api = headless.to_api(json.loads(ui(tmp_path, _set_widget("MGLDSampler", 0, "20")).read_text()), NODES)
    headless.check(api, NODES)
    assert next(n for n in api.values() if n["class_type"] == "MGLDSampler")["inputs"]["steps"] == 20


def test_links_through_reroute_nodes_reach_their_source(tmp_path, home):
    def reroute(w):
        sampler, flow = node_of(w, "MGLDSampler"), node_of(w, "MGLDFlow")
        link = next(link for link in w["links"] if link[0] == sampler["inputs"][2]["link"])
        w["nodes"].append({"id": 50, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 90}],
                           "outputs": [{"name": "", "type": "MGLD_FLOW", "links": [link[0]]}]})
        w["links"].append([90, flow["id"], 0, 50, 0, "MGLD_FLOW"])
        link[1], link[2] = 50, 0

    api = headless.to_api(json.loads(ui(tmp_path, reroute).read_text()), NODES)
    flow_id = next(i for i, n in api.items() if n["class_type"] == "MGLDFlow")
    assert next(n for n in api.values() if n["class_type"] == "MGLDSampler")["inputs"]["flow"] == [flow_id, 0]
    headless.check(api, NODES)


def test_api_format_structure(tmp_path, capsys, home, noise_clip, loads):
    graph = json.loads(save_only(tmp_path, noise_clip).read_text())
    cases = {
        "unknown input": ({"2": {"inputs": {"frames_b": ["1", 0]}}}, "has no input 'frames_b'"),
        "output slot out of range": ({"2": {"inputs": {"fps": ["1", 9]}}}, "linked to output 9"),
        "no output node": ({"2": None}, "has no output node"),
    }
    for case, (change, message) in cases.items():
        api = json.loads(json.dumps(graph))
        for node_id, part in change.items():
            if part is None:
                del api[node_id]
            else:
                api[node_id]["inputs"].update(part["inputs"])
        path = tmp_path / "api.json"
        path.write_text(json.dumps(api))
        code, err, seconds = run(capsys, path)
        assert code == 1, case
        assert_one_line_error(err, message)
    assert loads == []


# --------------------------------------------------------------------------------------------------
# 2. Validated before any work: values, combinations, input, output, memory


VALUES = {
    "NaN guidance": (["--set", "MGLDSampler.guidance_strength=nan"], "guidance_strength = nan: is not a finite number"),
    "NaN scale": (["--set", "MGLDSampler.scale=nan"], "scale = nan: is not a finite number"),
    "infinite fusion weight": (["--set", "MGLDDecode.fusion_w=inf"], "fusion_w = inf: is not a finite number"),
    "NaN fusion weight": (["--set", "MGLDDecode.fusion_w=nan"], "node 7 (MGLD Temporal CFW Decode): fusion_w = nan"),
    "steps out of range": (["--set", "MGLDSampler.steps=5000"], "steps = 5000: is outside the allowed range"),
    "fractional steps": (["--set", "MGLDSampler.steps=2.5"], "expected a whole number"),
    "tile 12": (["--set", "MGLDSampler.tile_size=12"], "tile_size = 12: is not a multiple of 8"),
    "tile overlap = tile": (["--set", "MGLDSampler.tile_overlap=64"], "tile_overlap = 64: is not smaller than tile_size"),
    "window overlap = window": (["--set", "MGLDSampler.window_overlap=5"], "window_overlap = 5: is not smaller than window"),
    "decode tile 100": (["--set", "MGLDDecode.decode_tile=100"], "decode_tile = 100: is not a multiple of 64"),
    "prefix escaping the output folder": (["--set", "MGLDSaveVideo.filename_prefix=../../../escape"],
                                          "points outside the output folder"),
    "absolute prefix": (["--set", "MGLDSaveVideo.filename_prefix=/tmp/escape"], "points outside the output folder"),
    "prores with 4:2:0": (["--set", "MGLDSaveVideo.codec=prores", "--set", "MGLDSaveVideo.pixel_format=yuv420p"],
                          "cannot be encoded with prores"),
    "unknown choice": (["--set", "MGLDDecode.color_fix=fast"], "choose one of"),
    "--set without =": (["--set", "MGLDSampler.steps"], "expected NODE.WIDGET=VALUE"),
    "--set of a node that is not there": (["--set", "Upscaler.steps=3"], "no nodes match 'Upscaler'"),
    "start past the end": (["--set", "MGLDLoadVideo.start_frame=50"], "start_frame = 50: the video has 3 frames"),
    "tile larger than the latent grid": (["--set", "MGLDSampler.tile_size=256"], "larger than the 64x64 latent grid"),
    "h265 narrower than 64 px": (["--set", "MGLDSampler.scale=1", "--set", "MGLDSaveVideo.codec=h265"],
                                 "h265 needs at least 64"),
    "output extension vs codec": (["--output", "{tmp}/result.avi"], "h264 cannot be written to a .avi file"),
    "png sequence to a .mp4 name": (["--set", "MGLDSaveVideo.codec=png", "--output", "{tmp}/frames.mp4"],
                                    "png writes a folder of numbered frames"),
    "output inside a file": (["--output", "{noise_clip}/result.mp4"], "is a file, not a folder"),
    "missing input video": (["--input", "{tmp}/nothing.mp4"], "video file not found"),
    "input that is not a video": (["--input", "{text}"], "cannot read"),
}


@pytest.mark.parametrize("case", VALUES)
def test_bad_values_are_refused_before_any_work(case, tmp_path, capsys, home, noise_clip, loads):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    argv, message = VALUES[case]
    argv = [a.format(tmp=tmp_path, noise_clip=noise_clip, text=text) for a in argv]
    code, err, seconds = run(capsys, BASIC, "--input", noise_clip, *argv) if "--input" not in argv else run(capsys, BASIC, *argv)
    assert code == 1
    line = assert_one_line_error(err, message)
    if case.startswith(("NaN", "tile", "window", "decode", "steps")):
        assert line.startswith("error: node "), line  # names the node
    assert loads == [], "a weight file was opened before the failure"
    assert seconds < FAST
    assert no_partial_files(tmp_path / "home" / "output") == []


def test_an_input_too_large_for_the_machine_is_refused_with_the_memory_it_needs(tmp_path, capsys, home, loads):
    """4000x4000 frames at x4: refused from the file's header, before the video is decoded or a model loads."""
    from PIL import Image

    folder = tmp_path / "huge"
    folder.mkdir()
    for index in range(2):
        Image.new("RGB", (4000, 4000), (90, 120, 150)).save(folder / f"{index}.png", compress_level=1)
    code, err, seconds = run(capsys, BASIC, "--input", folder)
    assert code == 1
    line = assert_one_line_error(err, "needs about", "GB", "have", "lower the scale")
    assert "RAFT on 4000x4000 frames" in line, line
    assert loads == [] and seconds < FAST


def test_no_input_and_no_output_node_say_so(tmp_path, capsys, home):
    path = tmp_path / "empty.json"
    path.write_text("{}")
    code, err, _ = run(capsys, path)  # used to "succeed", writing nothing
    assert code == 1
    assert_one_line_error(err, "no nodes")


# --------------------------------------------------------------------------------------------------
# 3. One error style for failures found by the work itself: checkpoints


def _tensors(path):
    return torch.load(path, map_location="cpu", weights_only=True)


class _Marker:
    """A pickled object whose loading would create a file (code in a checkpoint)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _broken_checkpoints(tiny_release, target):
    """Variants of mgldvsr_unet.ckpt that must each fail with a message, not a traceback."""
    unet = tiny_release / "mgldvsr_unet.ckpt"
    sd = _tensors(unet)["state_dict"]
    key = "model.diffusion_model.output_blocks.1.0.in_layers.2.weight"  # a conv the architecture is not inferred from
    data = unet.read_bytes()
    yield "truncated", lambda p: p.write_bytes(data[: len(data) // 2]), "truncated or corrupt"
    yield "swapped", lambda p: shutil.copy(tiny_release / "video_vae_cfw.ckpt", p), "no MGLD diffusion UNet weights"
    wrong = dict(sd, **{key: torch.zeros(3, 3, 1, 1)})
    yield "wrong shapes", lambda p: torch.save({"state_dict": wrong}, p), "wrong shape"
    missing = {k: v for k, v in sd.items() if not k.startswith(key.rsplit(".", 1)[0])}
    yield "missing keys", lambda p: torch.save({"state_dict": missing}, p), "missing key"
    marker = target / "code_ran"
    yield "pickled code", lambda p: torch.save({"state_dict": sd, "x": _Marker(marker)}, p), "refused to load"


def test_checkpoint_errors_are_messages_not_tracebacks(tmp_path, capsys, monkeypatch, noise_clip, tiny_release):
    monkeypatch.setenv("MGLD_HOME", str(tmp_path / "home"))
    for case, make, message in _broken_checkpoints(tiny_release, tmp_path):
        models = tmp_path / case.replace(" ", "_")
        models.mkdir()
        for name in ("video_vae_cfw.ckpt", "raft-things.pth", "mgldvsr_unet.yaml"):
            shutil.copy(tiny_release / name, models / name)
        make(models / "mgldvsr_unet.ckpt")
        code, err, _ = run(capsys, BASIC, "--input", noise_clip, "--models", models)
        assert code == 1, case
        assert_one_line_error(err, "node 1 (MGLD Diffusion Model Loader)", str(models / "mgldvsr_unet.ckpt"))
        assert message in err, (case, err)
        assert len(err.strip().splitlines()) <= 6, err  # the key report, if any, is a few lines
    assert not (tmp_path / "code_ran").exists()  # the pickled code never ran


def test_head_width_error_points_at_the_yaml_and_a_damaged_config_is_an_error(tmp_path, tiny_release):
    bare = tmp_path / "mgldvsr_unet.ckpt"
    shutil.copy(tiny_release / "mgldvsr_unet.ckpt", bare)  # no YAML beside it: the official head width 64 is assumed
    with pytest.raises(loader.CheckpointError, match="do not split into heads of .*put the official-format YAML of "
                                                     "this checkpoint beside it as mgldvsr_unet.yaml"):
        loader.load_component(bare, "unet")
    (tmp_path / "mgldvsr_unet.yaml").write_text("model: [unclosed")
    with pytest.raises(loader.CheckpointError, match="not a valid YAML config"):
        loader.load_component(bare, "unet")
    from safetensors.torch import save_file

    converted = tmp_path / "x.unet.safetensors"
    sd = {k[len("model.diffusion_model."):]: v.contiguous() for k, v in _tensors(bare)["state_dict"].items()
          if k.startswith("model.diffusion_model.")}
    save_file(sd, str(converted), metadata={"mgld_component": "unet", "mgld_config": '{"num_head_channels": 8,'})
    with pytest.raises(loader.CheckpointError, match="config in the file header .* is damaged"):
        loader.load_component(converted, "unet")


def test_debug_shows_the_traceback_and_bugs_always_do(tmp_path, capsys, home, noise_clip, monkeypatch):
    models = tmp_path / "broken"
    models.mkdir()
    for name in ("mgldvsr_unet.ckpt", "video_vae_cfw.ckpt", "raft-things.pth"):
        (models / name).write_bytes(b"\0" * 100)
    code, err, _ = run(capsys, BASIC, "--input", noise_clip, "--models", models, "--debug")
    assert code == 1 and "Traceback" in err and [line[:6] for line in err.splitlines()].count("error:") == 1

    def bug(self, *args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(NODES["MGLDSaveVideo"], "save", bug)
    code, err, _ = run(capsys, save_only(tmp_path, noise_clip))
    assert code == 1 and "Traceback" in err and "This looks like a bug" in err


# --------------------------------------------------------------------------------------------------
# 4. Nothing broken under a final name; exit codes


def test_output_is_written_in_place_and_an_existing_folder_receives_the_numbered_name(tmp_path, capsys, home, noise_clip):
    graph = save_only(tmp_path, noise_clip)
    target = tmp_path / "deep" / "er" / "result.mkv"  # a missing folder is created; .mkv is a container h264 goes in
    code, err, _ = run(capsys, graph, "--output", target)
    assert code == 0, err
    assert video_io.probe_video(target).container == "matroska,webm"
    folder = tmp_path / "existing"
    folder.mkdir()
    code, err, _ = run(capsys, graph, "--output", folder)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["out_00001.mp4"]  # the saver's name, inside the folder
    assert video_io.read_video(folder / "out_00001.mp4").frames.shape[0] == 3


def _subprocess(argv, env=None, **kwargs):
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "run_workflow.py"), *map(str, argv)], cwd=REPO_ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


# `long_clip` comes from tests/system/conftest.py.


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_saving_leaves_no_file_and_exits_130(sig, tmp_path, long_clip):
    out = tmp_path / "out"
    out.mkdir()
    # A job started in the background by a non-interactive shell inherits SIGINT ignored (POSIX), and
    # Python keeps an ignored SIGINT ignored: give the runner the default disposition a terminal gives.
    proc = _subprocess([save_only(tmp_path, long_clip), "--output", out / "result.mp4"],
                       env={"MGLD_HOME": str(tmp_path / "home")},
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(out.glob(".result.partial-*.mp4")):  # the temporary file sits in the destination folder
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "saving never started"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert list(out.iterdir()) == []


def _namespace_shell(script: str) -> list:
    """``script`` in a private mount namespace (to mount a tiny or read-only tmpfs), or None where not allowed."""
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && echo ok"],
                           capture_output=True, text=True)
    return ["unshare", "-rm", "sh", "-c", script] if probe.stdout.strip() == "ok" else None


def test_a_full_disk_gives_a_clear_message_and_no_file(tmp_path, noise_clip, long_clip):
    graph = save_only(tmp_path, long_clip, frames=30)  # about 3 MB of h264 noise
    mount = tmp_path / "small_disk"
    mount.mkdir()
    runner = f"{sys.executable} {REPO_ROOT / 'run_workflow.py'} {graph} --output {mount}/result.mp4"
    command = _namespace_shell(f"mount -t tmpfs -o size=200k tmpfs {mount} && {runner}; code=$?; "
                               f"echo left: $(ls -A {mount}); exit $code")
    env = {**os.environ, "MGLD_HOME": str(tmp_path / "home")}
    if command is not None:  # a real full disk: a 200 kB tmpfs
        out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)
        assert out.returncode == 1, out.stderr
        assert_one_line_error(out.stderr, "the disk is full", "nothing was written under result.mp4")
        assert out.stdout.strip().splitlines()[-1] == "left:", out.stdout
        return
    # No mount namespace here: a file-size limit makes every write past 200 kB fail the same way (EFBIG).
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    out = subprocess.run([sys.executable, str(REPO_ROOT / "run_workflow.py"), str(graph), "--output",
                          str(mount / "result.mp4")], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                         preexec_fn=limit, timeout=300)
    assert out.returncode == 1, out.stderr
    assert_one_line_error(out.stderr, "nothing was written under result.mp4")
    assert list(mount.iterdir()) == []


def test_a_read_only_destination_is_refused_before_any_work(tmp_path, noise_clip):
    graph = save_only(tmp_path, noise_clip)
    mount = tmp_path / "read_only"
    mount.mkdir()
    runner = f"{sys.executable} {REPO_ROOT / 'run_workflow.py'} {graph} --output {mount}/result.mp4"
    command = _namespace_shell(f"mount -t tmpfs -o ro tmpfs {mount} && {runner}")
    if command is None:
        pytest.skip("no mount namespace on this machine to make a read-only folder (root passes permission bits)")
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                         env={**os.environ, "MGLD_HOME": str(tmp_path / "home")})
    assert out.returncode == 1
    assert_one_line_error(out.stderr, "is not writable", "Read-only file system")


def test_exit_codes(tmp_path, noise_clip):
    """0 done, 1 failed, 2 weight files missing (130: the signal test above), from the command line."""
    env = {"MGLD_HOME": str(tmp_path / "home")}
    ok = _subprocess([save_only(tmp_path, noise_clip), "--output", tmp_path / "ok.mp4"], env=env)
    failed = _subprocess([BASIC, "--input", noise_clip, "--set", "MGLDSampler.steps=0"], env=env)
    missing = _subprocess([BASIC, "--input", noise_clip, "--models", tmp_path / "no_models"], env=env)
    assert [p.wait(timeout=300) for p in (ok, failed, missing)] == [0, 1, 2]
    assert ok.communicate()[0].strip() == str(tmp_path / "ok.mp4")


# --------------------------------------------------------------------------------------------------
# 5. No silent loss


def test_a_video_shorter_than_it_declares_is_reported_with_both_numbers(tmp_path, capsys, home):
    full = tmp_path / "full.mp4"
    video_io.write_video(full, torch.randint(0, 256, (24, 64, 64, 3), dtype=torch.uint8), 24)  # faststart: index first
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    code, err, _ = run(capsys, save_only(tmp_path, cut), "--output", tmp_path / "result.mp4")
    assert code == 0, err
    got = video_io.read_video(tmp_path / "result.mp4").frames.shape[0]
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "declares 24 frames but only " in warning[0], err
    decoded = int(warning[0].split("but only ")[1].split()[0])
    assert 0 < decoded < 24 and decoded <= got < 24  # frames that do not decode are stood in for by the one before


def test_dropped_alpha_is_mentioned_once(tmp_path, capsys, home):
    from PIL import Image

    folder = tmp_path / "rgba"
    folder.mkdir()
    for index in range(3):
        pixels = np.zeros((32, 32, 4), np.uint8)
        pixels[..., 3] = 128
        Image.fromarray(pixels).save(folder / f"{index}.png")
    code, err, _ = run(capsys, save_only(tmp_path, folder), "--output", tmp_path / "result.mp4")
    assert code == 0, err
    assert sum("alpha" in line for line in err.splitlines()) == 1, err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for node in ("MGLDFlow", "MGLDSampler"):  # two nodes converting the same RGBA IMAGE
            mgld_vsr.nodes.common.image_to_frames(torch.rand(2, 8, 8, 4))
    assert len([w for w in caught if "alpha" in str(w.message)]) == 1


def test_odd_sizes_are_padded_with_a_warning_or_kept_exactly(tmp_path):
    frames = torch.randint(0, 256, (2, 17, 33, 3), dtype=torch.uint8)
    with pytest.warns(RuntimeWarning, match=r"33x17 frames are written as 34x18: yuv420p needs even sizes"):
        video_io.write_video(tmp_path / "padded.mp4", frames, 24)
    padded = video_io.read_video(tmp_path / "padded.mp4").frames
    assert padded.shape[1:3] == (18, 34)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no padding, no warning
        video_io.write_video(tmp_path / "exact.mp4", frames, 24, pixel_format="yuv444p")
        video_io.write_video(tmp_path / "exact.mkv", frames, 24, codec="ffv1")
    assert video_io.read_video(tmp_path / "exact.mp4").frames.shape[1:3] == (17, 33)
    assert torch.equal(video_io.read_video(tmp_path / "exact.mkv").frames, frames)


# --------------------------------------------------------------------------------------------------
# 6. The nodes: the same rules through ComfyUI's VALIDATE_INPUTS


def _widgets(cls):
    from mgld_vsr.nodes.validation import input_specs, is_widget

    return [name for name, kind, options, _ in input_specs(cls) if is_widget(kind, options)
            and not options.get("video_upload") and not options.get("forceInput")]


@pytest.mark.parametrize("kind", ["MGLDLoadVideo", "MGLDFlow", "MGLDSampler", "MGLDDecode", "MGLDSaveVideo",
                                  "MGLDDecodeAndSave"])
def test_validate_inputs_takes_every_widget_and_accepts_the_defaults(kind, home):
    """ComfyUI skips its own range and list checks for the inputs VALIDATE_INPUTS names (and NaN passes them
    anyway), so the method must name, and check, every widget. The shipped defaults pass."""
    import inspect

    cls = NODES[kind]
    assert inspect.getfullargspec(cls.VALIDATE_INPUTS).args[1:] == _widgets(cls)
    defaults = {}
    for name, value in cls.INPUT_TYPES()["required"].items():
        if name in _widgets(cls):
            defaults[name] = value[1].get("default", value[0][0] if isinstance(value[0], list) else None)
    assert cls.VALIDATE_INPUTS(**defaults) is True


@pytest.mark.parametrize("kind, values, message", [
    ("MGLDSampler", {"guidance_strength": float("nan")}, "guidance_strength = nan: is not a finite number"),
    ("MGLDSampler", {"scale": float("inf")}, "scale = inf: is not a finite number"),
    ("MGLDSampler", {"tile_size": 12}, "tile_size = 12: is not a multiple of 8"),
    ("MGLDSampler", {"tile_size": 64, "tile_overlap": 64}, "is not smaller than tile_size = 64"),
    ("MGLDSampler", {"window": 5, "window_overlap": 5}, "is not smaller than window = 5"),
    ("MGLDSampler", {"steps": 0}, "steps = 0: is outside the allowed range; set a number from 1 to 1000"),
    ("MGLDDecode", {"fusion_w": float("nan")}, "fusion_w = nan"),
    ("MGLDDecode", {"decode_tile": 100}, "decode_tile = 100: is not a multiple of 64 pixels; use 64 or 128"),
    ("MGLDDecodeAndSave", {"decode_tile": 100}, "decode_tile = 100"),
    ("MGLDSaveVideo", {"filename_prefix": "../../.."}, "points outside the output folder"),
    ("MGLDDecodeAndSave", {"filename_prefix": "../x"}, "points outside the output folder"),
    ("MGLDSaveVideo", {"codec": "prores", "pixel_format": "yuv420p"}, "cannot be encoded with prores"),
    ("MGLDFlow", {"scene_cut_threshold": float("nan")}, "scene_cut_threshold = nan"),
    ("MGLDLoadVideo", {"every_nth": 0}, "every_nth = 0: is outside the allowed range"),
])
def test_validate_inputs_refuses_with_one_line(kind, values, message, home):
    verdict = NODES[kind].VALIDATE_INPUTS(**values)
    assert isinstance(verdict, str) and message in verdict and "\n" not in verdict
    assert verdict.startswith(mgld_vsr.NODE_DISPLAY_NAME_MAPPINGS[kind] + ": ")


def test_the_load_node_refuses_a_clip_too_large_to_decode_from_its_header(tmp_path, monkeypatch):
    from mgld_vsr.pipeline.memory import footprint

    monkeypatch.setattr(footprint, "host_available_bytes", lambda: 10_000)  # a machine with 10 kB free
    with pytest.raises(footprint.NotEnoughMemory, match="3 frames of 128x96 need about .* GB of RAM to load"):
        NODES["MGLDLoadVideo"]().load(str(REPO_ROOT / "examples" / "sample_lr.mp4"), 0, 3, 1, 0.0)
