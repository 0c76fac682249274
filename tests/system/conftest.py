"""Fixtures shared by the runner's reliability tests (test_reliability.py, test_reliability_files.py)."""
import pytest
import torch

from mgld_vsr.pipeline import video_io


@pytest.fixture(scope="module")
def noise_clip(tmp_path_factory):
    """3 frames of 32x32 noise (h264). Not named `clip`: that would shadow tests/conftest.py's 4-frame clip
    for every system test."""
    path = tmp_path_factory.mktemp("clip") / "lr.mp4"
    frames = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    video_io.write_video(path, frames, 24)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_release):
    """A fresh output folder ($MGLD_HOME/output) and the tiny weights as the model folder."""
    monkeypatch.setenv("MGLD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MGLD_MODELS_DIR", str(tiny_release))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """Enough noise frames that encoding them takes seconds (time to send a signal while saving)."""
    path = tmp_path_factory.mktemp("long") / "long.mkv"
    g = torch.Generator().manual_seed(1)
    video_io.write_video(path, (torch.randint(0, 256, (240, 320, 3), dtype=torch.uint8, generator=g) for _ in range(240)),
                         24, codec="ffv1")
    return path
