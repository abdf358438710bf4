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


class Lockstep:
    """The one training loop, an epoch at a time: every learner takes the same batches, in the same order.

        >>> run = Lockstep(learners, x_train, y_train, x_test, y_test, batch_size=32, seed=0)
        >>> stats, diverged = run.epoch()        # one pass over the training set; then evaluation on the test set

    `train_lockstep` runs it for a number of epochs; the live playground (compare/web/) runs one epoch per
    update, for as long as a page asks. `records` holds each learner's per-step losses and per-epoch statistics
    (a caller that runs without end may empty them between epochs).
    """

    def __init__(self, learners: Sequence[Learner], x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor,
                 *, batch_size: int, seed: int, before_step: BeforeStep | None = None,
                 after_step: Callable[[int], None] | None = None) -> None:
        self.learners, self.batch_size = list(learners), batch_size
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.before_step, self.after_step = before_step, after_step
        self.order = torch.Generator().manual_seed(seed)  # one batch order for all, drawn on the CPU
        self.records = {learner.name: RunRecord() for learner in learners}
        self.epochs_done, self.steps_done, self.step_in_epoch = 0, 0, 0

    def epoch(self, of: int | None = None, progress: bool = False) -> tuple[dict[str, EpochStats], bool]:
        """One epoch of steps, the schedule's step, then each learner's test loss and accuracy: (statistics by
        learner name, whether a loss became inf or NaN). `of`: the run's number of epochs, for the progress bar."""
        records, learners = self.records, self.learners
        epoch = self.epochs_done + 1
        epoch_batches = batches(len(self.x_train), self.batch_size, self.order)
        start = {name: len(r.step_losses) for name, r in records.items()}
        bar = tqdm(epoch_batches, desc=f"epoch {epoch}/{of or '?'}", unit="batch", leave=False,
                   disable=None if progress else True,  # None: shown on a terminal, not in logs
                   dynamic_ncols=True)
        diverged = False
        for step, index in enumerate(bar, start=1):
            self.step_in_epoch = step
            index = index.to(self.x_train.device)
            xb, yb = self.x_train[index], self.y_train[index]
            self.steps_done += 1
            if self.before_step is not None:
                self.before_step(epoch, step, self.steps_done, xb, yb, records)
            for learner in learners:
                record = records[learner.name]
                loss = learner.train_step(xb, yb)
                record.step_losses.append(loss)
                if not math.isfinite(loss) and record.diverged_at is None:
                    record.diverged_at, diverged = self.steps_done, True
            if self.after_step is not None:  # every learner has taken this step (training diagnostics)
                self.after_step(self.steps_done)
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
            test_loss, predictions = evaluate(learner, self.x_test, self.y_test)
            epoch_losses = record.step_losses[start[learner.name]:]
            stats[learner.name] = EpochStats(epoch, sum(epoch_losses) / len(epoch_losses), test_loss,
                                             accuracy(predictions, self.y_test), epoch_lr[learner.name])
            record.history.append(stats[learner.name])
            record.predictions = predictions
        self.epochs_done = epoch
        return stats, diverged


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
    run = Lockstep(learners, x_train, y_train, x_test, y_test, batch_size=batch_size, seed=seed,
                   before_step=before_step, after_step=after_step)
    epoch = 1
    try:
        for epoch in range(1, epochs + 1):
            stats, diverged = run.epoch(of=epochs, progress=progress)
            if on_epoch is not None:
                on_epoch(epoch, stats)
            if diverged:
                break
    except KeyboardInterrupt:
        raise InterruptedRunError(f"interrupted at epoch {epoch} of {epochs}, step {run.step_in_epoch} "
                                  f"of {math.ceil(len(x_train) / batch_size)}; nothing was written") from None
    return run.records
