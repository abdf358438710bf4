"""torch's own sharding, the other side of each ZeRO stage by hand (compare/distributed/sharding.py).

    stage 1 (--shard optimizer)    DistributedDataParallel + torch.distributed.optim.ZeroRedundancyOptimizer
    stage 2 (--shard gradients)    FSDP2: torch.distributed.fsdp.fully_shard(..., reshard_after_forward=False)
    stage 3 (--shard parameters)   FSDP2: torch.distributed.fsdp.fully_shard(..., reshard_after_forward=True)

ZeroRedundancyOptimizer keeps DDP's full gradients (all-reduced) and gives each rank whole parameter
tensors to step, greedily by size, then broadcasts each rank's updated tensors: its shards are not 1/N
of the values but a partition of the tensors. fully_shard replaces each parameter by a DTensor sharded
on its first dimension (padded to a multiple of N), all-gathers a module's parameters before its
forward (and, when they were resharded after it, again before its backward) and reduce-scatters its
gradients after its backward; reshard_after_forward=False keeps the full parameters from forward to
backward (ZeRO-2's memory, one all-gather per step), True frees them (ZeRO-3, two all-gathers).
fully_shard is applied to the same units as the hand side (each layer, or the whole model) and then
to the root, as FSDP2 asks.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.distributed.tensor import DTensor

from compare.distributed.learners import DataParallelLearner, TorchDataParallel
from compare.distributed.memory import MemoryLedger
from compare.training.components import torch_optimizer, torch_schedule
from compare.training.config import Config
from compare.training.learners import TorchLearner
from compare.training.optimizers import optimizer_spec


def local(t: Tensor | None) -> Tensor | None:
    """This process's part of a tensor: a DTensor's local shard, a plain tensor itself."""
    return t.to_local() if isinstance(t, DTensor) else t


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [local(v) for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)]


def torch_ledger(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> MemoryLedger:
    """What the module and its optimizer hold in this process (local shards of DTensors): the parameters the
    optimizer steps and those the module has registered (FSDP swaps in unsharded ones while it uses them)."""

    def parameters() -> list[Tensor]:
        return [*(p for group in optimizer.param_groups for p in group["params"]), *model.parameters()]

    return MemoryLedger(parameters=lambda: [local(p.detach()) for p in parameters()],
                        gradients=lambda: [local(p.grad) for p in parameters()],
                        optimizer_state=lambda: optimizer_state_tensors(optimizer))


class TorchZeroRedundancy(TorchDataParallel):
    """The torch twin in DistributedDataParallel, stepped by ZeroRedundancyOptimizer (ZeRO-1)."""

    def __init__(self, inner: TorchLearner, rank: int, world_size: int, bucket_bytes: int, config: Config,
                 device_ids: list[int] | None = None) -> None:
        super().__init__(inner, rank, world_size, bucket_bytes, device_ids)
        self.implementation = "torch, DDP + ZeroRedundancyOptimizer"
        name, kwargs = optimizer_spec(config)
        # the same class as torch_impl.optim's, with its per-parameter loop (foreach=False) as there
        inner.optimizer = ZeroRedundancyOptimizer(inner.model.parameters(), optimizer_class=getattr(torch.optim, name),
                                                  foreach=False, **kwargs)
        inner.scheduler = torch_schedule(config, inner.optimizer)
        self.ledger = torch_ledger(inner.model, inner.optimizer.optim)  # .optim: this rank's own optimizer

    def step(self) -> None:
        super().step()
        self.ledger.sample()

    def gathered_parameters(self) -> dict[str, Tensor]:
        return {name: p.clone() for name, p in self.inner.named_parameters().items()}


class TorchFullyShard(DataParallelLearner):
    """The torch twin sharded by FSDP2's fully_shard (ZeRO-2 or ZeRO-3 by reshard_after_forward)."""

    def __init__(self, inner: TorchLearner, rank: int, world_size: int, units: list[str], reshard_after_forward: bool,
                 config: Config, device_type: str = "cpu") -> None:
        super().__init__(inner, rank, world_size, name="torch",
                         implementation=f"torch, fully_shard(reshard_after_forward={reshard_after_forward})")
        mesh = init_device_mesh(device_type, (world_size,))
        for path in units:
            fully_shard(inner.model.get_submodule(path), mesh=mesh, reshard_after_forward=reshard_after_forward)
        fully_shard(inner.model, mesh=mesh, reshard_after_forward=reshard_after_forward)
        inner.optimizer, inner.scheduler = torch_optimizer(config, inner.model)  # over the sharded parameters
        self.ledger = torch_ledger(inner.model, inner.optimizer)

    def local_forward_backward(self, x: Tensor, y: Tensor, weight: float) -> Tensor:
        inner = self.inner
        inner.model.train()
        inner.optimizer.zero_grad(set_to_none=False)
        loss = inner.loss_fn(inner.model(inner.shaped(x)), y)
        (loss if weight == 1 else loss * weight).backward()  # reduce-scatters (and averages) every unit's gradients
        return loss.detach()

    def step(self) -> None:
        super().step()
        self.ledger.sample()

    def gathered_parameters(self) -> dict[str, Tensor]:
        """Every parameter in full (DTensor.full_tensor all-gathers): call in every process."""
        return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
                for name, p in self.inner.model.named_parameters()}


def counterpart(stage: str, inner: TorchLearner, rank: int, world_size: int, units: list[str], bucket_bytes: int,
                config: Config, device: torch.device) -> TorchZeroRedundancy | TorchFullyShard:
    """torch's own learner for a stage of --shard: ZeroRedundancyOptimizer for "optimizer", fully_shard for the
    others (units: the module paths the hand side gathers one at a time)."""
    if stage == "optimizer":
        ids = [device.index] if device.type == "cuda" else None
        return TorchZeroRedundancy(inner, rank, world_size, bucket_bytes, config, ids)
    return TorchFullyShard(inner, rank, world_size, units, stage == "parameters", config, device.type)
