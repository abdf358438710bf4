"""Command line: `python -m compare COMMAND [options]`; `python -m compare COMMAND --help` for each.

    python -m compare grads --dtype float64          # gradients: scratch vs autograd vs finite differences
    python -m compare train --epochs 10              # both networks learn MNIST in lockstep
    python -m compare train --batch-norm --save runs/bn && python -m compare evaluate --checkpoint runs/bn
    python -m compare autograd --dtype float64       # hand-derived vs the scratch autograd engine vs torch
    python -m compare bench --quick                  # time a training step of each against the other
    python -m compare playground --plots pictures/   # both learn a 2-D spiral; decision boundaries drawn

Every command prints tables, writes `--report PATH` (JSON with `config` and
`agreement.passed`), and exits 0 exactly when the agreement check passed (and, where a report
has one, its `plausibility` check: bench's figures within the run's measured limits), 1 when it
failed, 2 on bad input, 3 when a process of a distributed run (`ddp`, `tp`) failed, 130 when
interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

from compare import models
from compare.base.errors import CheckpointError, DataError, DistributedError, InterruptedRunError, UsageError
from compare.base.report import write_report
from compare.commands import COMMANDS
from compare.data.mnist import load_dataset
from compare.options.command import Command
from compare.options.groups import RESOLUTION_ORDER, Defaults, make_config

EXIT_FAILED, EXIT_USAGE, EXIT_DISTRIBUTED, EXIT_INTERRUPTED = 1, 2, 3, 130
INTERRUPTED = "interrupted (Ctrl-C)"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line naming the problem, not the usage text."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def epilog() -> str:
    lines = ["model families (--model NAME; each command's --help lists their options):"]
    lines += [f"  {name:<12}{family.summary}" for name, family in models.FAMILIES.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m compare", description=__doc__.split("\n\n")[0], epilog=epilog(),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        for group in command.groups:
            group.add(p, Defaults(command.defaults))
        command.add_arguments(p)
    return parser


def resolve(command: Command, args: argparse.Namespace) -> None:
    """Check every option and fill the defaults that depend on others, in the groups' fixed order."""
    for group in RESOLUTION_ORDER:
        if group in command.groups:
            group.resolve(args)
    command.check(args)


def execute(command: Command, args: argparse.Namespace) -> dict:
    """Run a command; a Ctrl-C is an InterruptedRunError that says at which step it came (the training loop
    says which epoch and batch itself)."""
    where = "while checking the options; nothing was run"
    try:
        resolve(command, args)
        config = make_config(args, command.config_keys)
        data = None
        if command.needs_data:
            where = "while loading the data, before training; nothing was written"
            data = load_dataset(config.dataset, config.data_root, dtype=config.torch_dtype, device=config.device)
        where = f"while `{command.name}` ran"
        report = command.run(config, data)
        report = {"command": command.name, "config": config.to_dict(), **report}
        if config.report:
            where = f"while writing the report {config.report}"
            write_report(config.report, report)
            print(f"Report written to {config.report}")
    except KeyboardInterrupt:
        raise InterruptedRunError(f"{INTERRUPTED} {where}") from None
    return report


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0), or a bad option already printed as one line (2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"stopped: {INTERRUPTED} while reading the command line; nothing was run", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        report = execute(COMMANDS[args.command], args)
    except (UsageError, DataError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DistributedError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DISTRIBUTED
    except (InterruptedRunError, KeyboardInterrupt) as error:
        # `error or ...` would not do: an exception is true even when its text is empty
        print(f"stopped: {str(error) or INTERRUPTED}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("error: out of memory: the network or batch asked for is too large for this machine; "
              "choose smaller sizes (--hidden, --batch-size)", file=sys.stderr)
        return EXIT_USAGE
    passed = report["agreement"]["passed"] and report.get("plausibility", {}).get("passed", True)
    return 0 if passed else EXIT_FAILED
