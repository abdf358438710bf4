"""docs/recurrence.md's runs and tables (see docs/figures/__init__.py)."""

RUNS: dict = {}
