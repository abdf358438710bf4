"""Bytes a process holds for parameters, gradients and optimizer state, counted on the tensors themselves.

    ledger = MemoryLedger(parameters=lambda: [...], gradients=lambda: [...], optimizer_state=lambda: [...])
    ledger.sample()        # at every phase boundary of a step: the peak of each kind and of their sum
    ledger.peak, ledger.last     # the largest of each kind; the last sample (the end of the last step)

What is counted is the storage behind the tensors (each storage once, however many views share it), at
the moment of the sample: a storage that a sharded step has freed (resized to 0 bytes) counts 0. So the
figures are what the buffers really hold, not what a formula says they should. Not counted: activations,
the one-chunk receive buffer inside a ring collective, and whatever the backend allocates on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor

KINDS = ("parameters", "gradients", "optimizer_state")


def storage_bytes(tensors: Iterable[Tensor | None]) -> int:
    """The bytes of the distinct storages behind `tensors` (None entries skipped)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None:
            continue
        storage = t.untyped_storage()
        if storage.nbytes():
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


class MemoryLedger:
    """The bytes of each kind now, and their peak over the samples taken."""

    def __init__(self, **holders: Callable[[], Iterable[Tensor | None]]) -> None:
        if set(holders) != set(KINDS):
            raise ValueError(f"a ledger counts exactly {', '.join(KINDS)}; got {', '.join(holders)}")
        self.holders = holders
        self.peak = dict.fromkeys(KINDS, 0)
        self.peak_total = 0
        self.last = dict.fromkeys(KINDS, 0)
        self.samples = 0

    def now(self) -> dict[str, int]:
        return {kind: storage_bytes(holder()) for kind, holder in self.holders.items()}

    def sample(self) -> dict[str, int]:
        held = self.now()
        for kind, value in held.items():
            self.peak[kind] = max(self.peak[kind], value)
        self.peak_total = max(self.peak_total, sum(held.values()))
        self.last = held
        self.samples += 1
        return held

    def to_dict(self) -> dict:
        """The peaks, and what the last sample held: taken at the end of a step, the bytes between steps."""
        return dict(peak=dict(self.peak), peak_total=self.peak_total, at_rest=dict(self.last), samples=self.samples)
