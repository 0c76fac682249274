#!/usr/bin/env python3
"""Run every golden fixture in a directory and report one line per fixture file.

    python tests/golden_check.py --golden-dir DIR [-v]

Exit status is non-zero when any fixture failed or could not be run.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pack_import  # noqa: E402,F401
import torch  # noqa: E402
from golden_lib import PENDING_KINDS, default_golden_dir, discover, runner_for, summarize  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden-dir", type=pathlib.Path, default=default_golden_dir())
    parser.add_argument("-v", "--verbose", action="store_true", help="print every compared tensor")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    golden_dir = args.golden_dir.resolve()
    fixtures = discover(golden_dir)
    if not fixtures:
        print(f"no fixtures found under {golden_dir}")
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    for fx in fixtures:
        run = runner_for(fx.kind)
        label = f"{fx.path} {fx.kind}"
        if run is None:
            status = "NOT-YET" if fx.kind in PENDING_KINDS else "FAIL"
            print(f"{label} max_abs=- rel=- {status} (no runner for this kind)")
            failed += 1
            continue
        try:
            with torch.no_grad():
                results = [check.evaluate() for check in run(fx)]
        except Exception as exc:  # report and carry on with the other fixtures
            print(f"{label} max_abs=- rel=- FAIL ({type(exc).__name__}: {exc})")
            if args.verbose:
                traceback.print_exc()
            failed += 1
            continue
        worst_abs, worst_rel, ok = summarize(results)
        print(f"{label} max_abs={worst_abs:.3g} rel={worst_rel:.3g} {'PASS' if ok else 'FAIL'}")
        for r in results:
            if args.verbose or not r.ok:
                print(f"    {r.name}: max_abs={r.max_abs:.3g} rel={r.rel:.3g} {'ok' if r.ok else 'FAIL'} {r.note}")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
