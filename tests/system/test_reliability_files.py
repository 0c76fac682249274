"""The user's files are never destroyed, and the late cases are refused before any model loads (issue #31).

* ``--output`` that is the input video (or any file or folder the workflow reads) is refused before
  work, whatever the spelling: a symbolic or hard link, ``..`` in the path, another case on a file
  system that ignores case;
* an existing output is refused unless ``--overwrite``; with it, the old file survives any failure
  or signal until the complete new file is renamed over it; the nodes (ComfyUI) keep numbering;
* a video stream without frames, image frames of different sizes, a GPU the machine does not have, a
  name too long for the file system, ``--resume`` naming a file and two nodes sharing one id are
  refused before work, and no weight file is opened (an audit hook sees every ``open``);
* hostile workflow files (5,000 levels of nesting, a 1,000-node chain, a 1,000-node wide graph) are
  run or refused with one line, the checks in under 10 s and the whole in under 1 GB;
* a missing ``raft-things.pth`` exits 2 like the other weights; "no output node" is said in those
  words; Ctrl-C after the file is renamed, and during the shutdown, gives 130 and one line.

docs/reliability.md lists these cases with what happens.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import mgld_vsr
from golden_lib import REPO_ROOT
from runner_cli import BASIC, FAST, assert_one_line_error, run, save_only
from mgld_vsr.models import loader
from mgld_vsr.pipeline import video_io
from mgld_vsr.runner import preflight

WEIGHT_SUFFIXES = (".ckpt", ".pth", ".safetensors", ".pt", ".bin")


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers


# `noise_clip` and `home` come from tests/system/conftest.py; `run`, `save_only` and
# `assert_one_line_error` from tests/runner_cli.py (shared with the other reliability tests).


_WATCH: list = []  # the list the audit hook appends opened weight files to, while a test watches


def _audit(event, args):
    if event == "open" and _WATCH and isinstance(args[0], (str, bytes, os.PathLike)):
        name = os.fsdecode(args[0])
        if name.lower().endswith(WEIGHT_SUFFIXES):
            _WATCH[-1].append(name)


@pytest.fixture
def loads(monkeypatch):
    """Every weight file opened during the test: by any ``open`` (an audit hook, which sees torch.load's
    too) or through the pack's loader. Empty for the cases refused before work."""
    if _audit not in getattr(sys, "_mgld_audit", ()):
        sys.addaudithook(_audit)  # hooks cannot be removed: one per process, idle unless a test watches
        sys._mgld_audit = (_audit,)
    opened: list = []
    read = loader.WeightFile.read.__func__

    def recording(cls, path, config_path=None):
        opened.append(str(path))
        return read(cls, path, config_path)

    monkeypatch.setattr(loader.WeightFile, "read", classmethod(recording))
    _WATCH.append(opened)
    yield opened
    _WATCH.remove(opened)


def ignores_case(folder: pathlib.Path) -> bool:
    """Whether the file system of ``folder`` ignores case, found by probing it (not assumed from the OS)."""
    probe = folder / ".Case-Probe"
    probe.write_text("")
    try:
        return (folder / ".case-probe").exists() and os.path.samefile(probe, folder / ".case-probe")
    finally:
        probe.unlink()


# --------------------------------------------------------------------------------------------------
# 1. The input is never the output


def test_output_equal_to_the_input_is_refused_before_any_model_loads(tmp_path, capsys, home, noise_clip, loads, monkeypatch):
    """The issue's first case, as a user types it: the input stays byte-identical, exit 1, no weight opened."""
    source = tmp_path / "clip.mp4"
    shutil.copy(noise_clip, source)
    original = source.read_bytes()
    monkeypatch.chdir(tmp_path)
    code, err, seconds = run(capsys, BASIC, "--input", "clip.mp4", "--output", "clip.mp4")
    assert code == 1
    assert_one_line_error(err, "--output clip.mp4 is the file node 4 (MGLD Load LR Video) reads", "choose another")
    assert source.read_bytes() == original
    assert loads == [] and seconds < FAST
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no partial file either


def test_every_spelling_of_the_input_is_the_input(tmp_path, capsys, home, noise_clip, loads):
    """A symbolic link, a hard link, ``..`` and ``--overwrite`` change nothing: the same file is refused."""
    folder = tmp_path / "videos"
    folder.mkdir()
    source = folder / "clip.mp4"
    shutil.copy(noise_clip, source)
    original = source.read_bytes()
    (tmp_path / "link.mp4").symlink_to(source)
    os.link(source, tmp_path / "hard.mp4")
    (tmp_path / "linked_folder").symlink_to(folder)
    spellings = [(source, tmp_path / "link.mp4"), (tmp_path / "link.mp4", source), (source, tmp_path / "hard.mp4"),
                 (source, folder / ".." / "videos" / "clip.mp4"), (source, tmp_path / "linked_folder" / "clip.mp4"),
                 (source, folder / "clip")]  # no extension: the saver adds .mp4
    if ignores_case(tmp_path):
        spellings.append((source, folder / "CLIP.MP4"))
    for given, output in spellings:
        for extra in ([], ["--overwrite"]):
            code, err, _ = run(capsys, BASIC, "--input", given, "--output", output, *extra)
            assert code == 1, (given, output, err)
            assert_one_line_error(err, "reads: writing there would destroy the input")
    assert source.read_bytes() == original
    assert loads == []


def test_a_case_variant_of_the_input_on_a_file_system_that_ignores_case(tmp_path, capsys, home, noise_clip, loads):
    """macOS and Windows file systems ignore case: ``CLIP.MP4`` is ``clip.mp4`` there (probed, not assumed)."""
    if not ignores_case(tmp_path):
        pytest.skip(f"{tmp_path} tells case apart (the identity check is the same as for the links above)")
    shutil.copy(noise_clip, tmp_path / "clip.mp4")
    code, err, _ = run(capsys, BASIC, "--input", tmp_path / "clip.mp4", "--output", tmp_path / "CLIP.MP4", "--overwrite")
    assert code == 1
    assert_one_line_error(err, "would destroy the input")
    assert loads == []


def test_an_image_folder_read_by_the_workflow_is_not_an_output(tmp_path, capsys, home, loads):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        video_io.write_video(folder / f"f{index}", torch.full((1, 32, 32, 3), 40 * index, dtype=torch.uint8), 24,
                             codec="png")
        (folder / f"f{index}" / "frame_000000.png").rename(folder / f"{index}.png")
        (folder / f"f{index}").rmdir()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for output in (folder, f"{folder}/", tmp_path / "." / "frames"):
        for codec in ("h264", "png"):
            code, err, _ = run(capsys, BASIC, "--input", folder, "--output", output, "--set", f"MGLDSaveVideo.codec={codec}")
            assert code == 1, (output, codec, err)
            assert_one_line_error(err, "is the folder node 4 (MGLD Load LR Video) reads")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert loads == []


# --------------------------------------------------------------------------------------------------
# 2. Existing outputs


def test_running_twice_to_the_same_output_keeps_the_first_file(tmp_path, capsys, home, noise_clip):
    """Without --overwrite the second run is refused, naming the file and the flag; the first file is
    byte-identical. With it, the file is replaced (by the new, different result)."""
    target = tmp_path / "result.mp4"
    code, err, _ = run(capsys, save_only(tmp_path, noise_clip), "--output", target)
    assert code == 0, err
    first = target.read_bytes()
    shorter = save_only(tmp_path, noise_clip, frames=2, name="shorter.json")
    code, err, seconds = run(capsys, shorter, "--output", target)
    assert code == 1
    assert_one_line_error(err, str(target), "exists", "--overwrite")
    assert target.read_bytes() == first and seconds < FAST
    code, err, _ = run(capsys, shorter, "--output", target, "--overwrite")
    assert code == 0, err
    assert video_io.read_video(target).frames.shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_the_basic_workflow_twice_to_the_same_output_is_refused_before_any_model_loads(tmp_path, capsys, home, noise_clip,
                                                                                       loads):
    target = tmp_path / "upscaled.mp4"
    target.write_bytes(b"the first run's result")
    code, err, seconds = run(capsys, BASIC, "--input", noise_clip, "--output", target)
    assert code == 1
    assert_one_line_error(err, f"{target} exists; add --overwrite")
    assert target.read_bytes() == b"the first run's result"
    assert loads == [] and seconds < FAST


def test_with_overwrite_a_failure_keeps_the_old_file(tmp_path, capsys, home, noise_clip, monkeypatch):
    from mgld_vsr.pipeline.video_io import writer

    target = tmp_path / "result.mp4"
    target.write_bytes(b"the old result")
    convert, calls = writer._to_av_frame, []

    def failing(*args, **kwargs):  # the encoder fails on the third frame, after two were written
        calls.append(1)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return convert(*args, **kwargs)

    monkeypatch.setattr(writer, "_to_av_frame", failing)
    code, err, _ = run(capsys, save_only(tmp_path, noise_clip), "--output", target, "--overwrite")
    assert code == 1 and len(calls) == 3
    assert_one_line_error(err, "Input/output error")
    assert target.read_bytes() == b"the old result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mp4", "save_only.json"]


# `long_clip` comes from tests/system/conftest.py.


def _script(tmp_path, *lines) -> list:
    """``python -c``: run_workflow.py's own entry point (run_as_script) after ``lines`` (patches, exit handlers)."""
    code = "\n".join(["import os, signal, sys, atexit", f"sys.path.insert(0, {str(REPO_ROOT)!r})", "import run_workflow",
                      *lines, "run_workflow.run_as_script(sys.argv[1:])"])
    return [sys.executable, "-c", code]


def _popen(command, argv, tmp_path):
    # A background job of a non-interactive shell inherits SIGINT ignored: give it the terminal's default.
    return subprocess.Popen([*command, *map(str, argv)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "MGLD_HOME": str(tmp_path / "home")},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_with_overwrite_a_signal_while_saving_keeps_the_old_file(sig, tmp_path, long_clip):
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.mp4").write_bytes(b"the old result")
    proc = _popen([sys.executable, str(REPO_ROOT / "run_workflow.py")],
                  [save_only(tmp_path, long_clip), "--output", out / "result.mp4", "--overwrite"], tmp_path)
    deadline = time.monotonic() + 120
    while not list(out.glob(".result.partial-*.mp4")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "saving never started"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["result.mp4"]
    assert (out / "result.mp4").read_bytes() == b"the old result"


def test_the_nodes_keep_numbering_in_comfyui(tmp_path, home, noise_clip):
    """Inside ComfyUI (no --output) a saver never replaces a file: each run takes the next number."""
    frames = video_io.read_video(noise_clip).frames.float() / 255
    save = mgld_vsr.NODE_CLASS_MAPPINGS["MGLDSaveVideo"]()
    first = save.save(frames, 24.0, "MGLD/again", "h264", 19, "auto")["result"][0]
    content = pathlib.Path(first).read_bytes()
    second = save.save(frames[:2], 24.0, "MGLD/again", "h264", 19, "auto")["result"][0]
    assert [os.path.basename(first), os.path.basename(second)] == ["again_00001.mp4", "again_00002.mp4"]
    assert pathlib.Path(first).read_bytes() == content


# --------------------------------------------------------------------------------------------------
# 3. The late cases, now refused before any work


def _frameless_mp4(tmp_path, noise_clip) -> pathlib.Path:
    """An mp4 whose header declares 3 frames and whose stream holds none (cut where the frame data begins)."""
    data = noise_clip.read_bytes()
    mdat = data.index(b"mdat")  # faststart: the index first, then the frame data
    path = tmp_path / "frameless.mp4"
    path.write_bytes(data[: mdat + 4])
    assert video_io.probe_video(path).frame_count == 3  # the header alone looks fine
    return path


def _mixed_sizes(tmp_path) -> pathlib.Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for index, width in enumerate((32, 32, 40)):
        video_io.write_video(folder / f"f{index}", torch.zeros(1, 32, width, 3, dtype=torch.uint8), 24, codec="png")
        (folder / f"f{index}" / "frame_000000.png").rename(folder / f"{index}.png")
        (folder / f"f{index}").rmdir()
    return folder


LATE = {
    "a video stream without frames": (lambda t, c: ["--input", _frameless_mp4(t, c)], "holds no frames that decode"),
    "image frames of different sizes": (lambda t, c: ["--input", _mixed_sizes(t)], "2.png is 40x32 but 0.png is 32x32"),
    "a GPU the machine does not have": (lambda t, c: ["--set", "MGLDSampler.devices=cuda:7"],
                                        "devices = 'cuda:7': asks for cuda:7 but this machine shows 1 GPU(s); use cuda:0"),
    "an output name too long for the file system": (lambda t, c: ["--output", t / ("a" * 250 + ".mp4")],
                                                    "bytes this file system allows: use a name of at most"),
    "a save prefix too long for the file system": (lambda t, c: ["--set", f"MGLDSaveVideo.filename_prefix={'b' * 250}"],
                                                   "filename_prefix"),
    "--resume naming a file": (lambda t, c: ["--resume", c], "is a file, not a folder"),
}


@pytest.mark.parametrize("case", LATE)
def test_late_cases_are_refused_before_any_model_loads(case, tmp_path, capsys, home, noise_clip, loads, monkeypatch):
    from mgld_vsr.pipeline.workers import executor

    monkeypatch.setattr(executor, "local_gpu_count", lambda: 1)  # a machine with one GPU, whatever runs the test
    monkeypatch.setattr(executor, "ray_available", lambda: True)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    make, message = LATE[case]
    argv = make(tmp_path, noise_clip)
    code, err, seconds = run(capsys, BASIC, *(["--input", noise_clip] if "--input" not in argv else []), *argv)
    assert code == 1
    assert_one_line_error(err, message)
    assert loads == [], "a weight file was opened before the refusal"
    assert seconds < FAST


def _duplicate_ui_id(workflow):
    saver = next(n for n in workflow["nodes"] if n["type"] == "MGLDSaveVideo")
    workflow["nodes"].append({**json.loads(json.dumps(saver)), "id": 1, "title": "second saver"})


def test_two_nodes_sharing_one_id_are_refused(tmp_path, capsys, home, noise_clip, loads):
    workflow = json.loads(BASIC.read_text())
    _duplicate_ui_id(workflow)
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps(workflow))
    api = json.loads(save_only(tmp_path, noise_clip).read_text())
    text = json.dumps(api)
    duplicated = tmp_path / "api.json"  # JSON keeps the last of two equal keys: the first node would vanish
    duplicated.write_text(text[:-1] + ', "1": ' + json.dumps(api["1"]) + "}")
    links = json.loads(BASIC.read_text())
    links["links"].append(list(links["links"][0]))
    twice = tmp_path / "links.json"
    twice.write_text(json.dumps(links))
    for path, message in ((ui, "two nodes share the id 1"), (duplicated, "two nodes share the id 1"),
                          (twice, f"two links with the id {links['links'][0][0]}")):
        code, err, seconds = run(capsys, path, "--input", noise_clip)
        assert code == 1, path
        assert_one_line_error(err, message)
        assert seconds < FAST
    assert loads == []


# --------------------------------------------------------------------------------------------------
# 4. Hostile workflow files: bounded time and memory

MEASURE = """
import json, sys, time
sys.path.insert(0, {root!r})
import run_workflow
run_workflow.load_pack()
import mgld_vsr
from mgld_vsr.runner import graph as headless
start = time.perf_counter()
try:
    api = headless.to_api(headless.load_workflow(sys.argv[1]), mgld_vsr.NODE_CLASS_MAPPINGS)
    headless.check(api, mgld_vsr.NODE_CLASS_MAPPINGS)
except headless.WorkflowError:
    pass
checks = time.perf_counter() - start
code = run_workflow.main(sys.argv[1:])
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over execve, so a child started by a large
# pytest process would report the parent's peak; VmHWM belongs to this process's own address space.
try:
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
except OSError:  # no /proc (macOS): ru_maxrss, in bytes there
    import resource
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"code": code, "checks": checks, "peak_mb": peak_kb / 1024}}))
"""


def _loader(video, source=None):
    inputs = {"video": str(video), "start_frame": 0, "frame_count": 0, "every_nth": 1, "force_fps": 0.0}
    if source is not None:
        inputs["video_input"] = [source, 0]
    return {"class_type": "MGLDLoadVideo", "inputs": inputs}


def _chain(noise_clip, length):
    """Load LR Video -> Create Video -> Load LR Video -> ... -> Save Video: ``length`` nodes in one line."""
    api = {"1": _loader(noise_clip)}
    while len(api) < length - 2:
        last = str(len(api))
        api[str(len(api) + 1)] = {"class_type": "CreateVideo", "inputs": {"images": [last, 0], "fps": [last, 1]}}
        api[str(len(api) + 1)] = _loader(noise_clip, str(len(api)))
    last = str(len(api))
    api[str(len(api) + 1)] = {"class_type": "MGLDSaveVideo", "inputs": {
        "frames": [last, 0], "fps": [last, 1], "filename_prefix": "chain", "codec": "h264", "crf": 19,
        "pixel_format": "auto"}}
    return api


def _wide(noise_clip, width):
    """One loader feeding ``width - 1`` Preview Image nodes."""
    return {"1": _loader(noise_clip), **{str(i): {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
                                   for i in range(2, width + 1)}}


HOSTILE = {
    "5,000 levels of nesting": (lambda noise_clip: "[" * 5000 + "]" * 5000, 1, "more than 100 levels deep"),
    "5,000 nested objects": (lambda noise_clip: '{"a":' * 5000 + "1" + "}" * 5000, 1, "more than 100 levels deep"),
    "a 1,000-node chain": (lambda noise_clip: json.dumps(_chain(noise_clip, 1000)), 0, None),
    "a 1,000-node wide graph": (lambda noise_clip: json.dumps(_wide(noise_clip, 1000)), 0, None),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_workflows_are_run_or_refused_in_bounded_time_and_memory(case, tmp_path, noise_clip):
    make, expected, message = HOSTILE[case]
    workflow = tmp_path / "hostile.json"
    workflow.write_text(make(noise_clip))
    out = subprocess.run([sys.executable, "-c", MEASURE.format(root=str(REPO_ROOT)), str(workflow)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "MGLD_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == expected, out.stderr
    assert result["checks"] < 10, result
    assert result["peak_mb"] < 1024, result
    if message:
        assert_one_line_error(out.stderr, message)
    else:
        assert "Traceback" not in out.stderr and "error:" not in out.stderr, out.stderr


def test_the_limits_are_far_above_the_shipped_workflows_and_refused_by_name(tmp_path, capsys, home, noise_clip):
    from mgld_vsr.runner import graph as headless

    for path in (REPO_ROOT / "example_workflows").glob("*.json"):
        text = path.read_text()
        assert len(text) * 100 < preflight.MAX_WORKFLOW_BYTES
        workflow = json.loads(text)
        assert len(workflow["nodes"]) * 100 < preflight.MAX_NODES and len(workflow["links"]) * 100 < preflight.MAX_LINKS
        headless.load_workflow(str(path))  # nesting within the limit
    too_many = tmp_path / "many.json"
    too_many.write_text(json.dumps(_wide(noise_clip, preflight.MAX_NODES + 1)))
    code, err, seconds = run(capsys, too_many)
    assert code == 1
    assert_one_line_error(err, f"{preflight.MAX_NODES + 1} nodes, more than the {preflight.MAX_NODES}")
    assert seconds < 10


# --------------------------------------------------------------------------------------------------
# 5. Consistency


@pytest.mark.parametrize("missing", ["raft-things.pth", "mgldvsr_unet.ckpt", "video_vae_cfw.ckpt"])
def test_every_missing_weight_file_takes_the_same_path(missing, tmp_path, capsys, home, noise_clip, tiny_release, loads):
    models = tmp_path / "models"
    models.mkdir()
    for path in tiny_release.iterdir():
        if path.name != missing:
            os.symlink(path, models / path.name)
    code, err, _ = run(capsys, BASIC, "--input", noise_clip, "--models", models)
    assert code == 2, err
    assert err.splitlines()[0] == f"Missing model files: {missing}"
    assert f"Put the official weights in {models}" in err and "error:" not in err
    assert loads == []


def _no_saver(workflow):
    workflow["nodes"] = [n for n in workflow["nodes"] if n["type"] != "MGLDSaveVideo"]


def _muted_saver(workflow):
    next(n for n in workflow["nodes"] if n["type"] == "MGLDSaveVideo")["mode"] = 2


def _all_muted(workflow):
    for node in workflow["nodes"]:
        node["mode"] = 4


@pytest.mark.parametrize("edit", [_no_saver, _muted_saver, _all_muted])
@pytest.mark.parametrize("output", [False, True], ids=["", "--output"])
def test_a_workflow_without_an_output_node_says_so(edit, output, tmp_path, capsys, home, noise_clip, loads):
    workflow = json.loads(BASIC.read_text())
    edit(workflow)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workflow))
    extra = ["--output", tmp_path / "x.mp4"] if output else []
    code, err, _ = run(capsys, path, *(["--input", noise_clip] if edit is not _all_muted else []), *extra)
    assert code == 1
    assert_one_line_error(err, "no output node")
    assert loads == []


CTRL_C = {
    "while importing": ["run_workflow.load_pack = lambda: os.kill(os.getpid(), signal.SIGINT)"],
    "just after the rename": ["_replace = os.replace",
                              "def replace(a, b):\n    _replace(a, b)\n    if str(b).endswith('result.mp4'):\n"
                              "        os.kill(os.getpid(), signal.SIGINT)",
                              "os.replace = replace"],
    "while printing the path": ["import builtins", "_print = builtins.print",
                                "def printing(*a, **k):\n    _print(*a, **k)\n    if a and str(a[0]).endswith('.mp4'):"
                                "\n        os.kill(os.getpid(), signal.SIGINT)", "builtins.print = printing"],
    "during the shutdown": ["atexit.register(os.kill, os.getpid(), signal.SIGINT)"],
    "SIGTERM during the shutdown": ["atexit.register(os.kill, os.getpid(), signal.SIGTERM)"],
}


@pytest.mark.parametrize("moment", CTRL_C)
def test_ctrl_c_at_any_moment_exits_130_with_one_line(moment, tmp_path, noise_clip):
    out = tmp_path / "result.mp4"
    proc = _popen(_script(tmp_path, *CTRL_C[moment]), [save_only(tmp_path, noise_clip), "--output", out], tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (proc.returncode, err)
    lines = [line for line in err.splitlines() if line.startswith(("interrupted", "terminated"))]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    if moment != "while importing":  # the file was complete before the signal: it is kept, whole
        assert video_io.read_video(out).frames.shape[0] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
