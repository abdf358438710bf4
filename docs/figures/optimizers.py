"""docs/optimizers.md's runs: the L1 and L2 penalties in float64 lockstep; it also reads the README's batch-norm runs
(docs/figures/readme.py)."""

from figures import Run

RUNS: dict = {
    "train-l2-float64-1": Run("train --l2 1e-3 --dtype float64 --epochs 1", fast=True,
                              excerpt=((0, 3), ("Largest per-step", 1), ("Verdict:", 1))),
    "train-l1-float64-1": Run("train --l1 1e-4 --dtype float64 --epochs 1", fast=True,
                              excerpt=((0, 3), ("Largest per-step", 1), ("Verdict:", 1))),
}
