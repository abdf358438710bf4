"""Terminal tables (and the counted words in their lines), and the JSON report every command writes with
`--report PATH`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

TABLE_STYLES = ("plain", "markdown")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], style: str = "plain") -> str:
    """A text table, columns padded to their widest cell.

    style "plain": columns two spaces apart, numbers right-aligned (the terminal tables).
    style "markdown": GitHub-flavoured rows `| a | b |` under a `| --- |` line, cells left-aligned,
    so the same text reads on a terminal and pastes into a document (`bench`'s tables).
    """
    if style not in TABLE_STYLES:
        raise ValueError(f"table style must be one of {', '.join(TABLE_STYLES)}, got {style!r}")
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    if style == "markdown":
        lines = [list(headers), ["-" * w for w in widths], *cells]
        return "\n".join("| " + " | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) + " |"
                         for line in lines)
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and rows for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0 or math.isinf(value) or math.isnan(value):
            return f"{value:g}"
        return f"{value:.3e}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}"
    return str(value)


def _jsonable(obj: object) -> object:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no inf/nan
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_report(path: str | Path, report: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(report), indent=2) + "\n")


def plural(n: int, word: str) -> str:
    """'1 epoch', '3 epochs'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
