"""How `python -m compare bench` times its contenders: warm-up, interleaved blocks, medians and spreads.

Each contender is warmed up, then timed in blocks of the same number of steps, and the blocks of
all contenders (and of the two probes of the machine's practical limits: one large matrix product,
one large copy) are interleaved, round after round, in one process: a burst of load from another
program hits all of them alike.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import torch

from compare.commands.bench.contenders import Batch, Contender

WARMUP_STEPS = 5
PROBE_CALLS = 3  # calls of each probe per round: a burst of load from elsewhere must not lower a measured limit


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch.set_num_threads(count) inside the block, and the count torch had before after it, also on
    an error: a run inside a test or a notebook must not leave the rest of that process on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock time covers it (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], None]) -> float:
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def matmul_probe(dtype: torch.dtype, device: str | torch.device,
                 size: int | None = None) -> tuple[Callable[[], None], int]:
    """A function computing one square matrix product of side `size`, and its FLOP count (2 size^3).

    The product of two large square matrices is the fastest thing a BLAS library does, so its
    FLOP/s is the practical ceiling for matrix-product-bound work on this device, in this dtype,
    with the current `torch.get_num_threads()`. It is timed interleaved with the training steps,
    so the ceiling is measured under the same machine load as the steps it is compared with.
    """
    device = torch.device(device)
    if size is None:
        size = 4096 if device.type == "cuda" else 1024  # big enough to run at full speed, quick to time
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator, dtype=dtype).to(device)
    b = torch.randn(size, size, generator=generator, dtype=dtype).to(device)
    out = torch.empty(size, size, dtype=dtype, device=device)

    def product() -> None:
        torch.mm(a, b, out=out)

    return product, 2 * size**3


def copy_probe(dtype: torch.dtype, device: str | torch.device, nbytes: int) -> tuple[Callable[[], None], int]:
    """A function copying a tensor of about nbytes / 2 bytes into another, over and over, and the bytes it
    moves (read plus write) in one call.

    The practical ceiling of memory traffic for a working set of that size: a step cannot have moved the
    bytes it must move (compare/models/traffic.py; pass them as nbytes) faster than a plain copy of as many
    bytes moves them, whether they fit in a cache (a small step's do: the copy then measures the cache) or
    not. One call repeats the copy until it has moved at least COPY_CALL_BYTES, so that it lasts long enough
    to time; timed interleaved with the steps, like the matrix product.
    """
    device = torch.device(device)
    element = torch.finfo(dtype).bits // 8
    numel = max(COPY_MIN_BYTES, min(nbytes // 2, COPY_MAX_BYTES[device.type == "cuda"])) // element
    source = torch.ones(numel, dtype=dtype, device=device)
    target = torch.empty_like(source)
    moved = 2 * numel * element
    repeats = max(1, -(-COPY_CALL_BYTES // moved))

    def copy() -> None:
        for _ in range(repeats):
            target.copy_(source)

    return copy, repeats * moved


COPY_MIN_BYTES = 2**16  # the smallest copy timed: below it, the call's overhead is what gets measured
COPY_MAX_BYTES = {False: 2**26, True: 2**29}  # CPU 64 MB, GPU 512 MB: larger than any cache
COPY_CALL_BYTES = 2**27  # what one call of the copy probe moves at least


def warm_up(contender: Contender, device: torch.device, odd_batch: Batch | None) -> float:
    """A few steps (allocations, kernel choice, compilation); returns the seconds per step of the last ones.

    A contender that raises here (torch.compile without a working C++ compiler, say) is marked
    unavailable with the reason, instead of ending the whole benchmark.
    """
    try:
        contender.first_step_s = timed(device, lambda: contender.run(1))  # includes compilation for "compile"
        if odd_batch is not None and contender.name == "compile":
            # The epoch ends on a smaller batch: compile for that shape now, not inside the timed epoch.
            contender.train_step(*odd_batch)
        return timed(device, lambda: contender.run(WARMUP_STEPS)) / WARMUP_STEPS
    except Exception as error:  # an optional contender's failure is reported, not raised
        if contender.name in ("scratch", "torch"):
            raise  # the two being compared must run; their failure is a bug to see, not a table cell
        reason = (str(error).strip().splitlines() or [""])[0][:160]
        contender.unavailable = f"unavailable: {type(error).__name__}: {reason}"
        return math.nan


def block_steps(running: list[Contender], per_step: dict[str, float], block_seconds: float) -> dict[str, int]:
    """Steps per timed block of each contender, so that a block lasts about `block_seconds`.

    scratch, torch and compile run the same number of steps per block (torch's), which keeps
    scratch and torch in lockstep; "typical" (mostly data loading) gets its own, or its blocks
    would dwarf the others.
    """
    return {c.name: max(1, round(block_seconds / per_step["typical" if c.name == "typical" else "torch"]))
            for c in running}


def interleaved_rounds(running: list[Contender], steps: dict[str, int], probes: dict[str, Callable[[], None]],
                       repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per step of each contender in every round, and seconds of each probe (keyed by the probe's name).

    Each round starts with the probes, each called PROBE_CALLS times (its best call counts), then every
    contender runs one block, in an order that rotates from round to round. The probes keep their place:
    a large copy leaves the caches cold for whatever runs next, and that must be each contender in turn,
    not one of them more often than another.
    """
    seconds: dict[str, list[float]] = {name: [] for name in [*(c.name for c in running), *probes]}
    for r in range(repeats):
        for name, probe in probes.items():  # the best of a few calls: a limit, not a typical time
            seconds[name].append(min(timed(device, probe) for _ in range(PROBE_CALLS)))
        for c in running[r % len(running):] + running[:r % len(running)]:
            n = steps[c.name]
            seconds[c.name].append(timed(device, lambda c=c, n=n: c.run(n)) / n)
    return seconds


def interleaved_epochs(contenders: list[Contender], steps: dict[str, int], device: torch.device) -> dict[str, float]:
    """Seconds for one epoch of each contender, the epochs cut into blocks and interleaved like the
    step timings, so that a burst of load from elsewhere does not land on one contender's epoch."""
    epochs = {c.name: c.epoch_batches() for c in contenders}
    seconds = dict.fromkeys(epochs, 0.0)
    left = list(contenders)
    while left:
        for c in list(left):
            synchronize(device)
            start = time.perf_counter()
            more = c.run_from(epochs[c.name], steps[c.name])
            synchronize(device)
            seconds[c.name] += time.perf_counter() - start
            if not more:
                left.remove(c)
    return seconds


def median_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """The median, and half the interquartile range relative to it (0.05 means about +-5%)."""
    if len(values) < 2:
        return values[0], 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    middle = statistics.median(values)
    return middle, (q3 - q1) / 2 / middle
