#!/usr/bin/env bash
# Install the test dependencies (torch is the host's and is not installed here) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -r requirements.txt -r tests/requirements.txt
# Only for its CLIP BPE vocabulary file (arbitrary prompts); --no-deps keeps torchvision/CUDA torch out.
python -m pip install --quiet --no-deps open_clip_torch
python -m pytest -q tests "$@"
