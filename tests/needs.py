"""What a test needs from outside the repository: a missing fixture or package fails the test, saying what to fetch.

A skipped test looks like a passed one in a summary line; a test that cannot run because the reference set or a
test dependency is missing must fail instead, so the gap is seen and fixed. Only a test that cannot run on this
kind of machine at all (no mount namespace, no CUDA) may skip, and its reason says why.
"""
from __future__ import annotations

import importlib
import importlib.util
import pathlib

import pytest

from golden_lib import default_golden_dir

#: How to get the reference set: golden fixtures, their tiny weights and the real checkpoints' key manifests.
REFERENCE_HINT = ("the reference set (golden fixtures, tiny weights, key manifests) lives in ../shared/reference "
                  "beside the repository (see its README.md); set MGLD_GOLDEN_DIR to use a golden/ folder elsewhere")
#: How to get the test dependencies.
INSTALL_HINT = "install the test dependencies: bash tests/run.sh does (pip install -r tests/requirements.txt)"


def reference_dir() -> pathlib.Path:
    """The reference folder: the golden fixtures' parent, which also holds ``manifests/`` and ``make_release.py``."""
    return default_golden_dir().parent


def manifest(name: str) -> pathlib.Path:
    """The key manifest ``name`` (e.g. ``raft_things.json``) of a real checkpoint; fails the test when missing."""
    return need_file(reference_dir() / "manifests" / name, f"key manifest {name}")


def need_file(path: pathlib.Path | str, what: str, hint: str = REFERENCE_HINT) -> pathlib.Path:
    """``path``, failing the calling test with what to fetch when it does not exist."""
    path = pathlib.Path(path)
    if not path.exists():
        pytest.fail(f"{what} missing ({path}): {hint}", pytrace=False)
    return path


def need_module(name: str, hint: str = INSTALL_HINT):
    """The imported module ``name``, failing the calling test with how to install it when it is missing."""
    if importlib.util.find_spec(name) is None:
        pytest.fail(f"the package {name!r} is missing: {hint}", pytrace=False)
    return importlib.import_module(name)
