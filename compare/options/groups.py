"""The command line's option groups: each command takes exactly the groups it uses.

    python -m compare train --optimizer adam --lr 1e-3 --batch-norm --dropout 0.2 --lr-schedule cosine

A group adds its options to a command's parser and, after parsing, checks them and fills in
the defaults that depend on other options (`resolve`). Every help text states its default.
Parsing only: what a Config's optimizer and schedule become on each side is the training core's
(compare/training/optimizers.py), which also holds the names --optimizer and --lr-schedule offer.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compare import models
from compare.base import argtypes
from compare.base.errors import UsageError
from compare.data.mnist import DATASETS, default_data_root
from compare.distributed.group import launched
from compare.distributed.launch import world_size
from compare.training.config import Config
from compare.training.optimizers import LR_SCHEDULE_CHOICES, OPTIMIZER_CHOICES

LOSS_CHOICES = ["cross-entropy", "mse"]
DEFAULT_MOMENTUM = 0.9  # for --optimizer momentum / nesterov
ADAMW_WEIGHT_DECAY = 1e-2  # torch.optim.AdamW's default


BASE = Config()  # the defaults of the settings a command does not override


class Defaults:
    """A command's own defaults (a mapping of Config field names) over BASE's: `d.epochs`."""

    def __init__(self, overrides: Mapping[str, Any]) -> None:
        self.overrides = dict(overrides)

    def __getattr__(self, name: str) -> Any:
        return self.overrides[name] if name in self.overrides else getattr(BASE, name)

    def given(self, name: str) -> Any:
        """The command's own default, or None (then the model family's default applies)."""
        return self.overrides.get(name)


@dataclass(frozen=True)
class OptionGroup:
    name: str
    add: Callable[[argparse.ArgumentParser, Defaults], None]  # (parser, the command's defaults)
    resolve: Callable[[argparse.Namespace], None] = lambda args: None  # check, fill dependent defaults (in place)


# --- data ----------------------------------------------------------------------------------------

def _add_data(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--dataset", choices=list(DATASETS), default=d.dataset, help=f"which dataset (default: {d.dataset})")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding mnist/ and fashion-mnist/ with the IDX files (default: $MNIST_DATA_ROOT, "
                        "else ./data)")


DATA = OptionGroup("data", _add_data)


# --- the model -----------------------------------------------------------------------------------

def _resolve_model(args: argparse.Namespace) -> None:
    """The spec; then what depends on other groups' options too (resolved before this one)."""
    args.model_spec = spec = models.spec_from_args(args, args.model_defaults)
    if spec.get("dropout", 0.0) > 0 and vars(args).get("device") == "cuda":
        raise UsageError("--dropout is compared on the CPU only: torch's CUDA dropout kernel draws its masks "
                         "differently from the scratch layer, so the two networks would drop different neurons; "
                         "use --device cpu")
    if spec.get("batch_norm") and vars(args).get("batch_size", 2) < 2:
        raise UsageError("--batch-norm needs --batch-size of at least 2 (a variance over one example is 0)")


def _add_model(p: argparse.ArgumentParser, d: Defaults) -> None:
    models.add_model_options(p, d.model)
    p.set_defaults(model_defaults=d.model)


MODEL = OptionGroup("model", _add_model, _resolve_model)


def _add_loss(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--loss", choices=LOSS_CHOICES, default=d.loss,
                   help=f"loss function; mse compares outputs with one-hot 0/1 targets (default: {d.loss})")


LOSS = OptionGroup("loss", _add_loss)


# --- batches, epochs, optimizer ------------------------------------------------------------------

def _add_batch(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--batch-size", type=argtypes.positive_int, default=d.given("batch_size"),
                   help=f"images per gradient step (default: {_default_text(d, 'batch_size')})")


def _default_text(d: Defaults, key: str) -> str:
    """The command's own default, or the model families' (which one applies depends on --model)."""
    if d.given(key) is not None:
        return str(d.given(key))

    def show(value: object) -> str:
        return ", ".join(f"{k} {v:g}" for k, v in value.items()) if isinstance(value, Mapping) else str(value)

    return "the family's: " + "; ".join(f"{name}: {show(getattr(f.training, key))}"
                                        for name, f in models.FAMILIES.items())


def _resolve_batch(args: argparse.Namespace) -> None:
    if args.batch_size is None:
        args.batch_size = models.family_of(args.model).training.batch_size


BATCH = OptionGroup("batch", _add_batch, _resolve_batch)


def _add_epochs(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--epochs", type=argtypes.positive_int, default=d.epochs,
                   help=f"passes over the training set (default: {d.epochs})")


EPOCHS = OptionGroup("epochs", _add_epochs)


def _add_optimizer(p: argparse.ArgumentParser, d: Defaults) -> None:
    g = p.add_argument_group("optimization")
    g.add_argument("--lr", type=float, default=d.given("lr"),
                   help=f"learning rate (default: {_default_text(d, 'lr')}, by --optimizer)")
    g.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=d.given("optimizer"),
                   help="sgd; sgd with momentum or Nesterov momentum; Adam; AdamW (decoupled weight decay). "
                        f"Adam and AdamW usually want --lr 1e-3 (default: {_default_text(d, 'optimizer')})")
    g.add_argument("--momentum", type=float, default=None,
                   help=f"momentum of --optimizer momentum or nesterov (default: {DEFAULT_MOMENTUM})")
    g.add_argument("--weight-decay", type=float, default=None,
                   help=f"weight decay; L2 for sgd/momentum/nesterov/adam, decoupled for adamw "
                        f"(default: 0, or {ADAMW_WEIGHT_DECAY:g} for adamw as torch)")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULE_CHOICES, default=d.given("lr_schedule"),
                   help="learning rate per epoch: constant; times --lr-gamma every --lr-step-size epochs; "
                        f"cosine annealing from --lr to 0 over --epochs (default: {_default_text(d, 'lr_schedule')})")
    g.add_argument("--lr-step-size", type=int, default=None, metavar="EPOCHS",
                   help="epochs between decays of --lr-schedule step (default: a third of --epochs, at least 1)")
    g.add_argument("--lr-gamma", type=float, default=d.lr_gamma,
                   help=f"factor of each decay of --lr-schedule step (default: {d.lr_gamma:g})")


def _resolve_optimizer(args: argparse.Namespace) -> None:
    training = models.family_of(args.model).training
    if args.optimizer is None:
        args.optimizer = training.optimizer
    if args.lr is None:
        args.lr = training.lr[args.optimizer]
    if not args.lr > 0:
        raise UsageError(f"--lr must be a positive learning rate, got {args.lr}")
    dtype = vars(args).get("dtype", BASE.dtype)
    largest = torch.finfo({"float32": torch.float32, "float64": torch.float64}[dtype]).max
    if math.isfinite(args.lr) and args.lr > largest:  # inf itself is a float32 value: the run diverges at once
        raise UsageError(f"--lr {args.lr:g} is larger than any {dtype} number (at most {largest:.3g}); "
                         "choose a smaller --lr")
    if args.lr_schedule is None:
        args.lr_schedule = training.lr_schedule
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
    if args.lr_step_size is None:
        args.lr_step_size = max(1, vars(args).get("epochs", 1) // 3)
    elif args.lr_step_size < 1:
        raise UsageError(f"--lr-step-size must be at least 1 epoch, got {args.lr_step_size}")
    if not args.lr_gamma > 0:
        raise UsageError(f"--lr-gamma must be positive, got {args.lr_gamma}")


OPTIMIZER = OptionGroup("optimizer", _add_optimizer, _resolve_optimizer)


def _add_regularization(p: argparse.ArgumentParser, d: Defaults) -> None:
    g = p.add_argument_group("regularization", "penalties on the weights (not biases or norm scales), added to the "
                             "loss: scratch adds their gradient by hand, torch differentiates them with autograd")
    g.add_argument("--l1", type=float, default=d.l1, metavar="RATE",
                   help=f"L1 penalty RATE * sum|w|, gradient RATE * sign(w) (default: {d.l1:g})")
    g.add_argument("--l2", type=float, default=d.l2, metavar="RATE",
                   help=f"L2 penalty RATE/2 * sum w^2, gradient RATE * w; unlike --weight-decay it is part of the "
                        f"loss, spares the biases and goes through Adam's moments (default: {d.l2:g})")


def _resolve_regularization(args: argparse.Namespace) -> None:
    for name in ("l1", "l2"):
        rate = getattr(args, name)
        if not (math.isfinite(rate) and rate >= 0):
            raise UsageError(f"--{name} must be a finite rate of 0 or more, got {rate}; e.g. --{name} 1e-4")


REGULARIZATION = OptionGroup("regularization", _add_regularization, _resolve_regularization)


# --- seed, precision, device, report ---------------------------------------------------------------

def _add_seed(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--seed", type=argtypes.seed, default=d.seed,
                   help=f"seed of the initial weights and the batch order (default: {d.seed})")


SEED = OptionGroup("seed", _add_seed)


def _add_dtype(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype,
                   help=f"floating-point precision of both networks (default: {d.dtype})")


DTYPE = OptionGroup("dtype", _add_dtype)


def _add_device(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where to compute; auto picks cuda when a GPU is available (default: cpu)")


def _resolve_device(args: argparse.Namespace) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA GPU is available here; use --device cpu or auto")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"


DEVICE = OptionGroup("device", _add_device, _resolve_device)


def _add_report(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--report", default=None, metavar="PATH", help="write a JSON report here (default: none)")


def _resolve_report(args: argparse.Namespace) -> None:
    if args.report:
        check_output_path(args.report, "--report", folder=False)


REPORT = OptionGroup("report", _add_report, _resolve_report)
RUN = (SEED, DTYPE, DEVICE, REPORT)  # what almost every command takes


def _add_plots(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write PNG pictures of the run into DIR (default: none; plots need matplotlib: "
                        "pip install -e '.[plots]')")


def _resolve_plots(args: argparse.Namespace) -> None:
    if args.plots:
        check_output_path(args.plots, "--plots", folder=True)


PLOTS = OptionGroup("plots", _add_plots, _resolve_plots)


def _add_divergence(p: argparse.ArgumentParser, d: Defaults) -> None:
    p.add_argument("--fail-on-divergence", action="store_true",
                   help="exit with status 1 when the training diverged (a loss became inf or NaN), even though the "
                        "implementations agree; for scripts (default: off: such a run exits 0, the implementations "
                        "being right)")


DIVERGENCE = OptionGroup("divergence", _add_divergence)  # for the commands that train


# --- processes of a distributed run (ddp, tp) ------------------------------------------------------

def _add_processes(p: argparse.ArgumentParser, d: Defaults) -> None:
    g = p.add_argument_group("processes")
    g.add_argument("--nproc", type=argtypes.positive_int, default=None, metavar="N",
                   help="start N processes on this machine (127.0.0.1); leave it out under torchrun, which starts "
                        "them itself (default: 1, or torchrun's --nproc-per-node)")
    g.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto",
                   help="torch.distributed backend: gloo for CPU tensors, nccl for GPU tensors (one GPU per "
                        "process); auto: nccl with --device cuda, else gloo (default: auto)")
    g.add_argument("--port", type=int, default=0,
                   help="with --nproc: the TCP port rank 0 listens on; 0 picks a free one (default: 0)")
    g.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long a process waits to join the group, and in each collective operation, before "
                        "it gives up with an error (default: 60)")
    g.add_argument("--run-timeout", type=float, default=None, metavar="SECONDS",
                   help="with --nproc: stop every process when the whole run takes longer (default: no limit; "
                        "--timeout already ends a run whose processes stop answering)")
    g.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                   help="rank 0 also trains the scratch network in one process on whole batches, to compare "
                        "with; --no-reference for timings of the distributed runs alone (default: on)")


def _resolve_processes(args: argparse.Namespace) -> None:
    if launched() and args.nproc is not None:
        raise UsageError("--nproc is for starting the processes here; under torchrun leave it out (torchrun's "
                         "--nproc-per-node says how many)")
    if not args.timeout > 0 or (args.run_timeout is not None and not args.run_timeout > 0):
        raise UsageError("--timeout and --run-timeout must be positive numbers of seconds")
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    device = vars(args).get("device", "cpu")
    if args.backend == "nccl" and device != "cuda":
        raise UsageError("--backend nccl moves GPU tensors only; add --device cuda, or use --backend gloo")
    n = world_size(args.nproc)
    if device == "cuda" and n > torch.cuda.device_count():
        raise UsageError(f"{n} processes need {n} GPUs (one each), but {torch.cuda.device_count()} are visible")


PROCESSES = OptionGroup("processes", _add_processes, _resolve_processes)
PROCESS_KEYS = ("nproc", "backend", "port", "timeout", "run_timeout", "reference")  # their Config.extra keys


def check_output_path(path: str, option: str, *, folder: bool) -> None:
    """Refuse, before any work, an output path that cannot be written: a file where a folder must be, or
    the reverse, or a file on the way (a parent that is a file)."""
    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        what = "a folder" if folder else "a file"
        raise UsageError(f"{option} {path}: exists and is not {what}; give {what} path")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {path}: {parent} is a file, not a folder; choose another path")
            break


# Groups resolve in this order, whichever order a command lists them in: later ones read earlier ones
# (the model's checks read the device and batch size; the optimizer's defaults read the family).
RESOLUTION_ORDER = (DATA, SEED, DTYPE, DEVICE, PROCESSES, REPORT, LOSS, BATCH, EPOCHS, OPTIMIZER, REGULARIZATION, PLOTS,
                    DIVERGENCE, MODEL)


def make_config(args: argparse.Namespace, extra_keys: tuple[str, ...] = ()) -> Config:
    """The Config of a parsed, resolved command line: the fields its groups set, the rest at their defaults."""
    values = {name: value for name, value in vars(args).items() if name in Config.field_names()}
    values.pop("model", None)
    values.pop("extra", None)
    if "data_root" in values:
        values["data_root"] = str(values["data_root"] or default_data_root())
    config = Config(**values, extra={k: getattr(args, k) for k in extra_keys})
    if vars(args).get("model_spec") is not None:
        config.model = args.model_spec
    return config
