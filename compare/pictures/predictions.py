"""What the trained networks answer on the test set: both confusion matrices, and the images they got wrong."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from compare.pictures.canvas import cpu, figure, save

MAX_MISTAKES = 32  # misclassified test images drawn


def confusion_matrices(folder: str | Path, confusions: dict[str, Tensor], classes: Sequence[str]) -> Path:
    """confusion.png: both confusion matrices, counts written in the cells, colour on a log scale."""
    from matplotlib.colors import LogNorm

    fig = figure("confusion")
    fig.suptitle("Confusion matrices on the test set: row = true class, column = predicted class")
    mats = {name: torch.as_tensor(c).cpu() for name, c in confusions.items()}
    top = max(int(m.max()) for m in mats.values())
    short = [c if len(c) <= 8 else c[:7] + "." for c in classes]
    for ax, (name, m) in zip(fig.subplots(1, len(mats)), mats.items(), strict=True):
        masked = m.double().masked_fill(m == 0, float("nan"))  # empty cells stay white
        image = ax.imshow(masked.numpy(), cmap="Blues", norm=LogNorm(vmin=1, vmax=max(top, 2)))
        for i, j in m.nonzero().tolist():
            v = int(m[i, j])
            ax.text(j, i, str(v), ha="center", va="center", fontsize=6.5,
                    color="white" if v > top ** 0.6 else "black")  # white on the dark cells
        ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted class",
               ylabel="true class", title=f"{name}: {int(m.diag().sum())} of {int(m.sum())} right")
        ax.set_xticklabels(short, rotation=45 if max(map(len, short)) > 2 else 0, fontsize=8)
        ax.set_yticklabels(short, fontsize=8)
    fig.colorbar(image, ax=fig.axes, shrink=0.8, label="images (log scale)")
    return save(fig, folder, "confusion.png")


def misclassified(folder: str | Path, images: Tensor, y_true: Tensor, predictions: dict[str, Tensor],
                  classes: Sequence[str]) -> Path:
    """misclassified.png: test images that scratch or torch got wrong, with the true and predicted labels.

    `images` are [N, 28, 28] pixel values in 0..1 (un-normalized). Images on which scratch and
    torch disagree come first, with a red title.
    """
    ps, pt, y = predictions["scratch"].cpu(), predictions["torch"].cpu(), y_true.cpu()
    wrong = ((ps != y) | (pt != y)).nonzero().flatten()
    disagree = ps[wrong] != pt[wrong]
    shown = torch.cat([wrong[disagree], wrong[~disagree]])[:MAX_MISTAKES]  # the rare disagreements first
    fig = figure("misclassified")
    fig.suptitle(f"Misclassified test images, {len(shown)} of {len(wrong)} (scratch wrong on {int((ps != y).sum())}, "
                 f"torch on {int((pt != y).sum())}); first, in red, the {int(disagree.sum())} where they disagree")
    axes = fig.subplots(4, 8, squeeze=False)
    for ax, k in zip(axes.flat, [*shown.tolist(), *[None] * (axes.size - len(shown))], strict=True):
        ax.set_axis_off()
        if k is None:
            continue
        ax.imshow(cpu(images[k]).numpy(), cmap="gray_r", vmin=0, vmax=1)
        same = int(ps[k]) == int(pt[k])
        guess = (f"both say {classes[int(ps[k])]}" if same
                 else f"scratch {classes[int(ps[k])]}\ntorch {classes[int(pt[k])]}")
        ax.set_title(f"true {classes[int(y[k])]}\n{guess}", fontsize=7, pad=2, color="black" if same else "tab:red")
    return save(fig, folder, "misclassified.png")
