#!/usr/bin/env python3
"""The pack's one command-line entry point, runnable without ComfyUI (see docs/headless.md).

    python run_workflow.py example_workflows/mgld_vsr_basic.json --input clip.mp4 --output out.mp4 [options]
    python run_workflow.py convert-weights mgldvsr_unet.ckpt video_vae_cfw.ckpt raft-things.pth --out DIR

The pack uses relative imports (ComfyUI has top-level modules of its own called ``nodes`` and
``comfy``), and its folder may have any name, so this script registers the folder as the package
``mgld_vsr`` (:func:`load_pack`; tests, benchmarks and tools import it from here) and hands over to
``runner/cli.py`` or ``models/convert.py``.
"""
import importlib.util
import pathlib
import sys

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


if __name__ == "__main__":
    sys.exit(main())
