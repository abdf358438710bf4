"""The collectives a sharded or tensor-parallel step calls, by the hand ring or by torch.distributed's own.

    comm = Collectives("ring")                 # or "library"
    comm.reduce_scatter_(full, shard)          # shard <- this rank's 1/N of the sum over ranks of `full`
    comm.all_gather_(shard, full)              # full  <- every rank's shard, end to end
    comm.all_reduce_(tensor)                   # tensor <- the sum over ranks
    comm.bytes_sent                            # what this process has sent so far ("ring" only)

"ring" runs the hand-written rings of compare/distributed/ring.py and counts every byte this process
hands to `isend`; "library" calls torch.distributed.reduce_scatter_single, all_gather_single and
all_reduce (gloo's or NCCL's own algorithms), whose bytes are not visible from here (bytes_sent is None).
Rank r owns the r-th contiguous 1/N of a flat tensor (`full.numel()` must be a multiple of N).
"""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor

from compare.distributed.ring import ring_all_gather_, ring_all_reduce_, ring_reduce_scatter_

COLLECTIVES = ("ring", "library")


def owned(full: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank `rank`'s contiguous 1/N of the flat tensor `full` (a view)."""
    size = full.numel() // world_size
    return full.view(-1)[rank * size:(rank + 1) * size]


def same_memory(a: Tensor, b: Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.numel() == b.numel()


class Collectives:
    def __init__(self, how: str, group: dist.ProcessGroup | None = None) -> None:
        if how not in COLLECTIVES:
            raise ValueError(f"unknown collectives {how!r}; choose one of {', '.join(COLLECTIVES)}")
        self.how, self.group = how, group
        self.rank, self.world_size = dist.get_rank(group), dist.get_world_size(group)
        self._sent = 0
        self.calls: list[tuple[str, int]] = []  # (what, values of the whole tensor) of every call, in order

    @property
    def bytes_sent(self) -> int | None:
        return self._sent if self.how == "ring" else None

    def _check(self, full: Tensor, shard: Tensor) -> None:
        if full.numel() != shard.numel() * self.world_size:
            raise ValueError(f"a flat tensor of {full.numel()} values does not hold {self.world_size} shards of "
                             f"{shard.numel()}: pad it to a multiple of {self.world_size}")

    def reduce_scatter_(self, full: Tensor, shard: Tensor) -> None:
        """shard <- this rank's 1/N of the sum of `full` over ranks. The ring works in place: `full` then holds
        partial sums, except this rank's own 1/N (`shard` may be that very view)."""
        self._check(full, shard)
        self.calls.append(("reduce_scatter", full.numel()))
        mine = owned(full, self.rank, self.world_size)
        if self.how == "ring":
            self._sent += ring_reduce_scatter_(full, self.group)
            if not same_memory(mine, shard):
                shard.copy_(mine)
        elif same_memory(mine, shard):  # the library's output must not overlap its input
            reduced = shard.new_empty(shard.shape)
            dist.reduce_scatter_single(reduced, full, group=self.group)
            shard.copy_(reduced)
        else:
            dist.reduce_scatter_single(shard, full, group=self.group)

    def all_gather_(self, shard: Tensor, full: Tensor) -> None:
        """full <- every rank's shard, in rank order (`shard` may be this rank's own view of `full`)."""
        self._check(full, shard)
        self.calls.append(("all_gather", full.numel()))
        mine = owned(full, self.rank, self.world_size)
        if self.how == "ring":
            if not same_memory(mine, shard):
                mine.copy_(shard)
            self._sent += ring_all_gather_(full, self.group)
        else:
            source = shard.clone() if same_memory(mine, shard) else shard
            dist.all_gather_single(full, source, group=self.group)

    def all_reduce_(self, tensor: Tensor, what: str = "all_reduce") -> None:
        """tensor <- its sum over ranks (contiguous, in place); `what` names the call in `calls`."""
        self.calls.append((what, tensor.numel()))
        if self.how == "ring":
            self._sent += ring_all_reduce_(tensor, self.group)
        else:
            dist.all_reduce(tensor, group=self.group)
