"""The one training loop and the one evaluation loop, shared by every implementation.

`train_lockstep` feeds the same batches, in the same order, to each learner in turn,
so the only difference between the runs is the implementation itself.

Vocabulary: a batch is `batch_size` images whose mean loss gives one gradient step; an
epoch is one pass over all training images, cut into batches in a fresh random order.
Training has reached convergence when further epochs no longer lower the loss: watch
the per-epoch train and test losses that `compare train` prints (the test loss turning
upwards while the train loss keeps falling is overfitting, which regularization fights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from compare.base.errors import InterruptedRunError
from compare.training.learners import Learner
from compare.training.metrics import accuracy


@dataclass
class EpochStats:
    epoch: int
    train_loss: float  # mean of this epoch's per-step (per-batch) losses
    test_loss: float
    test_accuracy: float  # fraction 0..1
    learning_rate: float | None = None  # the learning rate of this epoch's steps (None if not known)

    def to_dict(self) -> dict:
        return dict(epoch=self.epoch, train_loss=self.train_loss, test_loss=self.test_loss,
                    test_accuracy=self.test_accuracy, learning_rate=self.learning_rate)


@dataclass
class RunRecord:
    step_losses: list[float] = field(default_factory=list)
    history: list[EpochStats] = field(default_factory=list)
    predictions: Tensor | None = None  # test-set predictions after the last epoch
    diverged_at: int | None = None  # the global step (1-based) whose loss became inf or NaN, if any

# A hook called before each step, with (epoch, step in the epoch, global step, batch x, batch y, the records so
# far): the re-synchronized checks (compare/training/resync.py) run from here.
BeforeStep = Callable[[int, int, int, Tensor, Tensor, dict[str, RunRecord]], None]


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """One epoch's mini-batches: a random permutation of 0..n-1 cut into pieces (the last may be smaller)."""
    return list(torch.randperm(n, generator=generator).split(batch_size))


def first_batch(x: Tensor, y: Tensor, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """The first mini-batch that `train_lockstep` uses with this seed."""
    index = batches(len(x), batch_size, torch.Generator().manual_seed(seed))[0]
    return x[index.to(x.device)], y[index.to(y.device)]


@torch.no_grad()
def evaluate(learner: Learner, x: Tensor, y: Tensor, batch_size: int = 5000) -> tuple[float, Tensor]:
    """Mean loss and predicted classes on (x, y), in evaluation mode."""
    total, predictions = 0.0, []
    for start in range(0, len(x), batch_size):
        logits = learner.logits(x[start:start + batch_size])
        total += learner.loss_value(logits, y[start:start + batch_size]).item() * len(logits)
        predictions.append(logits.argmax(dim=1))
    return total / len(x), torch.cat(predictions)


def train_lockstep(
    learners: Sequence[Learner],
    x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor,
    *, epochs: int, batch_size: int, seed: int,
    on_epoch: Callable[[int, dict[str, EpochStats]], None] | None = None,
    before_step: BeforeStep | None = None,
    after_step: Callable[[int], None] | None = None,
    progress: bool = True,
) -> dict[str, RunRecord]:
    """Train every learner on identical batches; returns per-step losses and per-epoch stats of each.

    A loss that becomes inf or NaN ends the run after that step (every learner still takes it, so the
    records say whether the others diverged at the same step), with the epoch's statistics as they are.
    """
    order = torch.Generator().manual_seed(seed)  # one batch order for all, drawn on the CPU
    records = {learner.name: RunRecord() for learner in learners}
    epoch, step = 1, 0
    try:
        for epoch in range(1, epochs + 1):
            epoch_batches = batches(len(x_train), batch_size, order)
            start = {name: len(r.step_losses) for name, r in records.items()}
            bar = tqdm(epoch_batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                       disable=None if progress else True,  # None: shown on a terminal, not in logs
                       dynamic_ncols=True)
            diverged = False
            for step, index in enumerate(bar, start=1):
                index = index.to(x_train.device)
                xb, yb = x_train[index], y_train[index]
                if before_step is not None:
                    before_step(epoch, step, len(records[learners[0].name].step_losses) + 1, xb, yb, records)
                for learner in learners:
                    record = records[learner.name]
                    loss = learner.train_step(xb, yb)
                    record.step_losses.append(loss)
                    if not math.isfinite(loss) and record.diverged_at is None:
                        record.diverged_at, diverged = len(record.step_losses), True
                if after_step is not None:  # every learner has taken this step (training diagnostics)
                    after_step(len(records[learners[0].name].step_losses))
                if diverged:
                    break
                if step % 50 == 1:
                    bar.set_postfix({n: f"{r.step_losses[-1]:.4f}" for n, r in records.items()})
            epoch_lr = {learner.name: learner.learning_rate() for learner in learners}
            for learner in learners:
                learner.end_epoch()  # the learning-rate schedule moves on once per epoch, as in torch
            stats = {}
            for learner in learners:
                record = records[learner.name]
                test_loss, predictions = evaluate(learner, x_test, y_test)
                epoch_losses = record.step_losses[start[learner.name]:]
                stats[learner.name] = EpochStats(epoch, sum(epoch_losses) / len(epoch_losses), test_loss,
                                                 accuracy(predictions, y_test),
                                                 epoch_lr[learner.name])
                record.history.append(stats[learner.name])
                record.predictions = predictions
            if on_epoch is not None:
                on_epoch(epoch, stats)
            if diverged:
                break
    except KeyboardInterrupt:
        raise InterruptedRunError(f"interrupted at epoch {epoch} of {epochs}, step {step} of "
                          f"{math.ceil(len(x_train) / batch_size)}; nothing was written") from None
    return records
