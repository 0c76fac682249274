#!/usr/bin/env python3
"""The pack's one command-line entry point, runnable without ComfyUI (see docs/headless.md).

    python run_workflow.py example_workflows/mgld_vsr_basic.json --input clip.mp4 --output out.mp4 [options]
    python run_workflow.py convert-weights mgldvsr_unet.ckpt video_vae_cfw.ckpt raft-things.pth --out DIR

The pack uses relative imports (ComfyUI has top-level modules of its own called ``nodes`` and
``comfy``), and its folder may have any name, so this script registers the folder as the package
``mgld_vsr`` (:func:`load_pack`; tests, benchmarks and tools import it from here) and hands over to
``runner/cli.py`` or ``models/convert.py``.
"""
import atexit
import importlib.util
import os
import pathlib
import signal
import sys
import threading

PACK_ROOT = pathlib.Path(__file__).resolve().parent
PACKAGE_NAME = "mgld_vsr"


def load_pack():
    """The pack's top-level package, registering it on first use."""
    if PACKAGE_NAME in sys.modules:
        return sys.modules[PACKAGE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACKAGE_NAME, PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACKAGE_NAME]
        raise
    return module


def main(argv=None) -> int:
    """Exit status of the command ``argv`` (default: this process's arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    load_pack()
    if argv[:1] == ["convert-weights"]:
        from mgld_vsr.models.convert import main as convert

        return convert(argv[1:])
    from mgld_vsr.runner.cli import main as run

    return run(argv)


def run_as_script(argv=None) -> None:
    """``python run_workflow.py ...``: :func:`main`, then end the process with its status, so that a
    Ctrl-C or SIGTERM at any moment, from importing torch to the interpreter's shutdown, gives status
    130 and one line.

    Python resets its signal handlers to the defaults while it shuts down, so a Ctrl-C after the run
    (while threads are joined and exit handlers run) would kill it by SIGINT (status -2) or print an
    unhandled ``KeyboardInterrupt``. Here the exit handlers run with SIGINT and SIGTERM answered by the
    one line and status 130, and the process then ends at once (``os._exit``), its output flushed.
    """
    code = 130
    try:
        try:
            code = main(argv)
        except KeyboardInterrupt:  # before the runner took over (importing torch): nothing was written
            _say("interrupted: stopped before any work; nothing was written")
        _exit(code)
    except KeyboardInterrupt:  # between two of the steps above
        _say("interrupted: while shutting down")
        os._exit(130)


def _say(line: str) -> None:
    os.write(2, f"\n{line}\n".encode())


def _exit(code: int) -> None:
    def late(signum, frame):
        _say(f"{'terminated' if signum == signal.SIGTERM else 'interrupted'}: while shutting down" +
             ("; the output is complete" if code == 0 else ""))
        os._exit(130)

    signal.signal(signal.SIGINT, late)
    signal.signal(signal.SIGTERM, late)
    _flush()
    for thread in threading.enumerate():  # what the interpreter's shutdown would wait for
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more can be said there
            pass


if __name__ == "__main__":
    run_as_script()
