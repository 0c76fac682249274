"""Register the repository as the package ``mgld_vsr`` for tests (see ../run_workflow.py load_pack)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from run_workflow import load_pack  # noqa: E402

pack = load_pack()
sys.path.pop(0)
