"""Import this pack without ComfyUI, under the fixed package name ``mgld_vsr``.

The pack uses relative imports (ComfyUI has its own top-level ``nodes``/``comfy`` modules), and
its folder may have any name, so command-line tools and tests register the folder as a package.
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
