"""Scratch vs torch: the comparison commands (`python -m compare ...`) and the tools under them."""

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
