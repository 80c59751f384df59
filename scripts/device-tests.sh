#!/usr/bin/env bash
# The device runtime on an older CPython (default 3.8: Jetson Xavier's JetPack 5 and Lookout for Vision
# devices): a venv with the plain install plus test tools, the SIGBUS guard, then the daemon tests and
# the unit tests of device code. Usage: bash scripts/device-tests.sh [3.8|3.9|...] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.8}
shift || true
python=""
# pyenv's shims answer for every version but fail for one not selected: try each candidate for real.
for candidate in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/$version"*/bin/python "python$version"; do
  if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" 2>/dev/null; then
    python=$(command -v "$candidate"); break
  fi
done
if [ -z "$python" ]; then
  echo "device-tests: no CPython $version found (python$version on PATH or pyenv); install it: pyenv install $version" >&2
  exit 1
fi
venv=".venv-py$version"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip wheel
"$venv/bin/python" -m pip install --quiet -e ".[test]"
"$venv/bin/edge-agent" build-guard || echo "device-tests: SIGBUS guard not built; frames are copied"
echo "device-tests: $("$venv/bin/python" --version), $("$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(grpcio|protobuf|numpy|onnxruntime|pillow) ' | tr -s ' ' | tr '\n' ' ')"
# Workstation code (training, evaluation, datasets, packaging, the local runner) needs Python >= 3.10.
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/daemon tests/unit \
  --ignore=tests/unit/training --ignore=tests/unit/dataset --ignore=tests/unit/evaluation \
  --ignore=tests/unit/packager --ignore=tests/unit/greengrass_runner "$@"
