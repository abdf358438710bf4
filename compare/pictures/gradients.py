"""grads.png: how far each parameter's hand-derived gradient is from autograd and from finite differences.

    python -m compare grads --plots pictures/
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from compare.pictures.canvas import LOG_FLOOR, figure, save


def gradient_errors(folder: str | Path, parameters: Sequence[dict], autograd_tolerance, finite_diff_tolerance,
                    dtype: str) -> Path:
    """grads.png: per parameter, the scratch gradient's relative error against autograd and against
    finite differences (log scale), each with its tolerance drawn as a line."""
    import numpy as np

    fig = figure("grads")
    ax = fig.add_subplot()
    names = [p["name"] for p in parameters]
    x = np.arange(len(names))
    series = [("max_rel_error", f"scratch vs torch.autograd ({dtype})", "tab:blue", autograd_tolerance),
              ("finite_diff_rel_error", "scratch vs finite differences (float64)", "tab:orange", finite_diff_tolerance)]
    width = 0.38
    for k, (key, label, colour, tol) in enumerate(series):
        offset = (k - 0.5) * width
        values = [max(p[key], LOG_FLOOR) for p in parameters]
        ax.bar(x + offset, values, width, color=colour, label=label)
        for xi, p in zip(x, parameters, strict=True):
            if p[key] == 0:
                ax.text(xi + offset, LOG_FLOOR * 2, "0", ha="center", fontsize=8)
        if tol.scale == "tensor":
            ax.axhline(tol.rtol, color=colour, linestyle="--", linewidth=1.2, label=f"tolerance, {tol.describe()}")
        else:
            # A per-element rule |a-e| <= atol + rtol|e| has no single line on this axis; what it allows
            # at the tensor's largest entry, (atol + rtol max|e|) / max|e|, is drawn over each bar.
            for xi, p in zip(x, parameters, strict=True):
                if p[key] > 0 and p.get("max_abs_diff", 0) > 0 and key == "max_rel_error":
                    largest = p["max_abs_diff"] / p["max_rel_error"]
                    ax.hlines((tol.atol + tol.rtol * largest) / largest, xi + offset - width / 2,
                              xi + offset + width / 2, color=colour, linestyle="--", linewidth=1.5)
            ax.plot([], [], color=colour, linestyle="--",
                    label=f"tolerance at the largest entry, {tol.name}: |a-e| <= {tol.atol:g} + {tol.rtol:g}|e|")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20 if len(names) > 6 else 0)
    ax.set(yscale="log", ylabel="max |difference| / max |expected|",
           title=f"Gradient of each parameter ({dtype}): how far the hand-derived backward is from two references")
    smallest = min(max(p[key], LOG_FLOOR) for p in parameters for key, *_ in series)
    ax.set_ylim(bottom=smallest / 100, top=1)
    ax.legend(fontsize="small", loc="upper left")
    return save(fig, folder, "grads.png")
