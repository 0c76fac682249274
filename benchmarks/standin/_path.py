"""Register the repository as the package ``mgld_vsr`` for the stand-in scripts (see ../../run_workflow.py load_pack)."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from run_workflow import load_pack  # noqa: E402

load_pack()
sys.path.remove(str(ROOT))
