"""How fast is the hand-written CNN next to PyTorch's? Times per step, float32, CPU, one thread by default.

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/time_cnn.py                  # LeNet-5, batches 32, 128, 512
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/time_cnn.py --batch-sizes 32 --batch-norm --pool avg

Two tables:
- LeNet's two convolutions alone, forward + backward: scratch.Conv2d (im2col) vs nn.Conv2d. The first
  layer computes no input gradient on either side (its input is the images), the second does.
- The whole network, one training step (forward, cross-entropy, backward, plain SGD update): scratch.CNN
  vs torch_impl.CNN (autograd), from the same initial parameters and on the same random batch.

Method (as compare/bench.py): warm-up, then blocks of steps of every contender take turns, round after
round, so a burst of load from another program hits all alike; medians over rounds, and the ratio
scratch/torch as the median of each round's paired ratio. Times are the process's CPU time
(time.process_time: user + system, page faults included) rather than wall-clock time: with one thread,
that leaves out the time spent waiting while other programs hold the core, which on a shared machine
is most of the noise. tests/conv_reference.py times the loop reference against im2col.

Caution: single-layer times beyond batch 32 depend on what the process allocated before (nn.Conv2d's
first layer at batch 128: 2.7 ms in a fresh process, 10 ms after the batch-32 rows, its temporary
buffers then faulting in from the operating system each call); run one --batch-sizes value per
process to compare layers. The whole-step ratios did not move that way (docs/cnn.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import scratch
import torch_impl

ROUNDS = 9


def interleaved(contenders: dict[str, Callable[[], object]], block_seconds: float = 0.1) -> dict[str, float]:
    """Median seconds per call of each contender; blocks of calls take turns, round after round."""
    calls = {}
    for name, fn in contenders.items():
        fn()  # warm-up (first-call allocations, lazy initialisation)
        start = time.process_time()
        fn()
        calls[name] = max(1, round(block_seconds / max(time.process_time() - start, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            start = time.process_time()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.process_time() - start) / calls[name])
    first = next(iter(contenders))
    result = {name: statistics.median(t) for name, t in times.items()}
    for name in contenders:
        if name != first:
            paired = zip(times[name], times[first], strict=True)
            result[f"{name}/{first}"] = statistics.median(a / b for a, b in paired)
    return result


def conv_contenders(batch: int, c_in: int, c_out: int, size: int, padding: int, input_grad: bool):
    torch.manual_seed(0)
    ours = scratch.Conv2d(c_in, c_out, 5, padding=padding)
    torch.manual_seed(0)
    theirs = nn.Conv2d(c_in, c_out, 5, padding=padding)
    x = torch.randn(batch, c_in, size, size)
    x_torch = x.clone().requires_grad_(input_grad)
    dout = torch.randn_like(theirs(x).detach())

    def torch_step() -> None:
        theirs.zero_grad()
        theirs(x_torch).backward(dout)

    def scratch_step() -> None:
        ours.forward(x)
        ours.backward(dout, input_grad=input_grad)

    return {"torch": torch_step, "scratch": scratch_step}


def cnn_contenders(batch: int, **spec):
    torch.manual_seed(0)
    ours = scratch.CNN(**spec)
    torch.manual_seed(0)
    theirs = torch_impl.CNN(**spec)
    loss_ours, loss_theirs = scratch.CrossEntropyLoss(), nn.CrossEntropyLoss()
    opt_ours = scratch.SGD(ours.parameters(), ours.gradients(), lr=0.01)
    opt_theirs = torch_impl.SGD(theirs, lr=0.01)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)

    def torch_step() -> None:
        opt_theirs.zero_grad()
        loss_theirs(theirs(x), y).backward()
        opt_theirs.step()

    def scratch_step() -> None:
        loss_ours.forward(ours.forward(x), y)
        ours.backward(loss_ours.backward(), input_grad=False)
        opt_ours.step()

    return {"torch": torch_step, "scratch": scratch_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512], help="default: 32 128 512")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--batch-norm", action="store_true", help="BatchNorm2d in each conv stage (default: off)")
    parser.add_argument("--pool", choices=["max", "avg"], default="max", help="default: max")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), float32; median ms per call, ratio scratch/torch")
    print("\n| layer | batch | nn.Conv2d | scratch Conv2d | ratio |\n|---|---|---|---|---|")
    for batch in args.batch_sizes:
        for label, shape in (("conv 1->6, 28x28, pad 2 (no dx)", (1, 6, 28, 2, False)),
                             ("conv 6->16, 14x14 (with dx)", (6, 16, 14, 0, True))):
            r = interleaved(conv_contenders(batch, *shape))
            print(f"| {label} | {batch} | {r['torch'] * 1e3:.3f} | {r['scratch'] * 1e3:.3f} | "
                  f"{r['scratch/torch']:.2f} |")
    spec = dict(batch_norm=args.batch_norm, pool=args.pool)
    print(f"\n| CNN {spec}: training step | batch | torch_impl | scratch | ratio |\n|---|---|---|---|---|")
    for batch in args.batch_sizes:
        r = interleaved(cnn_contenders(batch, **spec))
        print(f"| | {batch} | {r['torch'] * 1e3:.3f} | {r['scratch'] * 1e3:.3f} | {r['scratch/torch']:.2f} |")


if __name__ == "__main__":
    main()
