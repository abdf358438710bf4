"""Scratch vs torch: the comparison commands (`python -m compare ...`) and the tools under them."""

from compare.checking import check_backward

__all__ = ["check_backward"]
