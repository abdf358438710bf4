"""docs/autograd.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

from figures import Run

RUNS: dict[str, Run] = {
    # section 2: the graph of one MLP loss (README's autograd-float64 is the same command, shown whole there)
    "autograd-graph": Run("autograd --dtype float64", fast=True, excerpt=(("node", 26),)),
    # section 6: second derivatives at work (README's examples quote it too)
    "second-order": Run("examples/second_order.py", fast=True),
}
