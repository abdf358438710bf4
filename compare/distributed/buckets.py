"""Averaging gradient buffers across processes, in buckets, as DistributedDataParallel does.

    buckets = GradientBuckets(model.gradients(), cap_bytes=25 * 2**20)
    model.backward(dlogits)                 # this process's gradients, from its shard of the batch
    buckets.all_reduce_mean_(scale=1 / N)   # now every process holds the average over the N shards

Why buckets: an all-reduce costs a fixed latency per call (a round of messages between all
processes, tens of microseconds on one machine, far more across machines) plus a time per byte.
One call per parameter tensor pays the latency once per tensor (6 calls for the lesson's network,
hundreds for a large one); one call for everything waits for the whole backward pass before
sending a byte. Buckets of a few megabytes, filled in the order backward produces gradients (the
last layer's first), pay few latencies and can start while the rest of backward runs. DDP sends a
bucket as soon as its last gradient is ready (autograd hooks), overlapping communication with
backward; here the scratch backward runs to its end first (its layers have no per-tensor hooks),
then the buckets are all-reduced one after the other.

Scaling: like DDP, each gradient is multiplied by `scale` (1/N) while it is copied into the bucket,
then the buckets are summed across processes: sum_r g_r / N, the average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass
class Bucket:
    flat: Tensor  # [n]: the gradients of its members, end to end
    members: list[tuple[Tensor, Tensor]]  # (a gradient buffer, its view in `flat`, flattened)

    @property
    def nbytes(self) -> int:
        return self.flat.numel() * self.flat.element_size()


class GradientBuckets:
    """Flat buckets over a list of gradient buffers (the buffers themselves stay where they are)."""

    def __init__(self, grads: Sequence[Tensor], cap_bytes: int) -> None:
        if cap_bytes <= 0:
            raise ValueError(f"a bucket must hold at least one byte, got cap_bytes={cap_bytes}")
        groups: list[list[Tensor]] = [[]]
        size = 0
        for g in reversed(grads):  # the order backward writes them: last layer first
            nbytes = g.numel() * g.element_size()
            if groups[-1] and size + nbytes > cap_bytes:  # a tensor larger than the cap gets a bucket of its own
                groups.append([])
                size = 0
            groups[-1].append(g)
            size += nbytes
        self.buckets: list[Bucket] = []
        for group in groups:
            flat = group[0].new_empty(sum(g.numel() for g in group))  # n
            views, offset = [], 0
            for g in group:
                views.append((g, flat[offset:offset + g.numel()]))
                offset += g.numel()
            self.buckets.append(Bucket(flat, views))

    def all_reduce_mean_(self, scale: float, group: dist.ProcessGroup | None = None) -> None:
        """Replace every gradient g_r of this process by sum over processes of scale * g_r, in place."""
        for bucket in self.buckets:
            for g, view in bucket.members:
                torch.mul(g.reshape(-1), scale, out=view)  # scale while copying, as DDP does
            dist.all_reduce(bucket.flat, op=dist.ReduceOp.SUM, group=group)
            for g, view in bucket.members:
                g.copy_(view.view_as(g))

    def describe(self) -> str:
        sizes = [b.flat.numel() for b in self.buckets]
        total = sum(b.nbytes for b in self.buckets)
        return (f"{len(sizes)} bucket{'s' if len(sizes) != 1 else ''} ({', '.join(f'{n:,}' for n in sizes)} values, "
                f"{total / 1024:.1f} KiB in all)")
