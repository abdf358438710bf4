#!/usr/bin/env bash
# The CUDA checks, as one script for a machine with an NVIDIA GPU (CI never has one).
# Needs python3 with torch, torchvision, tqdm, pytest, hypothesis (or this project installed),
# MNIST in $MNIST_DATA_ROOT/mnist, and writes every log and JSON report into $OUT (default gpu-out/).
#   MNIST_DATA_ROOT=../shared/data bash scripts/gpu-checks.sh
# Every model family of the registry is checked: grads in float32 (and float64 for each family: the
# finite differences run on the CPU), one float64 and one float32 epoch of train, the same float64 epoch
# with the scratch step captured as a CUDA graph (--cuda-graph: its step losses must equal the eager
# run's bit for bit, and its verdict pass), and bench over every family's grid with the graphed step and
# torch.compile(mode="reduce-overhead"). Each command's full output is kept in $OUT/*.log, its report
# in $OUT/*.json; the verdict lines are printed here as they come.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
VERDICTS="^(Verdict|Implementations|Training|What next|Agreement|Plausibility|  \[(met |MISS|n/a )\])"
step() { echo; echo "=== $*"; }
# run NAME TIMEOUT ARGS...: one command of `python -m compare`, its output kept in $OUT/NAME.log, its report in
# $OUT/NAME.json, its verdict lines (and its exit status) printed
run() {
  local name=$1 limit=$2; shift 2
  timeout "$limit" $PY -m compare "$@" --report "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  local code=$?
  grep -E "$VERDICTS" "$OUT/$name.log"
  echo "[$name: exit $code]"
}
FAMILIES=$($PY -c "from compare.models import FAMILIES; print(' '.join(FAMILIES))")

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  | tee -a "$OUT/device.txt"

step "pytest: every CUDA test (the CUDA-graph replays among them)"
timeout 300 $PY -m pytest -q -p no:cacheprovider -k cuda tests 2>&1 | tee "$OUT/pytest-cuda.log" | tail -15

for model in $FAMILIES; do
  step "$model: grads on CUDA (float32 and float64); train float64 and float32, 1 epoch; float64 with --cuda-graph"
  run "grads32-$model" 150 grads --model "$model" --device cuda
  run "grads64-$model" 600 grads --model "$model" --device cuda --dtype float64
  run "train64-$model" 200 train --model "$model" --device cuda --dtype float64 --epochs 1
  run "train32-$model" 200 train --model "$model" --device cuda --epochs 1
  # the graph's run beside an eager run of the same settings (momentum SGD: every family can capture it)
  run "train64-momentum-$model" 200 train --model "$model" --device cuda --dtype float64 --epochs 1 \
    --optimizer momentum
  run "train64-graph-$model" 200 train --model "$model" --device cuda --dtype float64 --epochs 1 \
    --optimizer momentum --cuda-graph
  $PY - "$OUT/train64-momentum-$model.json" "$OUT/train64-graph-$model.json" <<'EOF'
import json, sys
eager, graph = (json.load(open(path)) for path in sys.argv[1:])
same = eager["scratch"]["step_losses"] == graph["scratch"]["step_losses"]
print(f"CUDA graph: scratch step losses {'IDENTICAL' if same else 'DIFFERENT'} bit for bit to the eager run's "
      f"({len(graph['scratch']['step_losses'])} steps); verdict with the graph "
      f"{'PASSED' if graph['agreement']['passed'] else 'FAILED'}")
EOF
done

step "the convolution's two input-gradient formulations on CUDA (col2im, and the rotated kernel CUDA uses)"
timeout 300 $PY scripts/time_cnn.py --device cuda 2>&1 | tee "$OUT/time-cnn-cuda.log" | tail -30

step "bench on CUDA: every family's grid, scratch, scratch graphed, torch eager, torch.compile(mode=reduce-overhead)"
run bench-cuda "${BENCH_TIMEOUT:-900}" bench --device cuda --cuda-graph --no-typical --repeats 5 --epoch-images 12000
tail -60 "$OUT/bench-cuda.log" | grep -vE "$VERDICTS"
echo; echo "done; logs and reports in $OUT/"
