"""docs/optimizers.md's runs: it reads the README's batch-norm runs (docs/figures/readme.py), so it has none of
its own."""

RUNS: dict = {}
