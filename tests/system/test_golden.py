"""Every fixture under MGLD_GOLDEN_DIR must reproduce the official code's stored outputs."""
import pytest
import torch

from golden_lib import PENDING_KINDS, default_golden_dir, discover, runner_for
from needs import REFERENCE_HINT

FIXTURES = discover(default_golden_dir()) if default_golden_dir().is_dir() else []


def test_fixture_set_is_present():
    """Without fixtures the parametrised test below has nothing to run: this one fails instead."""
    assert FIXTURES, f"golden fixture set missing (no fixtures under {default_golden_dir()}): {REFERENCE_HINT}"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f"{f.kind}:{f.path.name}" for f in FIXTURES])
def test_golden_fixture(fixture):
    run = runner_for(fixture.kind)
    assert fixture.kind not in PENDING_KINDS
    assert run is not None, f"no runner for fixture kind {fixture.kind!r}"
    with torch.no_grad():
        results = [check.evaluate() for check in run(fixture)]
    assert results, "runner compared nothing"
    bad = [f"{r.name}: max_abs={r.max_abs:.3g} rel={r.rel:.3g} {r.note}" for r in results if not r.ok]
    assert not bad, "\n".join(bad)
