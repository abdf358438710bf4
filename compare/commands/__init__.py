"""The commands of `python -m compare`: one module (or package) each, over the core of compare/.

Each module defines `COMMAND`, a `compare.options.command.Command` record; this table is the only list of
them. A command never imports another command: what two share lives in the core.
"""

from __future__ import annotations

from compare.commands import autograd, bench, check, ddp, evaluate, grads, playground, serve, tp, train
from compare.options.command import Command

COMMANDS: dict[str, Command] = {c.name: c for c in (grads.COMMAND, train.COMMAND, evaluate.COMMAND,
                                                     autograd.COMMAND, check.COMMAND, bench.COMMAND,
                                                     playground.COMMAND, ddp.COMMAND, tp.COMMAND,
                                                     serve.COMMAND)}
