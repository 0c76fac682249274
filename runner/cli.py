"""The headless runner's command line: run a shipped MGLD-VSR workflow without ComfyUI (the README's main job).

    python run_workflow.py example_workflows/mgld_vsr_basic.json --input examples/sample_lr.mp4 --output out.mp4 \\
        [--overwrite] [--models DIR] [--set MGLDSampler.guidance_strength=5] [--set MGLDSampler.steps=20] \\
        [--no-stream] [--workers N | --ray-address ADDR] [--resume DIR [--checkpoint-every K]] [--debug]

A decoder whose frames only go to a saver runs as the streaming MGLD Decode + Save Video node (same
file; the upscaled clip is written frame by frame instead of held in RAM), so long clips fit.

Everything that can be checked is checked before the first model loads (``runner/preflight.py``); an
expected failure prints one ``error:`` line naming the node, the input, the value, the cause and
the fix (``--debug`` adds the traceback). Exit status: 0 done, 1 failed, 2 weight files missing,
130 interrupted (Ctrl-C or SIGTERM). No failure or signal leaves a file under the output's name, and no
file of the user's is destroyed: an ``--output`` the workflow reads is refused, an existing one needs
``--overwrite`` (and is replaced only by the complete new file).
"""
import argparse
import glob
import os
import signal
import sys
import time
import traceback
import warnings

from .. import NODE_CLASS_MAPPINGS
from ..pipeline.defaults import CHECKPOINT_EVERY

EXIT_OK, EXIT_FAILED, EXIT_MISSING_WEIGHTS, EXIT_INTERRUPTED = 0, 1, 2, 130

WEIGHTS_HELP = """Missing model files: {missing}
Put the official weights in {folder}:
  mgldvsr_unet.ckpt, video_vae_cfw.ckpt  - the MGLD-VSR release (links in the MGLD-VSR repository README:
                                            OneDrive or BaiduNetDisk)
  raft-things.pth                        - the original RAFT release (princeton-vl/RAFT, download_models.sh)
or point --models at the folder that holds them. Nothing is downloaded automatically."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that every ``finally`` (and the writer's clean-up) runs."""


def _on_sigterm(signum, frame):
    raise Terminated("terminated")


def _say_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings (a video shorter than it declares, dropped alpha, padded sizes) as one line each."""
    print(f"warning: {message}", file=sys.stderr)


def expected_errors():
    """Failures that are the input's, the machine's or the user's, not the program's: no traceback for these."""
    import torch

    from ..models.checkpoint import CheckpointError

    return (ValueError, OSError, MemoryError, CheckpointError, getattr(torch, "OutOfMemoryError", MemoryError))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Run an MGLD-VSR workflow file headless (no ComfyUI server).",
        epilog="exit status: 0 done, 1 failed, 2 weight files missing, 130 interrupted (Ctrl-C or SIGTERM)")
    parser.add_argument("workflow", help="UI- or API-format workflow JSON (e.g. example_workflows/mgld_vsr_basic.json)")
    parser.add_argument("--input", help="LR video for the workflow's Load LR Video node")
    parser.add_argument("--output", help="file to write (its extension must suit the codec: .mp4/.mov/.mkv for h264 "
                                         "and h265, .mov/.mkv for prores, .mkv for ffv1, a folder name for png); an "
                                         "existing folder receives the saver's numbered name. Default: output/")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output file (as ffmpeg's -y); without it an existing file is "
                             "refused. The old file is kept until the new one is complete")
    parser.add_argument("--models", help="folder holding the weight files (default: $MGLD_MODELS_DIR, else ./weights)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.WIDGET=VALUE",
                        help="override a widget; NODE is a node id, title or type")
    parser.add_argument("--no-stream", action="store_true",
                        help="run a Decode -> Save pair as two nodes (the whole upscaled clip in RAM) instead of "
                             "streaming decoded frames into the file")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="spread flow, sampling and decoding over N Ray workers (one GPU each on a GPU machine, "
                             "else CPU processes); same output as without. Needs: pip install -r "
                             "requirements-distributed.txt")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="use the existing Ray cluster at ADDR (e.g. 10.0.0.1:6379): one worker per GPU, or "
                             "--workers N")
    parser.add_argument("--resume", metavar="DIR",
                        help="save the sampling state in DIR every few steps, and resume an interrupted run of the "
                             "same inputs and settings from its last saved step (same output)")
    parser.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY, metavar="K",
                        help="with --resume: save the sampling state every K denoising steps (default "
                             f"{CHECKPOINT_EVERY})")
    parser.add_argument("--debug", action="store_true", help="print the traceback of every failure")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    if args.models:
        os.environ["MGLD_MODELS_DIR"] = os.path.abspath(args.models)
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_showwarning = warnings.showwarning
    warnings.showwarning = _say_warning
    try:
        return _run(args)
    except KeyboardInterrupt as exc:  # after the work (printing the paths): the files are complete
        say_interrupted(exc, "after the output was written; it is complete")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        warnings.showwarning = previous_showwarning


def say_interrupted(exc: BaseException, what: str = "stopped; no partial output was left behind") -> None:
    """The one line an interrupt prints (Ctrl-C, or SIGTERM as :class:`Terminated`)."""
    try:
        print(f"\n{'terminated' if isinstance(exc, Terminated) else 'interrupted'}: {what}", file=sys.stderr)
    except (KeyboardInterrupt, OSError, ValueError, RuntimeError):  # a second signal, or stderr closed
        pass


def _run(args) -> int:
    start = time.perf_counter()
    if args.ray_address:
        os.environ["RAY_ADDRESS"] = args.ray_address
    try:
        from . import graph as headless
        from ..nodes import host

        if args.resume:
            check_resume(args.resume)
            os.environ["MGLD_RESUME_DIR"] = os.path.abspath(args.resume)
            os.environ["MGLD_CHECKPOINT_EVERY"] = str(args.checkpoint_every)

        classes = NODE_CLASS_MAPPINGS
        api = headless.to_api(headless.load_workflow(args.workflow), classes)
        if args.input and not headless.set_input_video(api, os.path.abspath(args.input)):
            raise headless.WorkflowError("--input given but the workflow has no video loader "
                                         "(MGLD Load LR Video or Load Video)")
        headless.apply_overrides(api, classes, args.set)
        if args.workers is not None or args.ray_address:
            from ..pipeline.workers.executor import ray_available

            if not ray_available():
                option = "--workers" if args.workers is not None else "--ray-address"
                raise headless.WorkflowError(f"{option} spreads the run over Ray workers, but Ray is not installed: "
                                             f"pip install -r requirements-distributed.txt, or run without {option}")
            headless.set_devices(api, classes, str(args.workers) if args.workers else "auto")
        if args.output:
            direct_output(api, args.output, overwrite=args.overwrite)
        # Checked as the user wrote it (messages name the nodes of the file), then run streaming.
        headless.check(api, classes, streamed=not args.no_stream, output_given=bool(args.output))
        if not args.no_stream:  # same file, but RAM does not grow with the clip length
            headless.stream_to_file(api, classes)
        missing = headless.missing_weights(api)
        if missing:
            print(WEIGHTS_HELP.format(missing=", ".join(missing), folder=host.model_dirs()[0]), file=sys.stderr)
            return EXIT_MISSING_WEIGHTS
        runner = headless.Runner(classes)
        results = runner.run(api)
        for node_id, text in runner.texts.items():  # e.g. the guidance preview's table: strength, error, seconds
            print(f"{headless.preflight.node_label(node_id, api[node_id])}:\n{text}", file=sys.stderr)
    except KeyboardInterrupt as exc:
        say_interrupted(exc)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - sorted below into the user's problems and the program's
        return report(exc, args.debug)
    saved = headless.saved_paths(api, results)
    for path in saved:
        print(path)
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return EXIT_OK


def direct_output(api: dict, output: str, overwrite: bool = False) -> None:
    """Point the workflow's last saver at ``--output``: it writes its temporary file in that folder and
    renames it there, so the result never crosses file systems and a failure leaves nothing behind.

    The path is checked now, before any work: the extension against the codec, a folder in the way,
    writable, a name the file system can hold, not a file or folder the workflow reads (the input
    video would be destroyed), and not an existing file unless ``overwrite`` (``--overwrite``, as
    ffmpeg's ``-y``; the old file then stays until the new one is complete and renamed over it)."""
    from . import graph as headless
    from ..nodes.validation import unwritable
    from ..pipeline.video_io.writer import name_problem, output_target

    savers = [i for i, n in api.items() if n["class_type"] in headless.VIDEO_SAVERS]
    if not savers:
        raise headless.WorkflowError("--output given but the workflow has no output node that saves a video (MGLD Save "
                                     "Video or Save Video); add one")
    node_id = max(savers, key=lambda i: (int(i) if i.isdigit() else 0, i))
    node = api[node_id]
    path = os.path.abspath(output) + (os.sep if output.endswith(("/", os.sep)) else "")
    label = headless.preflight.node_label(node_id, node)
    codec = "h264" if node["class_type"] == "SaveVideo" else node["inputs"].get("codec", "h264")  # core saver: H.264
    folder = path if os.path.isdir(path) or path.endswith(os.sep) else os.path.dirname(path)
    written = path if folder == path else str(output_target_or_path(path, codec))
    reader = reads(api, written)
    if reader is not None:
        what = "folder" if os.path.isdir(written) else "file"
        raise headless.WorkflowError(f"--output {output} is the {what} {reader} reads: writing there would destroy "
                                     f"the input; choose another output name")
    problem = name_problem(written if folder != path else os.path.join(path, "x"))  # a folder: its own name
    if problem:
        raise headless.WorkflowError(f"--output {output}: {problem}")
    if folder != path:
        try:
            target = str(output_target(path, codec if isinstance(codec, str) else "h264"))
        except ValueError as err:
            raise headless.WorkflowError(f"--output {output}: {err} ({label} has codec = {codec!r})") from None
        except OSError as err:
            raise headless.WorkflowError(f"--output {output}: {err}; give a file name") from None
        if os.path.lexists(target) and not overwrite:
            raise headless.WorkflowError(f"--output {output}: {target} exists; add --overwrite to replace it (the old "
                                         f"file is kept until the new one is complete), or choose another name")
    problem = unwritable(folder)
    if problem:
        raise headless.WorkflowError(f"--output {output}: {problem}; choose a folder you can write to")
    node["output_path"] = path


def output_target_or_path(path: str, codec) -> str:
    """The file the writer makes for ``path`` (the codec's extension added), or ``path`` where it cannot say."""
    from ..pipeline.video_io.writer import output_target

    try:
        return str(output_target(path, codec if isinstance(codec, str) else "h264"))
    except (ValueError, OSError):  # said by the checks below
        return path


def reads(api: dict, target: str):
    """The node (as messages name it) that reads ``target``, a file or folder, or None when none does.

    Compared by identity on the file system (device and inode), not by name, so a symbolic or hard
    link, ``..`` in the path, or another spelling of the name on a file system that ignores case
    (macOS, Windows) is the same file. Every loader's file is included, image-sequence folders too.
    """
    from . import graph as headless
    from ..nodes.video import MGLDLoadVideo

    try:
        written = os.stat(target)
    except OSError:  # nothing there yet, so it is nothing the workflow reads
        return None
    for node_id, node in api.items():
        widget = headless.VIDEO_LOADERS.get(node["class_type"])
        value = node["inputs"].get(widget) if widget else None
        if not isinstance(value, str):
            continue
        source = MGLDLoadVideo._resolve(value)
        matches = glob.glob(source) if not os.path.exists(source) and glob.has_magic(source) else [source]
        for path in [*matches, *{os.path.dirname(m) for m in matches if m != source}]:  # a pattern's folders too
            try:
                read = os.stat(path)
            except OSError:
                continue
            if (read.st_dev, read.st_ino) == (written.st_dev, written.st_ino):
                return headless.preflight.node_label(node_id, node)
    return None


def check_resume(folder: str) -> None:
    """``--resume DIR`` is a folder, or a name one can be made under: refused now, not when the first
    sampling state is saved after the models are loaded."""
    from . import graph as headless
    from ..nodes.validation import unwritable

    if os.path.exists(folder) and not os.path.isdir(folder):
        raise headless.WorkflowError(f"--resume {folder}: is a file, not a folder; give a folder for the sampling "
                                     f"state (it is created if missing)")
    problem = unwritable(folder)
    if problem:
        raise headless.WorkflowError(f"--resume {folder}: {problem}; give a folder you can write to")


def report(exc: BaseException, debug: bool) -> int:
    """One ``error:`` line for an expected failure (exit 1); the traceback too for a bug (or with ``--debug``)."""
    from . import graph as headless
    from ..pipeline.hooks import Interrupted

    error = exc.error if isinstance(exc, headless.NodeFailed) else exc
    if isinstance(error, Interrupted):  # a stage's own interrupt check
        print(f"interrupted: {exc}; no partial output was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    expected = isinstance(error, expected_errors())
    if debug or not expected:
        traceback.print_exception(exc)
    if expected:
        print(f"error: {exc}", file=sys.stderr)
    else:
        print(f"error: {exc}\nThis looks like a bug in ComfyUI-MGLD-VSR (the traceback above says where); please "
              f"report it with the command you ran.", file=sys.stderr)
    return EXIT_FAILED


