"""Where a training step's time goes, scratch beside torch: torch.profiler's operators, their calls and time per step.

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/profile_step.py                      # cnn, vit, lstm at batch 128
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/profile_step.py --models lstm --batch-sizes 32 512 --top 12

For each model and batch size: both sides are built from one seed (compare.commands.bench.contenders, as
`bench` builds them), take WARMUP steps on MNIST's first training batches, then STEPS steps under
torch.profiler (CPU activities, one thread). Printed per side: the self time of the operators per step, the
calls per step, and the operators that take the most time. Self time under the profiler includes its own
overhead per call (about a microsecond), so a side with many small calls looks slower here than it is;
`python -m compare bench` times the steps without it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from compare import models
from compare.commands.bench.contenders import make_learners, scratch_step, torch_step
from compare.data.mnist import load_dataset
from compare.training.config import Config

WARMUP, STEPS = 10, 5


@contextlib.contextmanager
def quiet_stderr():
    """The profiler's C++ library logs a line on every start and stop to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_side(step, shaped, x: torch.Tensor, y: torch.Tensor, batch: int, top: int) -> list[str]:
    def run(first: int, count: int) -> None:
        for k in range(first, first + count):
            step(shaped(x[k * batch:(k + 1) * batch]), y[k * batch:(k + 1) * batch])

    run(0, WARMUP)
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        run(WARMUP, STEPS)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) / STEPS / 1e3
    calls = sum(e.count for e in events) / STEPS
    lines = [f"{total:.2f} ms of operators per step, {calls:.0f} calls per step"]
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        lines.append(f"  {e.key:<44} {e.count / STEPS:>6.0f} calls  {e.self_cpu_time_total / STEPS / 1e3:>8.3f} ms  "
                     f"{e.self_cpu_time_total / STEPS / 1e3 / total:>4.0%}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "cnn:batch_norm=true", "vit", "lstm"],
                        help="bench's model specs (default: cnn cnn:batch_norm=true vit lstm)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128], help="default: 128")
    parser.add_argument("--top", type=int, default=8, help="operators listed per side (default: 8)")
    parser.add_argument("--data-root", default=os.environ.get("MNIST_DATA_ROOT", str(Path("data"))),
                        help="the folder holding mnist/ (default: $MNIST_DATA_ROOT, else data)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist", args.data_root, download=False)
    print(f"torch {torch.__version__}, 1 thread, float32; {STEPS} profiled steps after {WARMUP}, per step")
    for text in args.models:
        for batch in args.batch_sizes:
            config = Config(model=models.parse_spec(text), batch_size=batch)
            s, t = make_learners(config)
            sides = {"scratch": (scratch_step(s), s.shaped),
                     "torch": (torch_step(t.model, t.loss_fn, torch.optim.SGD(t.model.parameters(), lr=config.lr)),
                               t.shaped)}
            for side, (step, shaped) in sides.items():
                lines = profile_side(step, shaped, data.x_train, data.y_train, batch, args.top)
                print(f"\n{text} batch {batch}, {side}: {lines[0]}")
                print("\n".join(lines[1:]))


if __name__ == "__main__":
    main()
