#!/usr/bin/env bash
# Install the test dependencies (torch is the host's and is not installed here) and run the tests.
#   bash tests/run.sh          every tier: unit, integration and system (what CI runs)
#   bash tests/run.sh --fast   the everyday subset: unit and integration (no subprocess runs, Ray, golden
#                              fixtures or benchmark scripts), at most 3 minutes on a 2-core machine
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -r requirements.txt -r tests/requirements.txt
# Only for its CLIP BPE vocabulary file (arbitrary prompts); --no-deps keeps torchvision/CUDA torch out.
python -m pip install --quiet --no-deps open_clip_torch
tiers=(tests)
if [[ "${1:-}" == "--fast" ]]; then
    shift
    tiers=(tests/unit tests/integration)
fi
python -m pytest -q "${tiers[@]}" "$@"
