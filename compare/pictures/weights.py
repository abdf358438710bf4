"""Weights drawn as images, scratch beside torch: the first layer's neurons, the first convolution's filters.

Red is negative, blue positive, white zero; an image's two sides share one colour scale, so the same
picture on both sides means the same weights.
"""

from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

from compare.pictures.canvas import cpu, figure, save

MAX_NEURON_IMAGES = 32  # first-layer neurons drawn (the first ones, when the layer is wider)
MAX_FILTERS = 32  # first-layer convolution filters drawn


def _weight_grids(fig, ws: Tensor, wt: Tensor, n: int, rows: int, cols: int, what: str) -> None:
    """The first n weight images [n, H, W] of each side, scratch (left) beside torch (right), one colour scale
    per image shared by both sides (red < 0 < blue)."""
    for sub, name, w in zip(fig.subfigures(1, 2, wspace=0.04), ("scratch", "torch"), (ws, wt), strict=True):
        sub.suptitle(name, fontweight="bold")
        axes = sub.subplots(rows, cols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i >= n:
                continue
            scale = max(ws[i].abs().max().item(), wt[i].abs().max().item(), 1e-12)
            ax.imshow(w[i].numpy(), cmap="RdBu", vmin=-scale, vmax=scale)
            ax.set_title(f"{what} {i}", fontsize=7, pad=2)


def first_layer_weights(folder: str | Path, weights: dict[str, Tensor],
                        image_shape: tuple[int, int] = (28, 28)) -> Path:
    """first_layer.png: each first-layer neuron's 784 weights as a 28x28 image, scratch beside torch.

    Red is negative, blue positive, white zero; a neuron's two images share one colour scale,
    so the same picture on both sides means the same weights.
    """
    ws, wt = cpu(weights["scratch"]), cpu(weights["torch"])  # H,784
    n = min(len(ws), MAX_NEURON_IMAGES)
    cols = min(n, 4 if n <= 16 else 8)
    rows = math.ceil(n / cols)
    fig = figure("first_layer")
    biggest = (ws - wt).abs().max().item()
    shown = f"first {n} of {len(ws)} neurons" if n < len(ws) else f"all {n} neurons"
    fig.suptitle(f"First hidden layer: each neuron's weights on the 28x28 pixels ({shown}; red < 0 < blue). "
                 f"Largest scratch-torch difference: {biggest:.2e}")
    _weight_grids(fig, ws.reshape(len(ws), *image_shape), wt.reshape(len(wt), *image_shape), n, rows, cols,
                  "neuron")
    return save(fig, folder, "first_layer.png")


def conv_filters(folder: str | Path, weights: dict[str, Tensor]) -> Path:
    """conv_filters.png: the first convolution's filters as small images, scratch beside torch.

    `weights` are [O, C, k, k] per side; a filter over several input channels is drawn on its
    first channel. Red is negative, blue positive; a filter's two images share one colour scale.
    """
    ws, wt = cpu(weights["scratch"])[:, 0], cpu(weights["torch"])[:, 0]  # O,k,k
    n = min(len(ws), MAX_FILTERS)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = figure("conv_filters")
    biggest = (cpu(weights["scratch"]) - cpu(weights["torch"])).abs().max().item()
    k = ws.shape[-1]
    fig.suptitle(f"First convolution: its {n} {k}x{k} filters (red < 0 < blue). "
                 f"Largest scratch-torch difference: {biggest:.2e}")
    _weight_grids(fig, ws, wt, n, rows, cols, "filter")
    return save(fig, folder, "conv_filters.png")
