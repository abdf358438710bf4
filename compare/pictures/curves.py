"""curves.png: the training curves of both sides, overlaid, and how far apart their losses are, step by step.

    python -m compare train --epochs 2 --plots pictures/      # also the playground's --plots
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from compare.pictures.canvas import LOG_FLOOR, SCRATCH_STYLE, TORCH_STYLE, epoch_ticks, figure, moving_average, save


def _relative_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [max(abs(x - y) / max(abs(y), 1e-300), LOG_FLOOR) for x, y in zip(a, b, strict=True)]


def training_curves(
    folder: str | Path,
    step_losses: dict[str, Sequence[float]],
    accuracies: dict[str, dict[str, Sequence[float]]],
    *,
    dtype: str,
    steps_per_epoch: int,
    loss_tolerance: float | None = None,
    title: str = "",
) -> Path:
    """curves.png: per-step losses overlaid, accuracy per epoch, and the per-step loss difference (log scale).

    `step_losses` maps "scratch"/"torch" to their per-step training losses; `accuracies` maps a
    label such as "test accuracy" to {"scratch": [...], "torch": [...]} with one value per epoch.
    """
    from matplotlib.ticker import MaxNLocator, NullFormatter

    fig = figure("curves")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1])
    ax_loss, ax_acc, ax_diff = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    styles = {"scratch": SCRATCH_STYLE, "torch": TORCH_STYLE}
    steps = range(1, len(step_losses["scratch"]) + 1)

    window = max(1, len(steps) // 100) if steps_per_epoch > 1 else 1  # mini-batch losses are noisy
    for name, losses in step_losses.items():
        if window > 1:
            ax_loss.plot(steps, losses, color=styles[name]["color"], linewidth=0.4, alpha=0.2)
        ax_loss.plot(steps[window - 1:], moving_average(losses, window),
                     label=name + (f" (mean of {window} steps)" if window > 1 else ""), **styles[name])
    ax_loss.set(xlabel="training step", ylabel="loss of the step's batch", yscale="log",
                title="training loss, step by step")
    ax_loss.yaxis.set_minor_formatter(NullFormatter())  # labels on 2e-1, 3e-1, ... only crowd the axis
    epoch_ticks(ax_loss, len(steps), steps_per_epoch)
    ax_loss.legend()

    markers = ["o", "s", "^", "D"]
    for k, (label, series) in enumerate(accuracies.items()):
        for name, values in series.items():
            epochs = range(1, len(values) + 1)
            marker = markers[k % len(markers)] if len(values) <= 25 else None
            ax_acc.plot(epochs, [100 * v for v in values], marker=marker,
                        label=f"{name}, {label}", **{**styles[name], "alpha": 1.0 if k == 0 else 0.6})
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy after each epoch")
    n_epochs = max(len(v) for series in accuracies.values() for v in series.values())
    ax_acc.set_xlim(0.5, n_epochs + 0.5)
    if n_epochs <= 20:
        ax_acc.set_xticks(range(1, n_epochs + 1))
    else:
        ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.legend(fontsize="small")

    diffs = _relative_differences(step_losses["scratch"], step_losses["torch"])
    nonzero = [d if d > LOG_FLOOR else float("nan") for d in diffs]  # gaps where the two are equal
    ax_diff.plot(steps, nonzero, color="black", linewidth=0.6, label="|scratch - torch| / |torch|, per step")
    equal = [s for s, d in zip(steps, diffs, strict=True) if d <= LOG_FLOOR]
    if equal:
        ax_diff.plot(equal, [LOG_FLOOR] * len(equal), "|", color="tab:green", markersize=5, alpha=0.5,
                     label=f"steps with bit-identical losses ({len(equal)})")
    eps = torch.finfo(torch.float64 if dtype == "float64" else torch.float32).eps
    ax_diff.axhline(eps, color="gray", linestyle=":", label=f"{dtype} machine epsilon {eps:.1e}")
    if loss_tolerance is not None:
        ax_diff.axhline(loss_tolerance, color="tab:red", linestyle="--",
                        label=f"agreement tolerance {loss_tolerance:g}")
    ax_diff.set(xlabel="training step", ylabel="relative loss difference", yscale="log",
                title=_difference_story(dtype, diffs, loss_tolerance))
    ax_diff.set_ylim(bottom=LOG_FLOOR / 10, top=max(10.0, max(diffs) * 10))
    epoch_ticks(ax_diff, len(steps), steps_per_epoch)
    ax_diff.legend(loc="upper left", fontsize="small")
    if title:
        fig.suptitle(title)
    return save(fig, folder, "curves.png")


def _difference_story(dtype: str, diffs: list[float], tolerance: float | None) -> str:
    """The title of the difference panel: what this run's differences did, in words."""
    worst = max(diffs)
    if dtype == "float64" and tolerance is not None and worst <= tolerance:
        return f"per-step loss difference: in float64 it stays at rounding level (largest {worst:.1e})"
    if dtype == "float64":
        return (f"per-step loss difference: rounding differences grew to {worst:.1e}: this training is chaotic, "
                "and amplifies even float64's last bits")
    return (f"per-step loss difference: float32 rounding (~1e-7) feeds into every later step, so the runs "
            f"drift apart (largest {worst:.1e})")
