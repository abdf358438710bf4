"""Deliberately wrong backward passes (mutants): the bugs people really make, each one the checker must catch.

    python -m compare check --mutants            # every mutant, then the correct subjects over 200 seeds

Each mutant is a small subclass of a correct scratch layer, loss or optimizer (or a replacement of
one method of the autograd engine) with ONE realistic bug, described by its docstring's first line.
subjects.py holds the correct things and how each is checked (a `Subject`; the same subjects, unmutated,
are checked over many seeds to count false positives) and what a `Mutant` is; layers.py, engine.py and
optimizers.py hold the mutants of each kind, each file with its own table. Adding a mutant is one class
(or function) and one line in its file's MUTANTS; adding a layer to the suite is one line in SUBJECTS.
"""

from __future__ import annotations

from compare.checking.mutants import engine, layers, optimizers

MUTANTS = [*layers.MUTANTS, *engine.MUTANTS, *optimizers.MUTANTS]  # every mutant, in the suite's order
