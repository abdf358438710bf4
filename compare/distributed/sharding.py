"""ZeRO by hand: each of N processes keeps only its 1/N of the optimizer state, the gradients, the parameters.

    learner = ShardedLearner(build_scratch(config), rank, N, stage="parameters", wrap="layer",
                             comm=Collectives("ring"), config=config)

The model's parameters and gradients live in flat buffers, one per unit (compare/distributed/flat.py),
padded to a multiple of N; rank r owns the r-th contiguous 1/N of each, its shard. The optimizer (the
scratch SGD, momentum, Adam, ...) is built over the shards only: its updates are element by element,
so stepping the shards of the flat buffer is stepping the whole model, 1/N per process, and its state
(momentum, Adam's two moments) exists only for the shard. The three stages (ZeRO-1, 2, 3):

    stage        held in full, per process          one step
    optimizer    parameters, gradients              forward, backward (full gradients);
                                                    reduce-scatter each unit's gradients (the shard: their sum);
                                                    step the shard; all-gather each unit's parameters
    gradients    parameters                         forward; backward, and as soon as a unit's backward has written
                                                    its gradients: reduce-scatter them into the shard, free them;
                                                    step the shard; all-gather each unit's parameters
    parameters   nothing but one unit at a time     before a unit's forward: all-gather its parameters, free them
                                                    after; before its backward: all-gather them again; after it:
                                                    reduce-scatter the gradients, free gradients and parameters;
                                                    step the shard (the next forward gathers what it needs)

Bytes each process sends per step (the hand ring: compare/distributed/ring.py), F the padded flat size:
(N-1)/N F for each reduce-scatter and each all-gather, so 2(N-1)/N F in stages 1 and 2 (as much as the
all-reduce of plain data parallelism) and 3(N-1)/N F in stage 3, which gathers twice. Averaging: each
rank's gradients are multiplied by w_r / N before the reduce-scatter sums them (w_r = N n_r / B, see
compare/distributed/learners.py), so the shard holds the whole batch's gradient.

The gathering and freeing of stage 3 and the reduce-scatter of stages 2 and 3 happen around each unit's
own forward and backward: the learner wraps those two methods of the unit's module (as FSDP registers
hooks on a module), so the model's own code runs unchanged and only ever sees full parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch.distributed as dist
from torch import Tensor

from compare.distributed.collectives import Collectives, owned
from compare.distributed.flat import allocate, allocated, flatten, free, unit_modules
from compare.distributed.learners import DataParallelLearner
from compare.distributed.memory import MemoryLedger
from compare.training.components import scratch_optimizer
from compare.training.config import Config
from compare.training.learners import ScratchLearner
from compare.training.state import TrainingState

STAGES = {"optimizer": 1, "gradients": 2, "parameters": 3}  # --shard's choices that shard, and their ZeRO stage


def wrap_method(module: object, method: str, before: Callable[[], None], after: Callable[[], None]) -> None:
    """Make module.<method>(...) run before(), then the method itself, then after()."""
    inner = getattr(module, method)

    @functools.wraps(inner)
    def wrapped(*args, **kwargs):
        before()
        result = inner(*args, **kwargs)
        after()
        return result

    setattr(module, method, wrapped)


class ShardedLearner(DataParallelLearner):
    """The hand-written network trained by ZeRO stage 1, 2 or 3 in this process (one of N)."""

    def __init__(self, inner: ScratchLearner, rank: int, world_size: int, stage: str, wrap: str, comm: Collectives,
                 config: Config) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
        super().__init__(inner, rank, world_size, name="scratch",
                         implementation=f"hand-written, ZeRO-{STAGES[stage]} ({comm.how} collectives)")
        self.stage, self.level, self.comm = stage, STAGES[stage], comm
        self.units = flatten(inner.model, unit_modules(inner.model, wrap), world_size)
        sizes = [u.size // world_size for u in self.units]
        # Stage 3 keeps its parameter shards in a buffer of their own (the full buffers are freed); stages 2
        # and 3 likewise their gradient shards. Otherwise a shard is the rank's view of the full buffer.
        self.param_shards = self._shards("params", sizes, own=self.level >= 3)
        self.grad_shards = self._shards("grads", sizes, own=self.level >= 2)
        for unit in self.units:
            if self.level >= 2:
                free(unit.grads)
            if self.level >= 3:
                free(unit.params)
        inner.optimizer, inner.scheduler = scratch_optimizer(config, self.param_shards, self.grad_shards)
        self.ledger = MemoryLedger(parameters=lambda: [*(u.params for u in self.units), *self.param_shards],
                                   gradients=lambda: [*(u.grads for u in self.units), *self.grad_shards],
                                   optimizer_state=lambda: inner.optimizer.state_tensors())
        self.step_bytes: list[int] = []  # what this process sent in each training step (ring collectives)
        self._scale = 1.0 / world_size
        self._in_step = False
        for k, unit in enumerate(self.units):
            if self.level >= 3:
                wrap_method(unit.module, "forward", functools.partial(self._gather, k),
                            functools.partial(self._release, k))
            if self.level >= 2:
                wrap_method(unit.module, "backward", functools.partial(self._before_backward, k),
                            functools.partial(self._after_backward, k))

    def _shards(self, kind: str, sizes: list[int], own: bool) -> list[Tensor]:
        fulls = [getattr(u, kind) for u in self.units]
        if not own:
            return [owned(full, self.rank, self.world_size) for full in fulls]
        flat = fulls[0].new_zeros(sum(sizes))  # this rank's shards of every unit, end to end
        shards = list(flat.split(sizes))
        for shard, full in zip(shards, fulls, strict=True):
            shard.copy_(owned(full, self.rank, self.world_size))
        return shards

    @property
    def flat_size(self) -> int:
        """F: the values of every unit's flat buffer, padding included."""
        return sum(u.size for u in self.units)

    def expected_step_bytes(self) -> float:
        """(N-1)/N of the flat bytes per reduce-scatter and per all-gather: 2 of them a step, 3 in stage 3."""
        phases = 3 if self.level >= 3 else 2
        nbytes = self.flat_size * self.units[0].params.element_size()
        return phases * (self.world_size - 1) / self.world_size * nbytes

    # --- the hooks around a unit's forward and backward ---------------------------------------------

    def _sample(self) -> None:
        if self._in_step:
            self.ledger.sample()

    def _gather(self, k: int) -> None:
        """Unit k's full parameters, all-gathered from the shards (if they are not held already)."""
        unit = self.units[k]
        if not allocated(unit.params):
            allocate(unit.params)
            self.comm.all_gather_(self.param_shards[k], unit.params)
        self._sample()

    def _release(self, k: int) -> None:
        self._sample()  # the peak: this unit's full parameters are still held
        free(self.units[k].params)

    def _before_backward(self, k: int) -> None:
        if self.level >= 3:
            self._gather(k)
        allocate(self.units[k].grads, zero=True)  # the unit's backward writes its full gradients here

    def _after_backward(self, k: int) -> None:
        self._sample()
        self._reduce(k)
        free(self.units[k].grads)
        if self.level >= 3:
            free(self.units[k].params)
        self._sample()

    def _reduce(self, k: int) -> None:
        """Unit k's gradients, scaled by w_r / N, summed over ranks into this rank's gradient shard."""
        self.units[k].grads.mul_(self._scale)
        self.comm.reduce_scatter_(self.units[k].grads, self.grad_shards[k])

    # --- one step ------------------------------------------------------------------------------------

    def local_forward_backward(self, x: Tensor, y: Tensor, weight: float) -> Tensor:
        self._scale = weight / self.world_size
        loss = self.inner.forward_backward(x, y)  # stages 2 and 3 reduce each unit's gradients in its backward
        if self.level == 1:
            self._sample()  # full gradients
            for k in range(len(self.units)):
                self._reduce(k)
        return loss

    def step(self) -> None:
        self.inner.step()  # the shards only
        self._sample()
        if self.level < 3:
            for unit, shard in zip(self.units, self.param_shards, strict=True):
                self.comm.all_gather_(shard, unit.params)
            self._sample()

    def train_step(self, x: Tensor, y: Tensor) -> float:
        before = self.comm.bytes_sent
        self._in_step = True
        try:
            loss = super().train_step(x, y)
        finally:
            self._in_step = False
        if before is not None:
            self.step_bytes.append(self.comm.bytes_sent - before)
        return loss

    # --- what the comparison reads ---------------------------------------------------------------------

    def gathered_parameters(self) -> dict[str, Tensor]:
        """Every parameter in full, copied (stage 3 gathers each unit and frees it again): call in every process."""
        result = {}
        for unit, shard in zip(self.units, self.param_shards, strict=True):
            gathered = not allocated(unit.params)
            if gathered:
                allocate(unit.params)
                self.comm.all_gather_(shard, unit.params)
            result.update({s.name: getattr(s.owner, s.attr).clone() for s in unit.slots})
            if gathered:
                free(unit.params)
        order = list(dict(self.inner.model.named_parameters()))
        return {name: result[name] for name in order}

    def shard_bytes(self) -> dict:
        """The sizes of the layout: values before and after padding, the units, this rank's shard."""
        return dict(numel=sum(u.numel for u in self.units), flat_size=self.flat_size,
                    shard_size=self.flat_size // self.world_size, units=[
                        dict(path=u.path or "(root)", numel=u.numel, size=u.size) for u in self.units],
                    element_size=self.units[0].params.element_size())

    def named_parameters(self) -> dict[str, Tensor]:
        if self.level >= 3:
            raise RuntimeError("stage 3 holds only a shard of each parameter; call gathered_parameters() in every "
                               "process")
        return super().named_parameters()

    def export_state(self) -> TrainingState:
        raise NotImplementedError("a sharded learner's state is spread over the processes; gather it first")


def gather_to_all(value: object) -> list:
    """Every process's `value` (a picklable object), in rank order, in every process."""
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered
