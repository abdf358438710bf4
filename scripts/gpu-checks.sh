#!/usr/bin/env bash
# The CUDA checks, as one script for a machine with an NVIDIA GPU (CI never has one).
# Needs python3 with torch, torchvision, tqdm, pytest, hypothesis (or this project installed),
# MNIST in $MNIST_DATA_ROOT/mnist, and writes logs and JSON reports into $OUT (default gpu-out/).
#   MNIST_DATA_ROOT=../shared/data bash scripts/gpu-checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
step() { echo; echo "=== $*"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  | tee -a "$OUT/device.txt"

step "pytest: every CUDA test"
timeout 240 $PY -m pytest -q -p no:cacheprovider -k cuda tests 2>&1 | tail -15 | tee "$OUT/pytest-cuda.txt"

step "grads on CUDA, float64 and float32"
timeout 120 $PY -m compare grads --device cuda --dtype float64 --report "$OUT/grads64.json" | tail -12
timeout 120 $PY -m compare grads --device cuda --report "$OUT/grads32.json" | tail -3

step "train on CUDA: float64 1 epoch, float32 3 epochs"
timeout 200 $PY -m compare train --device cuda --dtype float64 --epochs 1 --report "$OUT/train64.json" | tail -9
timeout 200 $PY -m compare train --device cuda --epochs 3 --report "$OUT/train32.json" | tail -9

step "bench on CUDA (grid, no compile), then torch.compile at one point"
timeout "${BENCH_TIMEOUT:-240}" $PY -m compare bench --device cuda --no-compile --repeats 5 --epoch-images 12000 \
  --report "$OUT/bench-cuda.json" 2>&1 | tail -32
timeout 150 $PY -m compare bench --device cuda --models mlp:hidden=512,512 --batch-sizes 512 --repeats 5 --epoch-images 12000 \
  --no-typical --report "$OUT/bench-cuda-compile.json" 2>&1 | tail -8
echo; echo "done"
