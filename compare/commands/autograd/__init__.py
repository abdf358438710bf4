"""`python -m compare autograd`: one batch of real data, the scratch autograd engine's derivatives against torch's.

    python -m compare autograd --dtype float64                      # the lesson's 784-16-16-10 network
    python -m compare autograd --dtype float64 --graph out/loss.dot --report out/autograd.json
    python -m compare autograd --model cnn --dtype float64          # LeNet-5: convolutions and pooling too
    python -m compare autograd --model lstm --dtype float64         # any family: --model vit, lstm, ...
    python -m compare autograd --mode forward --dtype float64       # forward mode: jvp along each parameter
    python -m compare autograd --mode hvp --model vit --dtype float64              # Hessian-vector products
    python -m compare autograd --mode double-backward --model lstm --dtype float64 # a gradient penalty's gradient

--mode reverse (the default, reverse.py): the gradients of the family's hand-written, engine and torch variants,
three ways, and the engine's computation graph. --mode forward, hvp and double-backward (modes.py): the engine
variant against the torch variant, by forward mode (jvp), forward over reverse (H v, with finite differences as
a third witness) and a backward pass of a backward pass; see docs/autograd.md, parts 5 to 7.
"""

from __future__ import annotations

import argparse

from compare.base.errors import UsageError
from compare.commands.autograd import modes, reverse
from compare.options.command import Command
from compare.options.groups import BATCH, DATA, LOSS, MODEL, RUN
from compare.training.config import Config

MODES = modes.ORDER
MODE_HELP = {"reverse": "gradients, hand-written vs engine vs torch, and the engine's graph",
             "forward": "dL/dp . v_p by the engine's jvp vs torch.func.jvp, a random direction v_p per parameter",
             "hvp": "H v by the engine's hvp vs torch.func, and vs finite differences of the gradient (float64)",
             "double-backward": "the gradient of the penalty sum_p |dL/dp|^2, by a backward pass of a backward pass"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="reverse",
                   help="what to differentiate and compare: " + "; ".join(f"{m}: {h}" for m, h in MODE_HELP.items())
                        + " (default: reverse)")
    p.add_argument("--graph", default=None, metavar="PATH.dot",
                   help="write the engine's computation graph of the loss here as Graphviz DOT, and render "
                        "PATH.svg next to it when Graphviz's `dot` is installed; --mode reverse only (default: none)")


def check(args: argparse.Namespace) -> None:
    if args.graph and args.mode != "reverse":
        raise UsageError(f"--graph draws the graph of the reverse mode's loss; leave it out with --mode {args.mode}")


def run(config: Config, data) -> dict:
    mode = config.extra["mode"]
    report = reverse.run(config, data) if mode == "reverse" else modes.run(config, data)
    return {"mode": mode, **report}


COMMAND = Command(
    name="autograd",
    help="one batch: hand-derived backprop vs the scratch autograd engine vs torch.autograd; the engine's "
         "computation graph; with --mode, its forward mode, Hessian-vector products and double backward vs torch's",
    run=run,
    groups=(DATA, MODEL, LOSS, BATCH, *RUN),
    add_arguments=add_arguments,
    config_keys=("mode", "graph"),
    check=check,
)
