"""Peak tensor memory of a contender's training step, for `python -m compare bench`.

On CUDA, torch.cuda.max_memory_allocated says it. On the CPU, torch's profiler records every
allocation and free (profile_memory=True), but its public results sum them per operator and
do not say how much was alive at once, so the peak comes from the raw allocation events, which
only a PRIVATE torch API hands out. That use is kept to `allocation_events`, the one place in
the project that reads it; when a torch release renames or removes it, `peak_memory` raises
`MemoryUnavailableError` with the reason, and bench reports the memory column as unavailable.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import torch
from torch.profiler import ProfilerActivity, profile

from compare.commands.bench.contenders import Contender
from compare.commands.bench.timing import synchronize


class MemoryUnavailableError(Exception):
    """The peak memory cannot be measured with this torch; the message says why."""


def peak_memory(contender: Contender, device: torch.device) -> int:
    """Peak bytes of tensor memory over two training steps: what the contender holds between steps,
    plus the most it allocates on top of that during them (activations, caches, gradients, temporaries).

    Pass a freshly built scratch contender, so the activations scratch caches from one step to the
    next are counted; torch holds only its parameters once zero_grad() has freed the gradients.
    Raises MemoryUnavailableError when torch's profiler no longer offers what the CPU measurement reads.
    """
    if contender.drop_gradients is not None:
        contender.drop_gradients()
    held = contender.held_bytes()
    batch = contender.next_batch()
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):
            contender.train_step(*batch)
        synchronize(device)
        return held + torch.cuda.max_memory_allocated(device) - before
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(2):
            contender.train_step(*batch)
    return held + running_peak(allocation_events(prof))


def running_peak(events: list[tuple[int, int]]) -> int:
    """The largest running total of allocated minus freed bytes, over (time, bytes) events in time order."""
    running = peak = 0
    for _, size in sorted(events, key=lambda event: event[0]):  # stable: ties keep the profile's order
        running += size
        peak = max(peak, running)
    return peak


def allocation_events(prof: profile) -> list[tuple[int, int]]:
    """(start time in ns, bytes) of every allocation of a finished CPU profile; bytes are negative for a free.

    PRIVATE TORCH API (checked with PyTorch 2.14): `prof.profiler.kineto_results.experimental_event_tree()`
    and `torch._C._profiler._EventType`. Nothing public gives single allocation events in time order.
    """
    try:
        allocation = torch._C._profiler._EventType.Allocation
        roots = prof.profiler.kineto_results.experimental_event_tree()
        return [(e.start_time_ns, e.extra_fields.alloc_size) for e in _walk(roots) if e.tag == allocation]
    except (AttributeError, ImportError, TypeError) as error:
        raise MemoryUnavailableError(
            f"torch {torch.__version__} has changed the private profiler API this measurement reads "
            f"({type(error).__name__}: {error}); compare/commands/bench/memory.py needs updating") from None


def _walk(nodes: list) -> Iterator:
    for node in nodes:
        yield node
        yield from _walk(node.children)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: the profiler's C++ library logs "profiler_start/stop" lines there
    on every use, whatever its log level, which would bury the tables."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
