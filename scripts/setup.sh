#!/usr/bin/env bash
# Create .venv and install the project with its workstation (train, package, greengrass, s3) and dev extras.
# torch==2.13.0 is installed first: an unpinned torch would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[train,package,greengrass,s3,dev]"
# The SIGBUS guard lets the agent read shared-memory frames in place; without a compiler it copies them.
.venv/bin/edge-agent build-guard || echo "setup: SIGBUS guard not built; the agent will copy frames"
echo "setup: .venv ready ($(.venv/bin/python --version))"
