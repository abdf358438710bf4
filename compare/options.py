"""The training options shared by `train` and `grads`: optimizer, regularization, normalization, schedule.

    python -m compare train --optimizer adam --lr 1e-3 --batch-norm --dropout 0.2 --lr-schedule cosine

Each option maps to the same class on both sides: `optimizer_spec` and `schedule_spec`
name a class that exists under that name in scratch/ and in torch_impl/, with the keyword
arguments both take, so the two optimizers cannot be configured differently.
"""

from __future__ import annotations

import argparse

import torch

from compare.config import Config

OPTIMIZER_CHOICES = ["sgd", "momentum", "nesterov", "adam", "adamw"]
LR_SCHEDULE_CHOICES = ["none", "step", "cosine"]
DEFAULT_MOMENTUM = 0.9  # for --optimizer momentum / nesterov
ADAMW_WEIGHT_DECAY = 1e-2  # torch.optim.AdamW's default
# The Config fields these options set (same names as the parsed arguments).
TRAINING_FIELDS = ("optimizer", "momentum", "weight_decay", "dropout", "batch_norm", "lr_schedule", "lr_step_size",
                   "lr_gamma")


def add_training_arguments(p: argparse.ArgumentParser, defaults: Config | None = None) -> None:
    """Add --optimizer, --momentum, --weight-decay, --dropout, --batch-norm and the --lr-schedule options."""
    d = defaults or Config()
    p.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=d.optimizer,
                   help="sgd; sgd with momentum or Nesterov momentum; Adam; AdamW (decoupled weight decay). "
                        f"Adam and AdamW usually want --lr 1e-3 (default: {d.optimizer})")
    p.add_argument("--momentum", type=float, default=None,
                   help=f"momentum of --optimizer momentum or nesterov (default: {DEFAULT_MOMENTUM})")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"weight decay; L2 for sgd/momentum/nesterov/adam, decoupled for adamw "
                        f"(default: 0, or {ADAMW_WEIGHT_DECAY:g} for adamw as torch)")
    p.add_argument("--dropout", type=float, default=d.dropout, metavar="P",
                   help=f"dropout probability after each hidden activation; 0 adds no dropout layer "
                        f"(default: {d.dropout:g})")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=d.batch_norm,
                   help="BatchNorm1d between each hidden Linear layer (then without bias) and its activation "
                        f"(default: {'on' if d.batch_norm else 'off'})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULE_CHOICES, default=d.lr_schedule,
                   help="learning rate per epoch: constant; times --lr-gamma every --lr-step-size epochs; "
                        f"cosine annealing from --lr to 0 over --epochs (default: {d.lr_schedule})")
    p.add_argument("--lr-step-size", type=int, default=None, metavar="EPOCHS",
                   help="epochs between decays of --lr-schedule step (default: a third of --epochs, at least 1)")
    p.add_argument("--lr-gamma", type=float, default=d.lr_gamma,
                   help=f"factor of each decay of --lr-schedule step (default: {d.lr_gamma:g})")


def resolve_training_arguments(args: argparse.Namespace) -> None:
    """Check the options and fill in the defaults that depend on other options (in place)."""
    from compare.cli import UsageError

    uses_momentum = args.optimizer in ("momentum", "nesterov")
    if args.momentum is None:
        args.momentum = DEFAULT_MOMENTUM if uses_momentum else 0.0
    elif not uses_momentum:
        hint = ("Adam's momentum is its first beta, fixed at 0.9 here" if args.optimizer.startswith("adam")
                else "use --optimizer momentum or nesterov")
        raise UsageError(f"--momentum only applies to --optimizer momentum or nesterov, not {args.optimizer}; {hint}")
    elif not 0 < args.momentum < 1:
        raise UsageError(f"--momentum must be between 0 and 1 (exclusive), got {args.momentum}")
    if args.weight_decay is None:
        args.weight_decay = ADAMW_WEIGHT_DECAY if args.optimizer == "adamw" else 0.0
    elif args.weight_decay < 0:
        raise UsageError(f"--weight-decay must be 0 or positive, got {args.weight_decay}")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be a probability in [0, 1), got {args.dropout}")
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.dropout > 0 and cuda:
        raise UsageError("--dropout is compared on the CPU only: torch's CUDA dropout kernel draws its masks "
                         "differently from the scratch layer, so the two networks would drop different neurons; "
                         "use --device cpu")
    if args.batch_norm and args.batch_size < 2:
        raise UsageError("--batch-norm needs --batch-size of at least 2 (a variance over one example is 0)")
    if args.lr_step_size is None:
        args.lr_step_size = max(1, args.epochs // 3)
    elif args.lr_step_size < 1:
        raise UsageError(f"--lr-step-size must be at least 1 epoch, got {args.lr_step_size}")
    if not args.lr_gamma > 0:
        raise UsageError(f"--lr-gamma must be positive, got {args.lr_gamma}")


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
