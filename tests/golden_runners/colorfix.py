"""Golden runner for the colour fix (README 5.3): AdaIN and wavelet against the official functions."""
from __future__ import annotations

from golden_lib import Check, Fixture
from mgld_vsr.pipeline.decoding.colorfix import adain_color_fix, wavelet_color_fix

#: The reference reproduced itself bit-exactly; an independent float32 version may differ by rounding.
REL = 1e-5


def run(fixture: Fixture) -> list[Check]:
    content, style = fixture["content"].float(), fixture["style"].float()
    checks = []
    for name, fix in (("adain", adain_color_fix), ("wavelet", wavelet_color_fix)):
        if name in fixture.tensors:
            checks.append(Check(name, fix(content, style), fixture[name], rel=REL))
    if not checks:
        raise KeyError("colorfix fixture holds neither 'adain' nor 'wavelet'")
    return checks
