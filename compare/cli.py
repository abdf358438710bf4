"""Command line: `python -m compare {grads,train} [options]`.

    python -m compare grads --dtype float64          # gradients: scratch vs autograd vs finite differences
    python -m compare train --epochs 10              # both networks learn MNIST in lockstep
    python -m compare autograd --dtype float64       # hand-derived vs the scratch autograd engine vs torch
    python -m compare playground --plots pictures/   # both learn a 2-D spiral; decision boundaries drawn

Every command prints tables, writes `--report PATH` (JSON with `config` and
`agreement.passed`), and exits 0 exactly when the agreement check passed, 1 when it
failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

import torch

from compare.config import Config

ACTIVATION_CHOICES = ["relu", "sigmoid", "tanh", "leaky-relu", "gelu"]
LOSS_CHOICES = ["cross-entropy", "mse"]
DATASET_CHOICES = ["mnist", "fashion-mnist"]


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line naming the problem, not the usage text."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden expects comma-separated integers such as 16,16, got {text!r}")
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive integers, got {text!r}")
    return sizes


def add_common_arguments(p: argparse.ArgumentParser, defaults: Config) -> None:
    p.add_argument("--dataset", choices=DATASET_CHOICES, default=defaults.dataset,
                   help=f"which dataset (default: {defaults.dataset})")
    p.add_argument("--hidden", type=hidden_sizes, default=defaults.hidden,
                   help=f"hidden layer sizes, comma-separated (default: {','.join(map(str, defaults.hidden))})")
    p.add_argument("--activation", choices=ACTIVATION_CHOICES, default=defaults.activation,
                   help=f"activation function of the hidden layers (default: {defaults.activation})")
    p.add_argument("--loss", choices=LOSS_CHOICES, default=defaults.loss,
                   help=f"loss function; mse compares outputs with one-hot 0/1 targets (default: {defaults.loss})")
    p.add_argument("--epochs", type=int, default=defaults.epochs,
                   help=f"passes over the training set (default: {defaults.epochs})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"images per gradient step (default: {defaults.batch_size})")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"learning rate (default: {defaults.lr})")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help=f"seed of the initial weights and the batch order (default: {defaults.seed})")
    p.add_argument("--dtype", choices=["float32", "float64"], default=defaults.dtype,
                   help=f"floating-point precision of both networks (default: {defaults.dtype})")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where to compute; auto picks cuda when a GPU is available (default: cpu)")
    p.add_argument("--data-root", default=None,
                   help="folder holding mnist/ and fashion-mnist/ with the IDX files "
                        "(default: $MNIST_DATA_ROOT, else ./data)")
    p.add_argument("--report", default=None, metavar="PATH", help="write a JSON report here (default: none)")


def validate(args: argparse.Namespace) -> None:
    if args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not args.lr > 0:
        raise UsageError(f"--lr must be a positive learning rate, got {args.lr}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA GPU is available here; use --device cpu or auto")
    if hasattr(args, "optimizer"):  # the command took compare/options.py's training options
        from compare.options import resolve_training_arguments

        resolve_training_arguments(args)


def make_config(args: argparse.Namespace, extra_keys: tuple[str, ...] = ()) -> Config:
    from compare.data import default_data_root
    from compare.options import TRAINING_FIELDS

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Config(dataset=args.dataset, hidden=tuple(args.hidden), activation=args.activation, loss=args.loss,
                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, dtype=args.dtype,
                  device=device, data_root=str(args.data_root or default_data_root()), report=args.report,
                  extra={k: getattr(args, k) for k in extra_keys},
                  **{k: getattr(args, k) for k in TRAINING_FIELDS if hasattr(args, k)})


def load_data(config: Config):
    from compare.data import load_dataset

    return load_dataset(config.dataset, config.data_root, dtype=config.torch_dtype, device=config.device)


def command_table() -> dict[str, tuple[str, ModuleType]]:
    """Each command is a module with `run(config, data) -> report dict`, and optionally
    `add_arguments(parser)` for its own options, `CONFIG_KEYS` (those options' names, recorded
    in the report's config), `NEEDS_DATA = False` (then `data` is None) and `DEFAULTS` (a Config
    whose values become the common options' defaults)."""
    from compare import autograd, bench, grads, playground, train
    from compare.commands import check

    return {
        "grads": ("one batch: scratch gradients vs torch.autograd vs finite differences", grads),
        "train": ("train both networks in lockstep and compare them", train),
        "playground": ("TensorFlow-Playground-like lab: both networks learn a 2-D toy dataset", playground),
        "bench": ("time a training step and an epoch: scratch vs torch eager, torch.compile, a DataLoader "
                  "pipeline; fraction of the matmul peak; memory", bench),
        "autograd": ("one batch: hand-derived backprop vs the scratch autograd engine vs torch.autograd; "
                     "the engine's computation graph", autograd),
        "check": ("check a hand-written backward (TARGET package.module:Name) against torch.autograd and finite "
                  "differences; --mutants proves the checker on deliberately wrong ones", check),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, module) in command_table().items():
        # conflict_handler="resolve": a command may replace a common option (playground's --dataset).
        p = sub.add_parser(name, help=help_text, description=help_text, conflict_handler="resolve")
        add_common_arguments(p, getattr(module, "DEFAULTS", None) or Config(epochs=3 if name == "train" else 1))
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from compare.data import DataError
    from compare.report import write_report

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        module = command_table()[args.command][1]
        validate(args)
        config = make_config(args, getattr(module, "CONFIG_KEYS", ()))
        data = load_data(config) if getattr(module, "NEEDS_DATA", True) else None
        report = module.run(config, data)
    except (UsageError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report = {"command": args.command, "config": config.to_dict(), **report}
    if config.report:
        write_report(config.report, report)
        print(f"Report written to {config.report}")
    return 0 if report["agreement"]["passed"] else 1
