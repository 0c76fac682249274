import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pack_import  # noqa: E402,F401  (registers the package "mgld_vsr")
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def golden_dir() -> pathlib.Path:
    from golden_lib import default_golden_dir

    return default_golden_dir()
