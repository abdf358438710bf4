"""Argument types for the command line: parse one option's text or raise argparse's error. A leaf module.

argparse turns `ArgumentTypeError` into a one-line `error: argument --x: ...` and exit status 2.
"""

from __future__ import annotations

import argparse

MAX_SEED = 2**32 - 1  # every generator seeded here (torch's, numpy's) takes 32-bit seeds without wrapping


def int_list(text: str, option: str = "--hidden", example: str = "16,16", minimum: int = 1) -> tuple[int, ...]:
    """'16,16' -> (16, 16): integers of at least `minimum` (positive by default) separated by commas, no empty
    parts."""
    parts = [part.strip() for part in text.split(",")]
    if text.strip() == "" or any(part == "" for part in parts):
        raise argparse.ArgumentTypeError(f"{option} expects comma-separated positive integers such as {example}, "
                                         f"got {text!r} (an empty part)")
    try:
        sizes = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option} expects comma-separated integers such as {example}, "
                                         f"got {text!r}") from None
    if any(s < minimum for s in sizes):
        kind = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        raise argparse.ArgumentTypeError(f"{option} sizes must be {kind}, got {text!r}")
    return sizes


def hidden_sizes(text: str) -> tuple[int, ...]:
    return int_list(text, "--hidden", "16,16")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed expects an integer, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"--seed must be between 0 and {MAX_SEED} (32 bits), got {value}")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability such as 0.2, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {value}")
    return value
