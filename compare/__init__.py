"""Scratch vs torch: the comparison commands (`python -m compare ...`) and the tools under them.

The folders are layers, listed here from the top down. A module imports only modules of a lower layer or of
its own folder; two folders on one layer import nothing of each other; scratch/ and torch_impl/ import nothing
of compare. tests/test_structure.py reads this table and holds every import to it (function-local ones too),
and a new folder or top-level module of compare/ fails that test until it is given a layer here.

    layer  folders and files                      what they hold
    10     compare/__main__.py                    `python -m compare`: guards the import of torch, runs the CLI
    9      compare/cli.py, compare/__init__.py    the parser, built from every command record; this package
    8      compare/commands/                      one module (or package) per command; none imports another
    7      compare/options/                       the option groups the commands take, the Command record
    6      compare/distributed/, compare/web/     data-parallel training; the pages: digits, the live playground
    5      compare/training/, compare/checking/   Config, learners, the one loop, the verdict; the gradient checker
    4      compare/models/                        the registry: one file per model family, built from one spec
    3      compare/data/, compare/pictures/       MNIST, toy points, digits; the PNG pictures, one module a subject
    2      compare/base/, compare/glossary.py     the leaves: errors, argument types, tolerances, tables, reports;
                                                  the lesson's glossary, its words paired with the code's
    1      torch_impl/                            the torch twins (a twin may take scratch's plain arithmetic of a plan)
    0      scratch/                               the hand-written networks, on plain tensors

In words: the command line sits on top (cli.py imports every command); each command takes option groups from
below it and runs the core. The core trains (training/, and distributed/ over it), checks gradients
(checking/) and serves the pages (web/); it builds its networks from the registry (models/), which may
draw its own pictures (pictures/) but knows nothing of training; data/ and pictures/ know no model by name.
At the bottom of compare, base/ imports nothing of the project, so that every layer can raise its errors,
judge with its tolerances and write its tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["check_backward"]

if TYPE_CHECKING:
    from compare.checking import check_backward


def __getattr__(name: str) -> object:
    # Imported on first use, not here: `python -m compare` imports this package before compare/__main__.py runs,
    # and only there can a Ctrl-C during the import of torch be caught and told in one line.
    if name == "check_backward":
        from compare.checking import check_backward

        return check_backward
    raise AttributeError(f"module 'compare' has no attribute {name!r}")
