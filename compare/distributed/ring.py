"""Ring collectives written by hand from point-to-point messages: reduce-scatter, all-gather, and all-reduce
as the two in a row. For learning, and for counting every byte; torch.distributed's own calls do the same work.

    sent = ring_reduce_scatter_(flat)     # afterwards chunk r of `flat` in process r holds that chunk's sum
    sent = ring_all_gather_(flat)         # process r's chunk r travels to everyone: every chunk everywhere
    sent = ring_all_reduce_(tensor)       # in every process: tensor <- the sum of everyone's tensor

The N processes stand in a ring; each talks only to its neighbours (it sends to rank+1 and
receives from rank-1). The tensor is cut into N chunks c_0 .. c_{N-1}; process r "owns" chunk
(r + shift) mod N (shift 0 for sharding, where rank r owns the r-th 1/N; the all-reduce uses 1).

1. reduce-scatter, N-1 steps: at step s, process r sends chunk (r + shift - 1 - s) mod N to its right
   and adds the chunk (r + shift - 2 - s) mod N that arrives from its left to its own. A chunk travels
   round the ring collecting one term per hop; after N-1 hops process r holds the complete sum of the
   chunk it owns (the other chunks hold partial sums, of no use).
2. all-gather, N-1 steps: at step s, process r sends chunk (r + shift - s) mod N (complete) to its right
   and stores the chunk (r + shift - s - 1) mod N arriving from its left. Each complete chunk travels
   round once.

Each phase sends N-1 chunks of 1/N of the tensor per process: (N-1)/N times its size in bytes, so
reduce-scatter and all-gather each cost (N-1)/N x bytes and an all-reduce 2(N-1)/N x bytes, which
tends to twice the tensor whatever N is; every link carries the same load at every step. That is
why the ring is bandwidth-optimal and the default large-message algorithm of NCCL (gloo has ring
variants as well). The time is then about (N-1) latencies + (N-1)/N * bytes / bandwidth per phase.
The sums are added in a different order than torch.distributed's calls may use, so the two agree to
rounding (exactly, for N=2 or for values whose sums are exact).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def ring_bytes(numel: int, element_size: int, world_size: int, phases: int = 2) -> float:
    """What each process sends in `phases` ring phases over numel values: phases x (N-1)/N times the tensor's
    bytes (2 for an all-reduce, 1 for a reduce-scatter or an all-gather)."""
    return phases * (world_size - 1) / world_size * numel * element_size


def ring_all_reduce_bytes(numel: int, element_size: int, world_size: int, rank: int) -> int:
    """Exactly what process `rank` sends in ring_all_reduce_ of numel values: every chunk but one in each phase
    (in the reduce-scatter all but chunk rank+1, in the all-gather all but chunk rank+2). When N divides numel, that
    is ring_bytes: 2(N-1)/N of the tensor; otherwise the chunks differ by one value and so do the ranks."""
    if world_size == 1:
        return 0
    sizes = _chunk_sizes(numel, world_size)
    kept = sizes[(rank + 1) % world_size] + sizes[(rank + 2) % world_size]
    return (2 * numel - kept) * element_size


def _chunk_sizes(numel: int, world_size: int) -> list[int]:
    """The sizes of tensor_split(world_size) of numel values: the first numel % N chunks one larger."""
    base, extra = divmod(numel, world_size)
    return [base + (1 if k < extra else 0) for k in range(world_size)]


class _Ring:
    """This process's place in the ring of a group, and the exchange with its neighbours, counting bytes."""

    def __init__(self, tensor: Tensor, group: dist.ProcessGroup | None) -> None:
        if not tensor.is_contiguous():
            raise ValueError("a ring collective needs a contiguous tensor (call .contiguous() first)")
        self.world, self.rank = dist.get_world_size(group), dist.get_rank(group)
        # send/recv address processes by their rank in the whole world
        self.right, self.left = (r if group is None else dist.get_global_rank(group, r)
                                 for r in ((self.rank + 1) % self.world, (self.rank - 1) % self.world))
        self.chunks = tensor.view(-1).tensor_split(self.world)  # N views, sizes differing by at most one
        self.sent = 0

    def exchange(self, send: Tensor, receive: Tensor) -> None:
        # Send without waiting, then receive: if every process first waited for its send to be taken, a
        # ring of blocking sends could wait on each other forever.
        request = dist.isend(send, self.right)
        dist.recv(receive, self.left)
        request.wait()
        self.sent += send.numel() * send.element_size()

    def chunk(self, index: int) -> Tensor:
        return self.chunks[index % self.world]


def ring_reduce_scatter_(tensor: Tensor, group: dist.ProcessGroup | None = None, shift: int = 0) -> int:
    """Leave in chunk (rank + shift) mod N of `tensor` (contiguous, in place) the sum over the group's processes
    of that chunk; the other chunks are overwritten with partial sums. Returns the bytes this process sent."""
    ring = _Ring(tensor, group)
    if ring.world == 1:
        return 0
    incoming = tensor.new_empty(ring.chunks[0].numel())  # the largest chunk
    owner = ring.rank + shift
    for s in range(ring.world - 1):
        into = ring.chunk(owner - 2 - s)
        buffer = incoming[:into.numel()]
        ring.exchange(ring.chunk(owner - 1 - s), buffer)
        into.add_(buffer)
    return ring.sent


def ring_all_gather_(tensor: Tensor, group: dist.ProcessGroup | None = None, shift: int = 0) -> int:
    """Fill every chunk of `tensor` (contiguous, in place) with the owner's: process r contributes its chunk
    (rank + shift) mod N. Returns the bytes this process sent."""
    ring = _Ring(tensor, group)
    owner = ring.rank + shift
    for s in range(ring.world - 1):
        ring.exchange(ring.chunk(owner - s), ring.chunk(owner - s - 1))
    return ring.sent


def ring_all_reduce_(tensor: Tensor, group: dist.ProcessGroup | None = None) -> int:
    """Sum `tensor` (contiguous) over the group's processes, in place: a ring reduce-scatter, then a ring
    all-gather of the complete chunks. Returns the bytes this process sent."""
    return ring_reduce_scatter_(tensor, group, shift=1) + ring_all_gather_(tensor, group, shift=1)


def check_ring(numel: int, dtype: torch.dtype, seed: int, group: dist.ProcessGroup | None = None,
               device: torch.device | str = "cpu") -> dict:
    """The hand ring all-reduce against torch.distributed.all_reduce on one random tensor per process: figures.
    `device`: where the backend takes tensors (the CPU for gloo, this process's GPU for NCCL)."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    values = torch.randn(numel, generator=torch.Generator().manual_seed(seed + rank), dtype=dtype).to(device)
    mine, library = values.clone(), values.clone()
    sent = ring_all_reduce_(mine, group)
    dist.all_reduce(library, group=group)
    return dict(world_size=world, numel=numel, tensor_bytes=numel * values.element_size(), bytes_sent=sent,
                formula_bytes=ring_bytes(numel, values.element_size(), world),
                max_rel_diff=relative_gap(mine, library))


def check_ring_sharding(numel: int, dtype: torch.dtype, seed: int, group: dist.ProcessGroup | None = None,
                        device: torch.device | str = "cpu") -> dict:
    """The hand ring reduce-scatter and all-gather against torch.distributed's reduce_scatter_single and
    all_gather_single on a random tensor of `numel` values (a multiple of N) per process: figures of each."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if numel % world:
        raise ValueError(f"check_ring_sharding needs a size that {world} processes divide, got {numel}")
    values = torch.randn(numel, generator=torch.Generator().manual_seed(seed + rank), dtype=dtype).to(device)
    size = numel // world
    mine = values.clone()
    rs_sent = ring_reduce_scatter_(mine, group)
    library = values.new_empty(size)
    dist.reduce_scatter_single(library, values.clone(), group=group)
    shard = mine[rank * size:(rank + 1) * size]
    gathered = values.new_zeros(numel)
    gathered[rank * size:(rank + 1) * size] = values[rank * size:(rank + 1) * size]
    ag_sent = ring_all_gather_(gathered, group)
    library_gathered = values.new_empty(numel)
    dist.all_gather_single(library_gathered, values[rank * size:(rank + 1) * size].clone(), group=group)
    formula = ring_bytes(numel, values.element_size(), world, phases=1)
    return dict(world_size=world, numel=numel, tensor_bytes=numel * values.element_size(),
                reduce_scatter=dict(bytes_sent=rs_sent, formula_bytes=formula,
                                    max_rel_diff=relative_gap(shard, library)),
                all_gather=dict(bytes_sent=ag_sent, formula_bytes=formula,
                                max_rel_diff=relative_gap(gathered, library_gathered)))


def relative_gap(mine: Tensor, library: Tensor) -> float:
    """max |mine - library| over max |library|."""
    return (mine - library).abs().max().item() / max(library.abs().max().item(), 1e-300)
