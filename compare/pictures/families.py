"""What one network does with one digit, drawn for its family's `train --plots` (`Family.pictures`).

    python -m compare train --model cnn --epochs 1 --plots pictures/   # the feature maps (and weights.py's filters)

The attention of a vision transformer's blocks, the hidden state of a recurrent network row by row, the
feature maps of a convolutional network's stages: scratch beside torch, with their largest difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from compare.pictures.canvas import cpu, figure, save

MAX_FEATURE_MAPS = 16  # feature maps drawn per conv stage


def attention_maps(folder: str | Path, image: Tensor, maps: dict[str, Sequence[Tensor]],
                   received: dict[str, Sequence[Tensor]], title: str) -> Path:
    """attention.png: for one digit, each transformer block's attention, scratch (top) beside torch (bottom).

    `image` [28, 28] pixel values in 0..1; `maps[side][k]` block k's attention weights [T, T] averaged over
    heads (row: the token that looks, column: the token looked at); `received[side][k]` [g, g] how much
    attention each patch gets, drawn over the digit on the patch grid.
    """
    sides = list(maps)
    depth = len(maps[sides[0]])
    fig = figure("attention")
    biggest = max((cpu(a) - cpu(b)).abs().max().item() for a, b in zip(maps[sides[0]], maps[sides[-1]],
                                                                             strict=True))
    fig.suptitle(f"{title}. Largest scratch-torch difference of the weights: {biggest:.2e}")
    axes = fig.subplots(len(sides), 1 + 2 * depth, squeeze=False)
    pixels_ = cpu(image).numpy()
    for row, side in zip(axes, sides, strict=True):
        row[0].imshow(pixels_, cmap="gray_r", vmin=0, vmax=1)
        row[0].set_title(f"{side}: the digit", fontsize=8)
        for k in range(depth):
            grid = cpu(received[side][k])
            ax = row[1 + k]
            ax.imshow(pixels_, cmap="gray_r", vmin=0, vmax=1)
            size = len(pixels_)
            ax.imshow(grid.numpy(), cmap="magma", alpha=0.6, extent=(-0.5, size - 0.5, size - 0.5, -0.5),
                      interpolation="nearest")
            ax.set_title(f"block {k}: attention\nreceived per patch", fontsize=8)
            full = row[1 + depth + k]
            full.imshow(cpu(maps[side][k]).numpy(), cmap="viridis", vmin=0)
            full.set_title(f"block {k}: weights\n(row looks at column)", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return save(fig, folder, "attention.png")


def hidden_states(folder: str | Path, image: Tensor, states: dict[str, Tensor], title: str) -> Path:
    """hidden_states.png: the recurrent network's hidden state after each row of one digit, [T, H] per side,
    drawn with time (the rows read so far) across; the digit beside them."""
    sides = list(states)
    a, b = (cpu(states[side]) for side in (sides[0], sides[-1]))  # T,H each
    fig = figure("hidden_states")
    fig.suptitle(f"{title}. Largest scratch-torch difference: {(a - b).abs().max().item():.2e}")
    axes = fig.subplots(1, 1 + len(sides), squeeze=False, width_ratios=[1] + [2] * len(sides))[0]
    axes[0].imshow(cpu(image).numpy(), cmap="gray_r", vmin=0, vmax=1)
    axes[0].set(title="the digit, read row by row", xticks=[], yticks=[])
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-12)
    for ax, side in zip(axes[1:], sides, strict=True):
        shown = ax.imshow(cpu(states[side]).T.numpy(), cmap="RdBu", vmin=-scale, vmax=scale, aspect="auto",
                          interpolation="nearest")
        ax.set(title=f"{side}: hidden state h_t", xlabel="row t read", ylabel="hidden unit")
    fig.colorbar(shown, ax=list(axes[1:]), shrink=0.8, label="h (red < 0 < blue)")
    return save(fig, folder, "hidden_states.png")


def feature_maps(folder: str | Path, image: Tensor, maps: dict[str, Sequence[Tensor]], title: str) -> Path:
    """feature_maps.png: one test image and, after each conv stage, its feature maps, scratch above torch.

    `image` is [S, S]; `maps[side][k]` is stage k's output [C_k, H_k, W_k]. Row k of each side shows
    stage k's first MAX_FEATURE_MAPS channels; a channel's two maps share one colour scale.
    """
    stages = [[cpu(m) for m in maps[name]] for name in ("scratch", "torch")]
    cols = min(max(len(m) for m in stages[0]), MAX_FEATURE_MAPS)
    fig = figure("feature_maps")
    biggest = max((a - b).abs().max().item() for a, b in zip(*stages, strict=True))
    fig.suptitle(f"{title}. Largest scratch-torch difference: {biggest:.2e}")
    left, right = fig.subfigures(1, 2, wspace=0.02, width_ratios=(1, 6))
    ax = left.subplots()
    ax.imshow(cpu(image).numpy(), cmap="gray_r")
    ax.set_axis_off()
    ax.set_title("input", fontsize=9)
    for sub, name, side in zip(right.subfigures(2, 1, hspace=0.04), ("scratch", "torch"), stages, strict=True):
        sub.suptitle(name, fontweight="bold")
        axes = sub.subplots(len(side), cols, squeeze=False)
        for k, (row, stage_maps) in enumerate(zip(axes, side, strict=True)):
            for c, ax in enumerate(row):
                ax.set_axis_off()
                if c >= len(stage_maps):
                    continue
                low = min(stages[0][k][c].min().item(), stages[1][k][c].min().item(), 0.0)
                top = max(stages[0][k][c].max().item(), stages[1][k][c].max().item(), low + 1e-6)
                ax.imshow(stage_maps[c].numpy(), cmap="viridis", vmin=low, vmax=top)
                if c == 0:
                    ax.set_title(f"stage {k + 1}: {len(stage_maps)} maps of {stage_maps.shape[-2]}x"
                                 f"{stage_maps.shape[-1]}", fontsize=7, pad=2, loc="left")
    return save(fig, folder, "feature_maps.png")
