"""Is training healthy? The pictures of what compare/training/diagnostics.py records during `train --plots`.

Per layer, histograms of activations (dead ReLUs and saturated tanh/sigmoid units counted) and of weight
gradients, and the ratio of each update to its weights over the steps, scratch beside torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from compare.pictures.canvas import (
    LOG_FLOOR,
    SCRATCH_STYLE,
    TORCH_STYLE,
    cpu,
    epoch_ticks,
    figure,
    moving_average,
    save,
)

HEALTHY_UPDATE_RATIO = 1e-3  # std(update) / std(weights) around which a layer learns at a healthy pace


def _histogram_pair(ax, values: dict[str, Tensor], title: str, xlabel: str) -> None:
    styles = {"scratch": SCRATCH_STYLE, "torch": TORCH_STYLE}
    low = min(cpu(v).min().item() for v in values.values())
    high = max(cpu(v).max().item() for v in values.values())
    bins = torch.linspace(low, high if high > low else low + 1, 61).numpy()
    for name, v in values.items():
        ax.hist(cpu(v).numpy(), bins=bins, histtype="step", density=True, label=name, **styles[name])
    ax.set(title=title, xlabel=xlabel, ylabel="density", yscale="log")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="x-small")


def _health_title(layer, when: str) -> str:
    trouble = f"; {layer.unhealthy} of {layer.units} units {layer.problem}" if layer.problem else ""
    return f"{layer.name} ({layer.kind}), {when}{trouble}"


def activation_histograms(folder: str | Path, diagnostics, title: str = "") -> Path:
    """activations.png: each hidden layer's activations on a fixed probe batch, at initialization and after
    training, scratch (solid red) over torch (dashed blue); each panel counts dead ReLUs or saturated units."""
    sides = list(diagnostics.final)
    rows = len(diagnostics.final[sides[0]])
    fig = figure("activations", (12.0, 2.6 * rows + 0.8))
    for row in range(rows):
        for col, (when, health) in enumerate([("at initialization", diagnostics.initial),
                                              ("after training", diagnostics.final)]):
            ax = fig.add_subplot(rows, 2, 2 * row + col + 1)
            layer = health[sides[0]][row]
            _histogram_pair(ax, {side: health[side][row].activations for side in sides},
                            _health_title(layer, when), "activation")
    if title:
        fig.suptitle(title, fontsize="medium")
    return save(fig, folder, "activations.png")


def gradient_histograms(folder: str | Path, diagnostics, title: str = "") -> Path:
    """gradients.png: each weight matrix's gradient at the last training step, scratch over torch."""
    sides = list(diagnostics.gradients)
    names = list(diagnostics.gradients[sides[0]])
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = figure("gradients", (12.0, 2.8 * rows + 0.8))
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        g = diagnostics.gradients[sides[0]][name]
        _histogram_pair(ax, {side: diagnostics.gradients[side][name] for side in sides},
                        f"{name}: gradient std {g.std().item():.1e}, mean {g.mean().item():+.1e}", "gradient")
    if title:
        fig.suptitle(title, fontsize="medium")
    return save(fig, folder, "gradients.png")


def update_ratios(folder: str | Path, ratios: dict[str, dict[str, Sequence[float]]], steps_per_epoch: int,
                  title: str = "") -> Path:
    """update_ratio.png: std(update) / std(weights) of each weight matrix at every step, log scale; one colour per
    matrix, scratch solid and torch dashed; the grey line is the ~1e-3 of a layer that learns at a healthy pace."""
    fig = figure("update_ratio")
    ax = fig.add_subplot(1, 1, 1)
    colours = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink"]
    styles = {"scratch": dict(linestyle="-", linewidth=1.2), "torch": dict(linestyle=(0, (4, 3)), linewidth=1.0)}
    for side, per_weight in ratios.items():
        for k, (name, values) in enumerate(per_weight.items()):
            window = max(1, len(values) // 200)  # one step is noisy: a moving average shows the trend
            smooth = [max(v, LOG_FLOOR) for v in moving_average(values, window)]
            ax.plot(range(window, len(values) + 1), smooth, color=colours[k % len(colours)],
                    label=f"{side} {name}", **styles[side])
    ax.axhline(HEALTHY_UPDATE_RATIO, color="gray", linestyle=":", label="1e-3: a healthy pace")
    ax.set(xlabel="training step", ylabel="std(update) / std(weights)", yscale="log",
           title="how much each step changes each weight matrix, relative to its size")
    epoch_ticks(ax, len(next(iter(next(iter(ratios.values())).values()))), steps_per_epoch)
    ax.legend(fontsize="x-small", ncol=2)
    if title:
        fig.suptitle(title, fontsize="medium")
    return save(fig, folder, "update_ratio.png")


def training_health(folder: str | Path, diagnostics, steps_per_epoch: int, title: str = "") -> list[Path]:
    """The pictures of a compare.training.diagnostics.TrainingDiagnostics: activations.png (when the family's model has
    hidden activation layers to walk), gradients.png, update_ratio.png."""
    paths = []
    if diagnostics.final and all(diagnostics.final.values()):
        paths.append(activation_histograms(folder, diagnostics, title))
    if diagnostics.gradients and all(diagnostics.gradients.values()):
        paths.append(gradient_histograms(folder, diagnostics, title))
    paths.append(update_ratios(folder, diagnostics.update_ratios, steps_per_epoch, title))
    return paths
