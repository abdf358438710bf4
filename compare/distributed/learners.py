"""Learners that train one replica per process on a shard of each global batch, gradients averaged.

The training loop (compare/training/loop.py) hands every learner the same global batch; a data-parallel
learner takes its shard of it (`shard`), computes its gradients, and averages them with the other
processes before its optimizer steps, so every replica takes the same step and stays identical.

    scratch: ScratchDataParallel: the hand-written backward, then GradientBuckets.all_reduce_mean_
    torch:   TorchDataParallel: the torch twin wrapped in torch.nn.parallel.DistributedDataParallel

(DistributedLearner, their base, wraps a learner built as for one process and hands it what is not
distributed; the sharded and tensor-parallel learners build on it too.)

Why averaging gradients equals one big batch: the loss of a batch of B examples is the mean
L = (1/B) sum_i l_i, so its gradient is the mean of the per-example gradients. Cut the batch into N
shards of B/N: each process's gradient is the mean over its shard, and the mean of the N shard
means is (1/N) sum_r (N/B) sum_{i in r} grad l_i = (1/B) sum_i grad l_i. With unequal shards (a
last batch that does not divide evenly) each process weights its loss by w_r = N n_r / B, so that
(1/N) sum_r w_r grad L_r is again the full batch's gradient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from compare.distributed.buckets import GradientBuckets
from compare.training.learners import Learner, ScratchLearner, TorchLearner
from compare.training.state import TrainingState


def shard(n: int, rank: int, world_size: int) -> slice:
    """This rank's rows of a global batch of n: contiguous, in rank order, sizes differing by at most one."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


@dataclass
class DistributedLearner(Learner):
    """One process's part of a distributed learner: wraps a learner built as for one process (`inner`), times its
    steps, and hands the rest to it."""

    inner: Learner  # a ScratchLearner or TorchLearner built as for one process
    rank: int
    world_size: int
    name: str
    implementation: str
    epoch_seconds: list[float] = field(default_factory=list)  # time in train_step per epoch (not evaluation)
    _seconds: float = 0.0

    def __post_init__(self) -> None:
        self.input_shape = self.inner.input_shape

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.inner.forward_backward(x, y)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        start = time.perf_counter()
        loss = super().train_step(x, y)
        self._seconds += time.perf_counter() - start
        return loss

    def end_epoch(self) -> None:
        self.inner.end_epoch()
        self.epoch_seconds.append(self._seconds)
        self._seconds = 0.0

    def step(self) -> None:
        self.inner.step()

    def learning_rate(self) -> float | None:
        return self.inner.learning_rate()

    def named_buffers(self) -> dict[str, Tensor]:
        return self.inner.named_buffers()

    def logits(self, x: Tensor) -> Tensor:
        return self.inner.logits(x)

    def loss_value(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.inner.loss_value(logits, y)

    def named_parameters(self) -> dict[str, Tensor]:
        return self.inner.named_parameters()

    def gathered_parameters(self) -> dict[str, Tensor]:
        """Every parameter in full, copied. A sharded or tensor-parallel learner gathers them from the processes:
        call it in every process, at the same point."""
        return {name: p.clone() for name, p in self.named_parameters().items()}

    def named_gradients(self) -> dict[str, Tensor]:
        return self.inner.named_gradients()

    def load_state(self, state: dict[str, Tensor]) -> None:
        self.inner.load_state(state)

    def export_state(self) -> TrainingState:
        return self.inner.export_state()


class DataParallelLearner(DistributedLearner):
    """One process's replica: trains on its shard; the loss it returns is the global batch's (all-reduced)."""

    def local_forward_backward(self, x: Tensor, y: Tensor, weight: float) -> Tensor:
        """The loss of this shard; leaves the gradient of weight * loss, averaged over processes, in the model."""
        raise NotImplementedError

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        rows = shard(len(x), self.rank, self.world_size)
        n_local = rows.stop - rows.start
        if n_local == 0:
            raise ValueError(f"a batch of {len(x)} cannot be shared by {self.world_size} processes: rank "
                             f"{self.rank} would get no example")
        loss = self.local_forward_backward(x[rows], y[rows], self.world_size * n_local / len(x))
        total = (loss.detach() * (n_local / len(x))).reshape(1)  # 1: this shard's share of the batch's loss
        dist.all_reduce(total)  # for the records: the global batch's mean loss, on every process
        return total[0]


class ScratchDataParallel(DataParallelLearner):
    """The hand-written network; its gradient buffers averaged by GradientBuckets (torch.distributed.all_reduce)."""

    def __init__(self, inner: ScratchLearner, rank: int, world_size: int, bucket_bytes: int) -> None:
        super().__init__(inner, rank, world_size, name="scratch", implementation="hand-written, all_reduce")
        self.buckets = GradientBuckets(list(inner.named_gradients().values()), bucket_bytes)

    def local_forward_backward(self, x: Tensor, y: Tensor, weight: float) -> Tensor:
        loss = self.inner.forward_backward(x, y)
        self.buckets.all_reduce_mean_(scale=weight / self.world_size)
        return loss


class TorchDataParallel(DataParallelLearner):
    """The torch twin inside DistributedDataParallel: its backward all-reduces the gradients in buckets."""

    def __init__(self, inner: TorchLearner, rank: int, world_size: int, bucket_bytes: int,
                 device_ids: list[int] | None = None) -> None:
        super().__init__(inner, rank, world_size, name="torch", implementation="torch, DistributedDataParallel")
        # The plain module stays inner.model (parameter names without "module."); DDP shares its parameters.
        self.ddp = DistributedDataParallel(inner.model, device_ids=device_ids, bucket_cap_mb=bucket_bytes / 2**20)

    def local_forward_backward(self, x: Tensor, y: Tensor, weight: float) -> Tensor:
        inner = self.inner
        inner.model.train()
        inner.optimizer.zero_grad(set_to_none=False)
        loss = inner.loss_fn(self.ddp(inner.shaped(x)), y)
        (loss if weight == 1 else loss * weight).backward()  # DDP averages the gradients during this call
        return loss.detach()


def replicas_identical(parameters: dict[str, Tensor], group: dist.ProcessGroup | None = None) -> bool:
    """Whether every process holds bit-identical `parameters` (rank 0's broadcast, compared, agreed by all)."""
    flat = torch.cat([p.reshape(-1) for p in parameters.values()])  # all parameters
    reference = flat.clone()
    dist.broadcast(reference, src=0, group=group)
    same = torch.tensor([1.0 if torch.equal(flat, reference) else 0.0], device=flat.device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN, group=group)
    return bool(same.item() == 1.0)
