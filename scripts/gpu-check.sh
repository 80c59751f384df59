#!/usr/bin/env bash
# One check of the NVIDIA backends on a machine with a GPU and no internet, in under 8 minutes:
#   1. a venv (with the system's site-packages: JetPack's TensorRT lives there) filled from the
#      wheels in gpu-wheels/ only (pip --no-index), never onnxruntime next to onnxruntime-gpu;
#   2. the GPU tests (pytest -m gpu tests/gpu; they skip, with the reason, what this machine lacks);
#   3. bench/gpu.py on the trained cookies model: TensorRT FP16/FP32/auto, ONNX Runtime CUDA and
#      TensorRT EP, CPU; p50/p99 through the agent with 1 and 8 clients, engine build time,
#      agreement with the CPU decisions on the sample images. It prints one summary table.
#
# Usage: scripts/gpu-check.sh [MODEL_DIR]
#   MODEL_DIR   a trained model package; default gpu-wheels/cookies-model, else one is trained from
#               $COOKIES (default /work/shared/datasets/cookies, or shared/datasets/cookies here)
#               when torch is installed.
# Environment: GPU_WHEELS (default gpu-wheels), OUT (results; default gpu-check-out), BUDGET_S (480).
# Filling gpu-wheels/ on a machine with internet: docs/gpu.md ("Offline GPU check").
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STARTED=$(date +%s)
BUDGET_S=${BUDGET_S:-480}
WHEELS=${GPU_WHEELS:-gpu-wheels}
OUT=${OUT:-$ROOT/gpu-check-out}
VENV=${GPU_VENV:-$ROOT/.gpu-venv}
PY_SYS=${PYTHON:-python3}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: >"$LOG"

say() { echo "gpu-check: $*" | tee -a "$LOG"; }
left() { echo $((BUDGET_S - ($(date +%s) - STARTED))); }
step() { # step SECONDS_MAX COMMAND...: run with the smaller of its cap and the time left
  local cap=$1; shift
  local remaining; remaining=$(left)
  [ "$remaining" -lt "$cap" ] && cap=$remaining
  if [ "$cap" -le 5 ]; then say "out of time before: $*"; return 124; fi
  timeout --signal=TERM --kill-after=10 "$cap" "$@"
}

say "machine: $(uname -m), $($PY_SYS --version 2>&1)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$LOG"
elif [ -f /etc/nv_tegra_release ]; then
  say "Jetson: $(head -1 /etc/nv_tegra_release)"
else
  say "no nvidia-smi and not a Jetson: the GPU tests will skip and the GPU rows will say why"
fi

# 1. Install from the carried wheels only --------------------------------------------------------
if [ ! -d "$WHEELS" ]; then
  say "no $WHEELS/ folder: fill it as docs/gpu.md says (pip download ... -d $WHEELS); using what is installed"
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY_SYS" -m venv --system-site-packages "$VENV" || { say "cannot create a venv"; exit 2; }
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --no-index --disable-pip-version-check -q)
if [ -d "$WHEELS" ]; then
  REQ="$WHEELS/requirements.txt"
  if [ -f "$REQ" ]; then
    step 240 "${PIP[@]}" --find-links "$WHEELS" -r "$REQ" 2>&1 | tail -5 | tee -a "$LOG"
  else
    say "$REQ missing: installing every wheel in $WHEELS"
    step 240 "${PIP[@]}" --find-links "$WHEELS" "$WHEELS"/*.whl 2>&1 | tail -5 | tee -a "$LOG"
  fi
fi
# The project without its dependencies: they came from the wheels (onnxruntime-gpu instead of onnxruntime).
step 60 "${PIP[@]}" --no-deps --no-build-isolation -e . 2>&1 | tail -3 | tee -a "$LOG" \
  || step 30 "$PY" -m pip install --no-index --no-deps -q -e . 2>&1 | tail -3 | tee -a "$LOG"
"$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
from edge_agent.runtime.ort_gpu import installed_runtimes
try:
    import onnxruntime as ort
    providers = ort.get_available_providers()
except Exception as exc:  # noqa: BLE001
    providers = [f"onnxruntime unusable: {exc}"]
found = installed_runtimes()
print("gpu-check: onnxruntime packages:", found, "providers:", providers)
if "onnxruntime-gpu" in found and len(found) > 1:
    print("gpu-check: BOTH onnxruntime packages are installed: the CUDA provider is hidden; fix gpu-wheels/requirements.txt")
try:
    import tensorrt
    print("gpu-check: tensorrt", tensorrt.__version__)
except Exception as exc:  # noqa: BLE001
    print("gpu-check: tensorrt not importable:", exc)
for module in ("cuda.bindings.runtime", "cuda.cudart"):
    try:
        __import__(module)
        print("gpu-check: cuda-python runtime module:", module)
        break
    except Exception:  # noqa: BLE001
        continue
else:
    print("gpu-check: cuda-python not importable")
EOF

# 2. The model -----------------------------------------------------------------------------------
MODEL=${1:-}
if [ -z "$MODEL" ] && [ -f "$WHEELS/cookies-model/manifest.json" ]; then MODEL="$WHEELS/cookies-model"; fi
COOKIES=${COOKIES:-/work/shared/datasets/cookies}
[ -d "$COOKIES" ] || COOKIES=$ROOT/shared/datasets/cookies
if [ -z "$MODEL" ]; then
  if [ -f "$COOKIES/train.manifest" ] && "$PY" -c "import torch" 2>/dev/null; then
    MODEL="$OUT/cookies-model"
    say "training the cookies model from $COOKIES (no MODEL_DIR given)"
    step 240 "$PY" -m edge_agent train "$COOKIES/train.manifest" --output "$MODEL" --overwrite --no-progress \
      2>&1 | tail -3 | tee -a "$LOG"
  else
    say "no model: pass MODEL_DIR, or carry $WHEELS/cookies-model (docs/gpu.md), or install torch with the dataset"
  fi
fi

# 3. GPU tests -------------------------------------------------------------------------------------
say "GPU tests (pytest -m gpu tests/gpu), $(left) s left"
export EDGE_AGENT_GPU_MODEL=${MODEL:+$(cd "$MODEL" && pwd)}
step 200 "$PY" -m pytest -q -ra -m gpu tests/gpu \
  -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml" 2>&1 | tail -25 | tee "$OUT/gpu-tests.txt" | tee -a "$LOG"
TESTS_RC=${PIPESTATUS[0]}

# 4. Benchmark -------------------------------------------------------------------------------------
BENCH_RC=0
if [ -n "$MODEL" ] && [ -f "$MODEL/manifest.json" ]; then
  IMAGES=()
  [ -d "$COOKIES/training-images" ] && IMAGES=(--images "$COOKIES/training-images")
  say "bench/gpu.py on $MODEL, $(left) s left"
  step 400 "$PY" bench/gpu.py --model "$MODEL" "${IMAGES[@]}" --calls 200 --start-timeout 240 \
    --json "$OUT/gpu-bench.json" 2>"$OUT/gpu-bench.log" | tee "$OUT/gpu-bench.txt"
  BENCH_RC=${PIPESTATUS[0]}
else
  say "benchmark skipped: no model"
fi

say "done in $(( $(date +%s) - STARTED )) s; tests rc=$TESTS_RC bench rc=$BENCH_RC; results in $OUT"
[ "$TESTS_RC" -eq 0 ] && [ "$BENCH_RC" -eq 0 ]
