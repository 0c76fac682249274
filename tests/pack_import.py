"""Import this repository as the package ``mgld_vsr`` without installing it.

The pack lives in ``ComfyUI/custom_nodes/<any folder name>`` and uses relative imports only, so
tests, benchmarks and scripts register the repository root under one fixed package name.
"""
import importlib.util
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_NAME = "mgld_vsr"


def load_pack():
    """Return the pack's top-level package, registering it on first use."""
    if PACKAGE_NAME in sys.modules:
        return sys.modules[PACKAGE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACKAGE_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE_NAME] = module
    spec.loader.exec_module(module)
    return module


load_pack()
