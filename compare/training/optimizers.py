"""The optimizer and the learning-rate schedule a Config names, as the same class on both sides.

    >>> optimizer_spec(Config(optimizer="nesterov", lr=0.05, momentum=0.9))
    ('SGD', {'lr': 0.05, 'momentum': 0.9, 'nesterov': True, 'weight_decay': 0.0})

`optimizer_spec` and `schedule_spec` name a class that exists under that name in scratch/ and in
torch_impl/ (scratch.optim.SGD and torch_impl.optim.SGD, ...), with the keyword arguments both take,
so the two optimizers cannot be configured differently. The learners (compare/training/learners.py)
build both sides from these; the command line only fills in the Config (compare/options/groups.py).
"""

from __future__ import annotations

from compare.base.report import plural
from compare.training.config import Config

OPTIMIZER_CHOICES = ["sgd", "momentum", "nesterov", "adam", "adamw"]
LR_SCHEDULE_CHOICES = ["none", "step", "cosine"]


def optimizer_spec(config: Config) -> tuple[str, dict]:
    """(class name in scratch.optim and torch_impl.optim, keyword arguments) for config.optimizer."""
    lr, wd = config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return "SGD", dict(lr=lr, weight_decay=wd)
    if config.optimizer in ("momentum", "nesterov"):
        return "SGD", dict(lr=lr, momentum=config.momentum, nesterov=config.optimizer == "nesterov", weight_decay=wd)
    if config.optimizer == "adam":
        return "Adam", dict(lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return "AdamW", dict(lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZER_CHOICES)}")


def schedule_spec(config: Config) -> tuple[str, dict] | None:
    """(class name in scratch.lr_scheduler and torch_impl.lr_scheduler, keyword arguments), or None."""
    if config.lr_schedule == "none":
        return None
    if config.lr_schedule == "step":
        return "StepLR", dict(step_size=config.lr_step_size, gamma=config.lr_gamma)
    if config.lr_schedule == "cosine":
        return "CosineAnnealingLR", dict(T_max=config.epochs)
    raise ValueError(f"unknown learning-rate schedule {config.lr_schedule!r}; choose one of "
                     f"{', '.join(LR_SCHEDULE_CHOICES)}")


def describe_training(config: Config) -> str:
    """The optimizer and schedule in one line, for a run's header."""
    parts = [f"{config.optimizer} (lr {config.lr:g}"
             + (f", momentum {config.momentum:g}" if config.optimizer in ("momentum", "nesterov") else "")
             + (f", weight decay {config.weight_decay:g}" if config.weight_decay else "") + ")"]
    parts += [f"{name} penalty {rate:g}" for name, rate in (("L1", config.l1), ("L2", config.l2)) if rate]
    if config.lr_schedule == "step":
        parts.append(f"lr x {config.lr_gamma:g} every {config.lr_step_size} epochs")
    elif config.lr_schedule == "cosine":
        parts.append(f"cosine lr schedule over {plural(config.epochs, 'epoch')}")
    return ", ".join(parts)
