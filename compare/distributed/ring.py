"""The ring all-reduce, written by hand from point-to-point messages: for learning, not for training.

    sent = ring_all_reduce_(tensor)    # in every process: tensor <- the sum of everyone's tensor

The N processes stand in a ring; each talks only to its neighbours (it sends to rank+1 and
receives from rank-1). The tensor is cut into N chunks c_0 .. c_{N-1}.

1. reduce-scatter, N-1 steps: at step s, process r sends chunk (r - s) mod N to its right and adds
   the chunk (r - s - 1) mod N that arrives from its left to its own. A chunk travels round the ring
   collecting one term per hop; after N-1 hops process r holds the complete sum of chunk (r + 1) mod N.
2. all-gather, N-1 steps: at step s, process r sends chunk (r + 1 - s) mod N (complete) to its right
   and stores the chunk (r - s) mod N arriving from its left. Each complete chunk travels round once.

Every process sends 2(N-1) chunks of 1/N of the tensor: 2(N-1)/N times its size in bytes, which
tends to twice the tensor whatever N is, and every link carries the same load at every step; that
is why the ring is bandwidth-optimal and the default large-message algorithm of NCCL (gloo has
ring variants as well). The time is then about 2(N-1) latencies + 2(N-1)/N * bytes / bandwidth.
The sums are added in a different order than torch.distributed.all_reduce may use, so the two
agree to rounding (exactly, for N=2 or for values whose sums are exact).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def ring_bytes(numel: int, element_size: int, world_size: int) -> float:
    """What each process sends in a ring all-reduce of numel values: 2(N-1)/N times the tensor's bytes."""
    return 2 * (world_size - 1) / world_size * numel * element_size


def ring_all_reduce_(tensor: Tensor, group: dist.ProcessGroup | None = None) -> int:
    """Sum `tensor` (contiguous) over the group's processes, in place, by a ring; returns the bytes this
    process sent."""
    if not tensor.is_contiguous():
        raise ValueError("ring_all_reduce_ needs a contiguous tensor (call .contiguous() first)")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if world == 1:
        return 0

    def global_rank(r: int) -> int:  # send/recv address processes by their rank in the whole world
        return r if group is None else dist.get_global_rank(group, r)

    right, left = global_rank((rank + 1) % world), global_rank((rank - 1) % world)
    chunks = tensor.view(-1).tensor_split(world)  # N views, sizes differing by at most one
    incoming = tensor.new_empty(chunks[0].numel())  # the largest chunk
    sent = 0

    def exchange(send: Tensor, receive: Tensor) -> None:
        nonlocal sent
        # Send without waiting, then receive: if every process first waited for its send to be taken, a
        # ring of blocking sends could wait on each other forever.
        request = dist.isend(send, right, group=None)
        dist.recv(receive, left, group=None)
        request.wait()
        sent += send.numel() * send.element_size()

    for s in range(world - 1):  # reduce-scatter
        out, into = chunks[(rank - s) % world], chunks[(rank - s - 1) % world]
        buffer = incoming[:into.numel()]
        exchange(out, buffer)
        into.add_(buffer)
    for s in range(world - 1):  # all-gather
        exchange(chunks[(rank + 1 - s) % world], chunks[(rank - s) % world])
    return sent


def check_ring(numel: int, dtype: torch.dtype, seed: int, group: dist.ProcessGroup | None = None,
               device: torch.device | str = "cpu") -> dict:
    """The hand ring against torch.distributed.all_reduce on one random tensor per process: figures.
    `device`: where the backend takes tensors (the CPU for gloo, this process's GPU for NCCL)."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    values = torch.randn(numel, generator=torch.Generator().manual_seed(seed + rank), dtype=dtype).to(device)
    mine, library = values.clone(), values.clone()
    sent = ring_all_reduce_(mine, group)
    dist.all_reduce(library, group=group)
    scale = max(library.abs().max().item(), 1e-300)
    return dict(world_size=world, numel=numel, tensor_bytes=numel * values.element_size(), bytes_sent=sent,
                formula_bytes=ring_bytes(numel, values.element_size(), world),
                max_rel_diff=(mine - library).abs().max().item() / scale)
