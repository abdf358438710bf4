"""What a command of `python -m compare` is: one record. compare/cli.py builds the parser from these.

    COMMAND = Command(name="grads", help="...", run=run, groups=(DATA, MODEL, ...), add_arguments=add_arguments)

A command takes the option groups it uses (compare/options/groups.py) and adds its own options;
`run(config, data)` returns the report: a dict with at least {"agreement": {"passed": bool}}.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compare.data.mnist import Dataset
from compare.options.groups import OptionGroup
from compare.training.config import Config


def _nothing(parser_or_args: object) -> None:
    return None


@dataclass(frozen=True)
class Command:
    name: str  # python -m compare NAME
    help: str  # one line for --help
    run: Callable[[Config, Dataset | None], dict]  # (config, the dataset or None) -> the report
    groups: tuple[OptionGroup, ...] = ()  # the shared option groups it takes
    add_arguments: Callable[[argparse.ArgumentParser], None] = _nothing  # its own options
    config_keys: tuple[str, ...] = ()  # the dests of its own options, recorded in the report's config
    needs_data: bool = True  # whether `run` gets the dataset named by --dataset (else None)
    # Its own defaults of shared options, by Config field name ({"epochs": 3}); the others are Config's, or
    # the model family's where the family has one (--lr, --batch-size, --lr-schedule).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[argparse.Namespace], None] = _nothing  # checks its own options before any work
