"""The learners of `tp`: the network's pairs of Linear layers split across N processes, by hand and by torch.

    scratch: ScratchTensorParallel   the hand-written network with ColumnParallelLinear / RowParallelLinear
                                     (compare/distributed/tensor_parallel.py) in place of each pair
    torch:   TorchTensorParallel     the torch twin after torch.distributed.tensor.parallel.parallelize_module
                                     with ColwiseParallel / RowwiseParallel on the same pairs

Every process sees the whole batch (this is not data parallelism) and returns the same loss; the
optimizer, built after the split, steps every parameter the process holds: its shards of the split
matrices, and the rest whole, which stays identical in every process because every process computes
the same gradients for it.
"""

from __future__ import annotations

from torch import Tensor
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from compare.distributed.collectives import Collectives
from compare.distributed.learners import DistributedLearner
from compare.distributed.memory import MemoryLedger
from compare.distributed.ring import ring_all_reduce_bytes
from compare.distributed.tensor_parallel import gather_parameters, split
from compare.distributed.torch_sharding import torch_ledger
from compare.models import SplitPair
from compare.training.components import scratch_optimizer, torch_optimizer
from compare.training.config import Config
from compare.training.learners import ScratchLearner, TorchLearner


class ScratchTensorParallel(DistributedLearner):
    def __init__(self, inner: ScratchLearner, rank: int, world_size: int, pairs: list[SplitPair], comm: Collectives,
                 config: Config) -> None:
        super().__init__(inner, rank, world_size, name="scratch",
                         implementation=f"hand-written, column- then row-parallel ({comm.how} collectives)")
        self.comm = comm
        self.layers = split(inner.model, pairs, rank, world_size, comm)
        model = inner.model
        inner.optimizer, inner.scheduler = scratch_optimizer(config, model.parameters(), model.gradients())
        self.ledger = MemoryLedger(parameters=model.parameters, gradients=model.gradients,
                                   optimizer_state=inner.optimizer.state_tensors)
        self.step_bytes: list[int] = []  # what this process sent in each training step (ring collectives)
        self.step_formula: list[int] = []  # what the ring sends for the all-reduces of that step, by their sizes
        self.step_calls: list[list[tuple[str, int]]] = []  # (f or g, values) of each all-reduce of each step

    def train_step(self, x: Tensor, y: Tensor) -> float:
        before, calls = self.comm.bytes_sent, len(self.comm.calls)
        loss = super().train_step(x, y)
        self.step_calls.append(self.comm.calls[calls:])
        sizes = [numel for _, numel in self.comm.calls[calls:]]
        if before is not None:
            self.step_bytes.append(self.comm.bytes_sent - before)
            element = next(iter(self.inner.named_parameters().values())).element_size()
            self.step_formula.append(sum(ring_all_reduce_bytes(n, element, self.world_size, self.rank)
                                         for n in sizes))
        self.ledger.sample()
        return loss

    def gathered_parameters(self) -> dict[str, Tensor]:
        return gather_parameters(self.inner.model, self.layers, self.world_size)


class TorchTensorParallel(DistributedLearner):
    def __init__(self, inner: TorchLearner, rank: int, world_size: int, pairs: list[SplitPair], config: Config,
                 device_type: str = "cpu") -> None:
        super().__init__(inner, rank, world_size, name="torch",
                         implementation="torch, parallelize_module (ColwiseParallel, RowwiseParallel)")
        mesh = init_device_mesh(device_type, (world_size,))
        plan = {}
        for pair in pairs:
            plan.update({pair.column: ColwiseParallel(), pair.row: RowwiseParallel()})
        parallelize_module(inner.model, mesh, plan)
        inner.optimizer, inner.scheduler = torch_optimizer(config, inner.model)  # over the DTensor shards
        self.ledger = torch_ledger(inner.model, inner.optimizer)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        loss = super().train_step(x, y)
        self.ledger.sample()
        return loss

    def gathered_parameters(self) -> dict[str, Tensor]:
        """Every parameter in full (DTensor.full_tensor all-gathers): call in every process."""
        return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
                for name, p in self.inner.model.named_parameters()}
