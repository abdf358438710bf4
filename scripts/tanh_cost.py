"""What the LSTM's tanh costs on this CPU: torch.tanh against 2 sigmoid(2 x) - 1, the same function.

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/tanh_cost.py        # the table of docs/recurrence.md, "Speed"

For the shapes of one LSTM step's cell state ([batch, 128]) at batches 32, 128 and 512, in float32 and float64:
the median over 15 rounds of each way's time per call, the two ways alternating within each round, and the
largest difference between their results. 2 sigmoid(2 x) - 1 is three calls (x + x, sigmoid in place,
-1 + 2 s), as scratch/rnn.py's LSTM makes tanh(c_t); tanh is one call.
"""

from __future__ import annotations

import statistics
import time

import torch

ROUNDS, CALLS = 15, 200


def per_call_us(fn) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - start) / CALLS * 1e6


def ways(x: torch.Tensor) -> tuple:
    """The two ways of tanh(x), each writing into a buffer of its own: (tanh, its buffer, sigmoid way, its buffer)."""
    by_tanh, by_sigmoid = torch.empty_like(x), torch.empty_like(x)
    minus_one = torch.tensor(-1.0, dtype=x.dtype)

    def tanh() -> None:
        torch.tanh(x, out=by_tanh)

    def sigmoid_way() -> None:
        torch.add(x, x, out=by_sigmoid).sigmoid_()  # sigmoid(2 x)
        torch.add(minus_one, by_sigmoid, alpha=2, out=by_sigmoid)  # 2 sigmoid(2 x) - 1

    return tanh, by_tanh, sigmoid_way, by_sigmoid


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, 1 thread; time per call, median of {ROUNDS} rounds of {CALLS} calls")
    print("| dtype | shape | torch.tanh | 2 sigmoid(2 x) - 1 | tanh / sigmoid way | largest difference |")
    print("|---|---|---|---|---|---|")
    for dtype in (torch.float32, torch.float64):
        for batch in (32, 128, 512):
            x = 3 * torch.randn(batch, 128, dtype=dtype)  # about the range of an LSTM's cell state
            tanh, by_tanh, sigmoid_way, by_sigmoid = ways(x)
            times = {tanh: [], sigmoid_way: []}
            for _ in range(ROUNDS):
                for fn, kept in times.items():
                    kept.append(per_call_us(fn))
            a, b = (statistics.median(kept) for kept in times.values())
            difference = (by_tanh - by_sigmoid).abs().max().item()
            print(f"| {str(dtype).removeprefix('torch.')} | [{batch}, 128] | {a:.1f} us | {b:.1f} us | {a / b:.2f} | "
                  f"{difference:.1e} |")


if __name__ == "__main__":
    main()
