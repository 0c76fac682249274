"""Driving the headless runner (``run_workflow.py``) in the test process, for the reliability tests
(tests/system/test_reliability.py, test_reliability_files.py): run it, check its one error line, and
write the smallest graph that does real work without any model."""
import json
import pathlib
import sys
import time

from golden_lib import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))
import run_workflow  # noqa: E402

sys.path.remove(str(REPO_ROOT))

BASIC = REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json"
#: Seconds: the bound for a case refused before any work (loose: the machine may be loaded).
FAST = 5.0


def run(capsys, *argv):
    """``run_workflow.main`` in this process: (exit status, stderr, seconds)."""
    capsys.readouterr()
    start = time.perf_counter()
    code = run_workflow.main([str(a) for a in argv])
    seconds = time.perf_counter() - start
    return code, capsys.readouterr().err, seconds


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """Exactly one ``error:`` line, no traceback, and it says what the case must say."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def save_only(tmp_path, video, codec="h264", pixel_format="auto", prefix="MGLD/out", frames=0,
              name="save_only.json") -> pathlib.Path:
    """API-format graph: MGLD Load LR Video -> MGLD Save Video (no models: runs in a second)."""
    api = {"1": {"class_type": "MGLDLoadVideo", "inputs": {"video": str(video), "start_frame": 0, "frame_count": frames,
                                                            "every_nth": 1, "force_fps": 0.0}},
           "2": {"class_type": "MGLDSaveVideo", "inputs": {"frames": ["1", 0], "fps": ["1", 1], "filename_prefix": prefix,
                                                            "codec": codec, "crf": 19, "pixel_format": pixel_format}}}
    path = tmp_path / name
    path.write_text(json.dumps(api))
    return path
