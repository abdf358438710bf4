"""Learning-rate schedules written by hand: change an optimizer's `lr` once per epoch.

    >>> opt = SGD(model.parameters(), model.gradients(), lr=0.1)
    >>> schedule = CosineAnnealingLR(opt, T_max=10)
    >>> for epoch in range(10):
    ...     train_one_epoch(); schedule.step()      # after the epoch's optimizer steps

Both mirror PyTorch's `optim.lr_scheduler`: the closed form in each docstring is what the
schedule means; the code applies torch's step-by-step (recursive) form, the same float
operations in the same order, so the learning rates agree to the last bit.
"""

from __future__ import annotations

import math

from scratch.optim import Optimizer


class LRScheduler:
    """Counts epochs in `last_epoch` and writes the new learning rate into `optimizer.lr` on `step()`."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.next_lr(self.optimizer.lr)

    def next_lr(self, lr: float) -> float:
        raise NotImplementedError


class StepLR(LRScheduler):
    """Step decay: multiply the learning rate by gamma every step_size epochs (torch's StepLR).

    closed form:  lr_e = base_lr * gamma ** floor(e / step_size)
    recursive:    lr_e = lr_{e-1} * gamma  if e is a multiple of step_size, else lr_{e-1}
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"StepLR needs step_size >= 1 epoch, got {step_size}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def next_lr(self, lr: float) -> float:
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from base_lr down to eta_min over T_max epochs (torch's CosineAnnealingLR).

    closed form:  lr_e = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2
    recursive:    lr_e = eta_min + (lr_{e-1} - eta_min) * (1 + cos(pi e / T_max)) / (1 + cos(pi (e-1) / T_max))
    Past T_max the cosine climbs back up (torch's rule, kept so the two never part ways).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803 (torch's name)
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR needs T_max >= 1 epoch, got {T_max}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def next_lr(self, lr: float) -> float:
        e, t_max = self.last_epoch, self.T_max
        if (e - 1 - t_max) % (2 * t_max) == 0:
            # At the bottom the recursive ratio would divide by 1 + cos(pi) = 0: torch adds the step instead.
            return lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        ratio = (1 + math.cos(math.pi * e / t_max)) / (1 + math.cos(math.pi * (e - 1) / t_max))
        return ratio * (lr - self.eta_min) + self.eta_min
