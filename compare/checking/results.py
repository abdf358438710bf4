"""What a gradient check found: one `TensorComparison` per tensor, seed and method; a `CheckResult` over all."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from compare.base import agreement


@dataclass
class TensorComparison:
    """One tensor's gradient (or the forward output) from the target, against one independent method."""

    tensor: str  # "output", "input", a parameter name, or a function argument's name
    against: str  # "torch.autograd (torch.nn:Linear)", "finite differences", "directional derivative", ...
    seed: int
    shape: list[int]
    passed: bool
    exact: bool | None  # bit-identical (None where that cannot be asked: against finite differences)
    max_abs_diff: float
    max_rel_error: float  # max|a - e| over the scale its tolerance names
    worst_index: list[int] | None  # where |a - e| is largest (for directions: [direction number])
    checked: int  # coordinates (or directions) compared
    total: int  # coordinates in the tensor (or directions asked for)
    non_differentiable: int = 0  # left out: the one-sided differences disagree there
    tolerance: str = ""
    message: str = ""  # on failure: where, both values, the tolerance


@dataclass
class CheckResult:
    """Everything one `check_backward` (or `check_optimizer`) call compared, over all its seeds."""

    target: str
    kind: str
    reference: str | None
    dtype_requested: str
    dtype_used: str
    mode: str  # "full": every coordinate; "sampled": random coordinates and random directions
    samples: int | None  # coordinates per tensor in sampled mode
    directions: int | None  # directions per tensor in sampled mode
    seeds: list[int]
    step: float | None  # finite-difference step h
    notes: list[str] = field(default_factory=list)  # why float64, warnings about loose tolerances, ...
    comparisons: list[TensorComparison] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    def failures(self) -> list[TensorComparison]:
        return [c for c in self.comparisons if not c.passed]

    def failed_seeds(self) -> list[int]:
        return sorted({c.seed for c in self.failures()})

    def non_differentiable(self) -> int:
        return sum(c.non_differentiable for c in self.comparisons)

    def groups(self) -> dict[tuple[str, str], list[TensorComparison]]:
        """The comparisons of each (tensor, method), one per seed, in the order they were made."""
        found: dict[tuple[str, str], list[TensorComparison]] = {}
        for c in self.comparisons:
            found.setdefault((c.tensor, c.against), []).append(c)
        return found

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["failed_seeds"] = self.failed_seeds()
        d["non_differentiable"] = self.non_differentiable()
        return d


def worst_of(comparisons: list[TensorComparison]) -> TensorComparison:
    """A failure first, then the largest error."""
    return max(comparisons, key=lambda c: (not c.passed, c.max_rel_error))


def compare_tensors(name: str, against: str, seed: int, actual: Tensor | None, expected: Tensor,
                    tol: agreement.Tolerance, what: str | None = None) -> TensorComparison:
    """`actual` (from the target) against `expected` (from its reference), with compare/base/agreement.py's helper;
    `what` names it in a failure's message (default: the forward output, or d<name>)."""
    if actual is None:
        return TensorComparison(name, against, seed, list(expected.shape), False, False, math.inf, math.inf, None, 0,
                                expected.numel(), tolerance=tol.describe(), message=f"{name}: the backward gave none")
    what = what or ("the forward output" if name == "output" else f"d{name}")
    c = agreement.compare(f"{what} vs {against}", actual, expected, tol)
    same_shape = tuple(actual.shape) == tuple(expected.shape)
    exact = same_shape and actual.dtype == expected.dtype and torch.equal(actual, expected)
    worst = None
    if same_shape and actual.numel() and c.max_abs_diff > 0:
        diff = (actual.double() - expected.double()).abs()
        flat = int(torch.nan_to_num(diff, nan=math.inf).argmax())
        worst = [int(i) for i in torch.unravel_index(torch.tensor(flat), actual.shape)]
    return TensorComparison(name, against, seed, list(expected.shape), c.passed, exact, c.max_abs_diff,
                            c.max_rel_error, worst, expected.numel(), expected.numel(), tolerance=tol.describe(),
                            message="" if c.passed else c.message)


def scored(name: str, against: str, seed: int, shape: list[int], actual: Tensor, numeric: Tensor, noise: Tensor,
           scale: float, tol: agreement.Tolerance, kept: Tensor, total: int, kinks: int,
           index_of: Callable[[int], list[int]], what: str | None = None, by: str = "the backward") -> TensorComparison:
    """actual (from `by`, the target's backward) against numeric differences, both at the kept coordinates or
    directions; allowed: rtol * scale, plus the rounding error of each difference quotient (finite_diff.Slopes.noise).
    `what` names it in a failure's message (default d<name>)."""
    scale_text = "|g| |v|" if "directional" in against else "max|g|"
    rule = f"{tol.name}: |a-e| <= {tol.rtol:g} * {scale_text} + rounding"
    if len(kept) == 0:
        return TensorComparison(name, against, seed, shape, True, None, 0.0, 0.0, None, 0, total, kinks, rule)
    diff = (actual - numeric).abs()
    excess = torch.nan_to_num(diff - (tol.rtol * scale + noise), nan=math.inf)
    finite = bool(torch.isfinite(actual).all() and torch.isfinite(numeric).all())
    passed = finite and bool((excess <= 0).all())
    k = int(excess.argmax()) if not passed else int(torch.nan_to_num(diff, nan=math.inf).argmax())
    max_abs = diff.max().item()
    index = index_of(k) if max_abs > 0 else None
    message = ""
    if not passed:
        index = index_of(k)
        where = f"direction {index[0]}" if "directional" in against else f"index {tuple(index)}"
        message = (f"{what or 'd' + name} vs {against}: at {where} {by} gives {actual[k].item()!r}, "
                   f"{against} {numeric[k].item()!r} (|diff| {diff[k].item():.3e}, {diff[k].item() / scale:.3e} of "
                   f"{scale_text}; {rule})")
    return TensorComparison(name, against, seed, shape, passed, None, max_abs, max_abs / scale, index,
                            len(kept), total, kinks, rule, message)
