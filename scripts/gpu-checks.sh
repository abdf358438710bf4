#!/usr/bin/env bash
# The CUDA checks, as one script for a machine with an NVIDIA GPU (CI never has one).
# Needs python3 with torch, torchvision, tqdm, pytest, hypothesis (or this project installed),
# MNIST in $MNIST_DATA_ROOT/mnist, and writes logs and JSON reports into $OUT (default gpu-out/).
#   MNIST_DATA_ROOT=../shared/data bash scripts/gpu-checks.sh
# Every model family of the registry is checked: grads in float32 (float64 for mlp and cnn: the
# finite differences of the larger vit and lstm take minutes on a CPU), one float64 and one float32
# epoch of train, and a bench grid of every family's benchmark models.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
step() { echo; echo "=== $*"; }
FAMILIES=$($PY -c "from compare.models import FAMILIES; print(' '.join(FAMILIES))")

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  | tee -a "$OUT/device.txt"

step "pytest: every CUDA test"
timeout 240 $PY -m pytest -q -p no:cacheprovider -k cuda tests 2>&1 | tail -15 | tee "$OUT/pytest-cuda.txt"

for model in $FAMILIES; do
  step "$model: grads on CUDA (float32), train float64 and float32 1 epoch"
  timeout 120 $PY -m compare grads --model "$model" --device cuda --report "$OUT/grads32-$model.json" | grep -E "^(Verdict|Implementations|Training|What next):"
  timeout 150 $PY -m compare train --model "$model" --device cuda --dtype float64 --epochs 1 \
    --report "$OUT/train64-$model.json" | grep -E "^(Verdict|Implementations|Training|What next):"
  timeout 150 $PY -m compare train --model "$model" --device cuda --epochs 1 --report "$OUT/train32-$model.json" \
    | grep -E "^(Verdict|Implementations|Training|What next):"
done
step "mlp and cnn: grads on CUDA in float64 (finite differences in float64 on the CPU)"
timeout 100 $PY -m compare grads --device cuda --dtype float64 --report "$OUT/grads64-mlp.json" | grep -E "^(Verdict|Implementations|Training|What next):"
timeout 150 $PY -m compare grads --model cnn --device cuda --dtype float64 --report "$OUT/grads64-cnn.json" | grep -E "^(Verdict|Implementations|Training|What next):"

step "bench on CUDA (every family's grid, no compile)"
timeout "${BENCH_TIMEOUT:-300}" $PY -m compare bench --device cuda --no-compile --no-typical --repeats 5 \
  --epoch-images 12000 --report "$OUT/bench-cuda.json" 2>&1 | tail -40
echo; echo "done"
