"""docs/autograd.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

from figures import Fields, Run

RUNS: dict[str, Run] = {
    # section 2: the graph of one MLP loss (README's autograd-float64 is the same command, shown whole there)
    "autograd-graph": Run("autograd --dtype float64", fast=True, excerpt=(("node", 26),)),
    # section 6: what jvp and hvp cost, against a forward pass and a gradient, engine and torch.func
    "autograd-modes-cost": Run("bench --autograd-modes", excerpt=(("Median milliseconds", None),)),
    # section 6: second derivatives at work (README's examples quote it too)
    "second-order": Run("examples/second_order.py", fast=True),
}


def ratio_range(r: Fields, side: str, ratio: str) -> str:
    """'a to b' over the networks of a --autograd-modes report, for one side's ratio."""
    values = [m[side][ratio] for m in r.autograd_modes]
    return f"{min(values):.1f} to {max(values):.1f}"


def above(r: Fields, bound: float = 3.0) -> str:
    """Where a ratio of a --autograd-modes report exceeds `bound`: 'the engine's hvp on lstm (4.6), ...' or 'none'."""
    found = [f"{side}'s {ratio.split('_')[0]} on {m['model']} ({m[side][ratio]:.1f})"
             for m in r.autograd_modes for side in ("engine", "torch.func")
             for ratio in ("jvp_over_forward", "hvp_over_gradient") if m[side][ratio] > bound]
    return ", ".join(found) or "none"


NAMES = {"ratio_range": ratio_range, "above": above}
