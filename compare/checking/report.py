"""The gradient checker's output: a table per tensor in the manner of makemore's `cmp()`, and failure messages.

    tensor  shape  against                          exact  close  max abs diff  max rel err  worst index  checked
    input   4x7    torch.autograd (torch.nn:Linear)   no    yes     2.776e-17    1.037e-16  [2, 3]       28/28
    input   4x7    finite differences                  -    yes     4.411e-11    1.647e-11  [0, 5]       28/28
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from compare.checking.results import CheckResult, TensorComparison, worst_of


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, columns padded to their widest cell; numbers right-aligned."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(r[i], float) for r in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0 or math.isinf(value) or math.isnan(value):
            return f"{value:g}"
        return f"{value:.3e}"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def checked_text(c: TensorComparison, non_differentiable: int) -> str:
    """"all", or how many coordinates (directions) were compared; the non-differentiable ones left out."""
    unit = " dirs" if c.against.startswith("directional") else ""
    text = "all" if c.checked == c.total and not unit else f"{c.checked}/{c.total}{unit}"
    return text + (f" ({non_differentiable} non-diff. left out)" if non_differentiable else "")


def rows(result: CheckResult) -> list[list[object]]:
    """One row per (tensor, method): the worst seed's numbers; exact and close over every seed."""
    out = []
    for group in result.groups().values():
        c = worst_of(group)
        index = c.worst_index
        if index is not None and len(result.seeds) > 1:
            index = f"{_fmt(index)} seed {c.seed}"
        exact = None if c.exact is None else all(x.exact for x in group)
        out.append([c.tensor, "x".join(map(str, c.shape)) or "scalar", c.against, exact, all(x.passed for x in group),
                    float(c.max_abs_diff), float(c.max_rel_error), index,
                    checked_text(c, sum(x.non_differentiable for x in group))])
    return out


HEADERS = ["tensor", "shape", "against", "exact", "close", "max abs diff", "max rel err", "worst index", "checked"]


def summary(result: CheckResult) -> str:
    """The header line, the table, the tolerances, notes, failures and the verdict."""
    seeds = result.seeds
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    mode = "every coordinate" if result.mode == "full" else \
        f"sampled: {result.samples} coordinates and {result.directions} directions per tensor"
    lines = [f"Checking {result.target} ({result.kind}) in {result.dtype_used}, {seed_text}, {mode}",
             f"against {result.reference or 'no reference (finite differences only)'}"
             + (f" and central finite differences (h={result.step:g})" if result.step else "")]
    lines += ["", table(HEADERS, rows(result))]
    tolerances = sorted({c.tolerance for c in result.comparisons if c.tolerance})
    lines += ["", "Tolerances: " + "; ".join(tolerances)]
    lines += [f"Note: {note}" for note in result.notes]
    for group in result.groups().values():
        failed = [c for c in group if not c.passed]
        if failed:
            seeds = ", ".join(str(c.seed) for c in failed)
            lines.append(f"  FAILED on seed{'s' * (len(failed) > 1)} {seeds}: {worst_of(failed).message}"
                         + (f" (seed {worst_of(failed).seed}, the worst)" if len(failed) > 1 else ""))
    verdict = "PASSED" if result.passed else f"FAILED on seeds {result.failed_seeds()}"
    lines.append(f"Verdict: {verdict} ({len(result.comparisons)} comparisons in {result.seconds:.2f} s)")
    return "\n".join(lines)
