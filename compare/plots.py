"""Pictures of a comparison run, written as PNG files: `--plots DIR` on `train`, `grads` and `playground`.

    python -m compare train --epochs 2 --plots pictures/      # curves, first-layer weights, confusion, mistakes
    python -m compare grads --plots pictures/                 # gradient errors per parameter, with tolerances
    python -m compare playground --plots pictures/ --gif      # decision boundaries, neurons, an animation
    python -m compare train --model cnn --epochs 1 --plots pictures/   # and the filters, the feature maps

`train --plots` also draws whether training is healthy (compare/diagnostics.py records it): per layer,
histograms of activations (dead ReLUs and saturated tanh/sigmoid units counted) and of weight gradients,
and the ratio of each update to its weights over the steps, scratch beside torch.

matplotlib is an optional extra (`pip install -e '.[plots]'`) and is imported only when a
picture is asked for, so every command works without it. Figures are drawn on
`matplotlib.figure.Figure` objects with the Agg canvas, never through `pyplot`: no window,
no display, no global backend switch, so it runs headless on any server. Every figure has
a fixed size in inches at `DPI` dots per inch, so its PNG has exactly `pixels(name)` pixels.

Colours: scratch is drawn solid red, torch dashed blue on top of it, so where the two lines
coincide both stay visible. On the plane, class 0 is orange and class 1 blue, as in
TensorFlow Playground.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from compare.base import agreement
from compare.base.errors import UsageError

INSTALL_HINT = "plots need matplotlib: pip install -e '.[plots]'"
DPI = 100
SIZES = {  # figure name -> (width, height) in inches
    "curves": (12.0, 8.0),
    "first_layer": (12.0, 6.5),
    "confusion": (12.0, 5.5),
    "misclassified": (12.0, 7.0),
    "conv_filters": (12.0, 4.0),
    "feature_maps": (12.0, 7.0),
    "grads": (10.0, 5.5),
    "boundary": (11.0, 5.5),
    "gif": (8.0, 4.2),  # each animation frame, drawn at GIF_DPI
    "update_ratio": (12.0, 5.0),
    "attention": (14.0, 6.0),
    "hidden_states": (14.0, 5.5),
}
GIF_DPI = 60
SCRATCH_STYLE = dict(color="tab:red", linestyle="-", linewidth=1.6)
TORCH_STYLE = dict(color="tab:blue", linestyle=(0, (4, 3)), linewidth=1.4)
ORANGE, BLUE = "#f59322", "#0877bd"  # Playground's class colours
MAX_NEURON_IMAGES = 32  # first-layer neurons drawn (the first ones, when the layer is wider)
MAX_MISTAKES = 32  # misclassified test images drawn
MAX_FILTERS = 32  # first-layer convolution filters drawn
MAX_FEATURE_MAPS = 16  # feature maps drawn per conv stage
LOG_FLOOR = 1e-18  # a difference of exactly 0 cannot sit on a log axis: drawn here instead


def require_matplotlib() -> None:
    """Fail early, before any training, with the install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


def pixels(name: str, size: tuple[float, float] | None = None) -> tuple[int, int]:
    """(width, height) in pixels of the PNG that figure `name` is written as."""
    w, h = size or SIZES[name]
    return round(w * DPI), round(h * DPI)


def _figure(name: str, size: tuple[float, float] | None = None):
    from matplotlib.figure import Figure

    return Figure(figsize=size or SIZES[name], dpi=DPI, layout="constrained")


def _save(fig, folder: str | Path, filename: str) -> Path:
    """Write `fig` as a PNG with a 256-colour palette: about a fifth of the bytes of full colour
    (boundary.png: 265 KB -> 51 KB), which keeps the pictures under docs/ small, and looks the same."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the exact figsize * DPI pixels (no bbox_inches="tight" cropping)
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    path = Path(folder) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def _cpu(t: Tensor) -> Tensor:
    """A float64 CPU copy; matplotlib gets `.numpy()` of it (a tensor would go through a deprecated path)."""
    return t.detach().to("cpu", torch.float64)


def _relative_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [max(abs(x - y) / max(abs(y), 1e-300), LOG_FLOOR) for x, y in zip(a, b, strict=True)]


# --- training curves (train and playground) ----------------------------------------------------

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

    fig = _figure("curves")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1])
    ax_loss, ax_acc, ax_diff = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    styles = {"scratch": SCRATCH_STYLE, "torch": TORCH_STYLE}
    steps = range(1, len(step_losses["scratch"]) + 1)

    window = max(1, len(steps) // 100) if steps_per_epoch > 1 else 1  # mini-batch losses are noisy
    for name, losses in step_losses.items():
        if window > 1:
            ax_loss.plot(steps, losses, color=styles[name]["color"], linewidth=0.4, alpha=0.2)
        ax_loss.plot(steps[window - 1:], _moving_average(losses, window),
                     label=name + (f" (mean of {window} steps)" if window > 1 else ""), **styles[name])
    ax_loss.set(xlabel="training step", ylabel="loss of the step's batch", yscale="log",
                title="training loss, step by step")
    ax_loss.yaxis.set_minor_formatter(NullFormatter())  # labels on 2e-1, 3e-1, ... only crowd the axis
    _epoch_ticks(ax_loss, len(steps), steps_per_epoch)
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
    _epoch_ticks(ax_diff, len(steps), steps_per_epoch)
    ax_diff.legend(loc="upper left", fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, folder, "curves.png")


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    return t.unfold(0, window, 1).mean(dim=1).tolist() if window > 1 else t.tolist()


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


def _epoch_ticks(ax, n_steps: int, steps_per_epoch: int) -> None:
    """Thin vertical lines at epoch boundaries, when there are few enough to see."""
    epochs = n_steps // max(steps_per_epoch, 1)
    if 1 <= epochs <= 20:
        for e in range(1, epochs):
            ax.axvline(e * steps_per_epoch, color="gray", linewidth=0.5, alpha=0.5)


# --- train: weights, confusion matrices, mistakes ---------------------------------------------

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
    ws, wt = _cpu(weights["scratch"]), _cpu(weights["torch"])  # H,784
    n = min(len(ws), MAX_NEURON_IMAGES)
    cols = min(n, 4 if n <= 16 else 8)
    rows = math.ceil(n / cols)
    fig = _figure("first_layer")
    biggest = (ws - wt).abs().max().item()
    shown = f"first {n} of {len(ws)} neurons" if n < len(ws) else f"all {n} neurons"
    fig.suptitle(f"First hidden layer: each neuron's weights on the 28x28 pixels ({shown}; red < 0 < blue). "
                 f"Largest scratch-torch difference: {biggest:.2e}")
    _weight_grids(fig, ws.reshape(len(ws), *image_shape), wt.reshape(len(wt), *image_shape), n, rows, cols,
                  "neuron")
    return _save(fig, folder, "first_layer.png")


def confusion_matrices(folder: str | Path, confusions: dict[str, Tensor], classes: Sequence[str]) -> Path:
    """confusion.png: both confusion matrices, counts written in the cells, colour on a log scale."""
    from matplotlib.colors import LogNorm

    fig = _figure("confusion")
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
    return _save(fig, folder, "confusion.png")


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
    fig = _figure("misclassified")
    fig.suptitle(f"Misclassified test images, {len(shown)} of {len(wrong)} (scratch wrong on {int((ps != y).sum())}, "
                 f"torch on {int((pt != y).sum())}); first, in red, the {int(disagree.sum())} where they disagree")
    axes = fig.subplots(4, 8, squeeze=False)
    for ax, k in zip(axes.flat, [*shown.tolist(), *[None] * (axes.size - len(shown))], strict=True):
        ax.set_axis_off()
        if k is None:
            continue
        ax.imshow(_cpu(images[k]).numpy(), cmap="gray_r", vmin=0, vmax=1)
        same = int(ps[k]) == int(pt[k])
        guess = (f"both say {classes[int(ps[k])]}" if same
                 else f"scratch {classes[int(ps[k])]}\ntorch {classes[int(pt[k])]}")
        ax.set_title(f"true {classes[int(y[k])]}\n{guess}", fontsize=7, pad=2, color="black" if same else "tab:red")
    return _save(fig, folder, "misclassified.png")


def train_figures(folder: str | Path, config, records: dict, learners: Sequence, data, confusions: dict[str, Tensor],
                  title: str) -> list[Path]:
    """Every picture of `python -m compare train --plots DIR`."""
    steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
    paths = [training_curves(
        folder, {n: r.step_losses for n, r in records.items()},
        {"test accuracy": {n: [h.test_accuracy for h in r.history] for n, r in records.items()}},
        dtype=config.dtype, steps_per_epoch=steps_per_epoch,
        loss_tolerance=agreement.LOCKSTEP_LOSS_FLOAT64 if config.dtype == "float64" else None,
        title=title)]
    # The first parameter tensor of each: for a network whose first layer sees whole images, one image per neuron.
    weights = {learner.name: next(iter(learner.named_parameters().values())) for learner in learners}
    if next(iter(weights.values())).dim() == 2 and next(iter(weights.values())).shape[1] == 28 * 28:
        paths.append(first_layer_weights(folder, weights))
    paths.append(confusion_matrices(folder, confusions, data.classes))
    images = (data.x_test.detach().cpu().double() * data.std + data.mean).clamp(0, 1).reshape(-1, 28, 28)
    paths.append(misclassified(folder, images, data.y_test, {n: r.predictions for n, r in records.items()},
                               data.classes))
    return paths


# --- the vision transformer and the LSTM (pictures drawn for their families' train --plots) ----------

def attention_maps(folder: str | Path, image: Tensor, maps: dict[str, Sequence[Tensor]],
                   received: dict[str, Sequence[Tensor]], title: str) -> Path:
    """attention.png: for one digit, each transformer block's attention, scratch (top) beside torch (bottom).

    `image` [28, 28] pixel values in 0..1; `maps[side][k]` block k's attention weights [T, T] averaged over
    heads (row: the token that looks, column: the token looked at); `received[side][k]` [g, g] how much
    attention each patch gets, drawn over the digit on the patch grid.
    """
    sides = list(maps)
    depth = len(maps[sides[0]])
    fig = _figure("attention")
    biggest = max((_cpu(a) - _cpu(b)).abs().max().item() for a, b in zip(maps[sides[0]], maps[sides[-1]],
                                                                             strict=True))
    fig.suptitle(f"{title}. Largest scratch-torch difference of the weights: {biggest:.2e}")
    axes = fig.subplots(len(sides), 1 + 2 * depth, squeeze=False)
    pixels_ = _cpu(image).numpy()
    for row, side in zip(axes, sides, strict=True):
        row[0].imshow(pixels_, cmap="gray_r", vmin=0, vmax=1)
        row[0].set_title(f"{side}: the digit", fontsize=8)
        for k in range(depth):
            grid = _cpu(received[side][k])
            ax = row[1 + k]
            ax.imshow(pixels_, cmap="gray_r", vmin=0, vmax=1)
            size = len(pixels_)
            ax.imshow(grid.numpy(), cmap="magma", alpha=0.6, extent=(-0.5, size - 0.5, size - 0.5, -0.5),
                      interpolation="nearest")
            ax.set_title(f"block {k}: attention\nreceived per patch", fontsize=8)
            full = row[1 + depth + k]
            full.imshow(_cpu(maps[side][k]).numpy(), cmap="viridis", vmin=0)
            full.set_title(f"block {k}: weights\n(row looks at column)", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, folder, "attention.png")


def hidden_states(folder: str | Path, image: Tensor, states: dict[str, Tensor], title: str) -> Path:
    """hidden_states.png: the recurrent network's hidden state after each row of one digit, [T, H] per side,
    drawn with time (the rows read so far) across; the digit beside them."""
    sides = list(states)
    a, b = (_cpu(states[side]) for side in (sides[0], sides[-1]))  # T,H each
    fig = _figure("hidden_states")
    fig.suptitle(f"{title}. Largest scratch-torch difference: {(a - b).abs().max().item():.2e}")
    axes = fig.subplots(1, 1 + len(sides), squeeze=False, width_ratios=[1] + [2] * len(sides))[0]
    axes[0].imshow(_cpu(image).numpy(), cmap="gray_r", vmin=0, vmax=1)
    axes[0].set(title="the digit, read row by row", xticks=[], yticks=[])
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-12)
    for ax, side in zip(axes[1:], sides, strict=True):
        shown = ax.imshow(_cpu(states[side]).T.numpy(), cmap="RdBu", vmin=-scale, vmax=scale, aspect="auto",
                          interpolation="nearest")
        ax.set(title=f"{side}: hidden state h_t", xlabel="row t read", ylabel="hidden unit")
    fig.colorbar(shown, ax=list(axes[1:]), shrink=0.8, label="h (red < 0 < blue)")
    return _save(fig, folder, "hidden_states.png")


# --- convolutional networks: filters and feature maps ---------------------------------------------

def conv_filters(folder: str | Path, weights: dict[str, Tensor]) -> Path:
    """conv_filters.png: the first convolution's filters as small images, scratch beside torch.

    `weights` are [O, C, k, k] per side; a filter over several input channels is drawn on its
    first channel. Red is negative, blue positive; a filter's two images share one colour scale.
    """
    ws, wt = _cpu(weights["scratch"])[:, 0], _cpu(weights["torch"])[:, 0]  # O,k,k
    n = min(len(ws), MAX_FILTERS)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = _figure("conv_filters")
    biggest = (_cpu(weights["scratch"]) - _cpu(weights["torch"])).abs().max().item()
    k = ws.shape[-1]
    fig.suptitle(f"First convolution: its {n} {k}x{k} filters (red < 0 < blue). "
                 f"Largest scratch-torch difference: {biggest:.2e}")
    _weight_grids(fig, ws, wt, n, rows, cols, "filter")
    return _save(fig, folder, "conv_filters.png")


def feature_maps(folder: str | Path, image: Tensor, maps: dict[str, Sequence[Tensor]], title: str) -> Path:
    """feature_maps.png: one test image and, after each conv stage, its feature maps, scratch above torch.

    `image` is [S, S]; `maps[side][k]` is stage k's output [C_k, H_k, W_k]. Row k of each side shows
    stage k's first MAX_FEATURE_MAPS channels; a channel's two maps share one colour scale.
    """
    stages = [[_cpu(m) for m in maps[name]] for name in ("scratch", "torch")]
    cols = min(max(len(m) for m in stages[0]), MAX_FEATURE_MAPS)
    fig = _figure("feature_maps")
    biggest = max((a - b).abs().max().item() for a, b in zip(*stages, strict=True))
    fig.suptitle(f"{title}. Largest scratch-torch difference: {biggest:.2e}")
    left, right = fig.subfigures(1, 2, wspace=0.02, width_ratios=(1, 6))
    ax = left.subplots()
    ax.imshow(_cpu(image).numpy(), cmap="gray_r")
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
    return _save(fig, folder, "feature_maps.png")


# --- grads ----------------------------------------------------------------------------------------

def gradient_errors(folder: str | Path, parameters: Sequence[dict], autograd_tolerance, finite_diff_tolerance,
                    dtype: str) -> Path:
    """grads.png: per parameter, the scratch gradient's relative error against autograd and against
    finite differences (log scale), each with its tolerance drawn as a line."""
    import numpy as np

    fig = _figure("grads")
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
    return _save(fig, folder, "grads.png")


# --- playground ---------------------------------------------------------------------------------

def _playground_cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("playground", [ORANGE, "#ffffff", BLUE])


def _draw_plane(ax, probability: Tensor, x: Tensor, y: Tensor, domain: float, title: str,
                point_size: float = 14) -> None:
    """One panel: p(class 1) on the plane as colour, the 0.5 contour, and the points."""
    extent = (-domain, domain, -domain, domain)
    ax.imshow(_cpu(probability).numpy(), origin="lower", extent=extent, cmap=_playground_cmap(), vmin=0, vmax=1,
              alpha=0.75, interpolation="bilinear")
    ticks = torch.linspace(-domain, domain, probability.shape[0]).numpy()
    _boundary_line(ax, ticks, _cpu(probability).numpy())
    x, y = _cpu(x), y.cpu()
    for label, colour in ((0, ORANGE), (1, BLUE)):
        pts = x[y == label]
        ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), s=point_size, color=colour, edgecolors="white", linewidths=0.6)
    ax.set(xlim=(-domain, domain), ylim=(-domain, domain), aspect="equal", title=title, xlabel="x1", ylabel="x2")
    ax.tick_params(labelsize=7)


def _boundary_line(ax, ticks, probability) -> None:
    """The p = 0.5 contour, labelled so that an animation can replace it."""
    import warnings

    with warnings.catch_warnings():  # an untrained network may say one class everywhere: no line to draw
        warnings.simplefilter("ignore", UserWarning)
        ax.contour(ticks, ticks, probability, levels=[0.5], colors="black", linewidths=1).set_label("boundary")


def decision_boundaries(folder: str | Path, probabilities: dict[str, Tensor], x: Tensor, y: Tensor, domain: float,
                        titles: dict[str, str], suptitle: str) -> Path:
    """boundary.png: each network's p(class 1) over the plane, scratch beside torch, with the training points."""
    fig = _figure("boundary")
    for ax, (name, p) in zip(fig.subplots(1, len(probabilities)), probabilities.items(), strict=True):
        _draw_plane(ax, p, x, y, domain, titles[name])
    fig.suptitle(suptitle)
    return _save(fig, folder, "boundary.png")


def neurons_size(layers: Sequence[Tensor]) -> tuple[float, float]:
    """About 0.75 inch per neuron map, one row per hidden layer, plus room for the title."""
    cols = max(m.shape[-1] for m in layers)
    cell = 0.75 if cols >= 8 else 6.0 / cols  # narrow layers get bigger maps, not a tiny figure
    return cols * cell + 0.6, len(layers) * (cell + 0.15) + 0.7


def hidden_neurons(folder: str | Path, layers: Sequence[Tensor], domain: float, suptitle: str) -> Path:
    """neurons.png: what each hidden neuron computes on the plane, one row per hidden layer.

    `layers[k]` is [G, G, width_k]: layer k's activations at every point of a G x G grid. As in
    Playground, orange is negative, white zero and blue positive, on one scale per layer
    (so a ReLU layer shows no orange, and a weak neuron looks pale).
    """
    size = neurons_size(layers)
    fig = _figure("neurons", size)
    cols = max(m.shape[-1] for m in layers)
    axes = fig.subplots(len(layers), cols, squeeze=False)
    extent = (-domain, domain, -domain, domain)
    for k, maps in enumerate(layers):
        scale = max(_cpu(maps).abs().max().item(), 1e-12)
        for j, ax in enumerate(axes[k]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= maps.shape[-1]:
                ax.set_axis_off()
                continue
            m = _cpu(maps[..., j]).numpy()
            ax.imshow(m, origin="lower", extent=extent, cmap=_playground_cmap(), vmin=-scale, vmax=scale,
                      interpolation="bilinear")
            if j == 0:
                ax.set_ylabel(f"layer {k + 1}", fontsize=8)
            ax.set_title(f"{j}", fontsize=7, pad=1)
    fig.suptitle(suptitle, fontsize=10)
    return _save(fig, folder, "neurons.png")


def boundary_animation(folder: str | Path, frames: Sequence[dict], x: Tensor, y: Tensor, domain: float,
                       ms_per_frame: int = 120) -> Path:
    """boundary.gif: scratch's and torch's decision boundaries, frame by frame during training.

    Each frame is {"epoch": int, "loss": {"scratch": float, "torch": float},
    "probability": {"scratch": [G,G], "torch": [G,G]}}. One figure is drawn once and only its
    images, boundary lines and titles change from frame to frame (laying out a new figure per
    frame took most of the time); Pillow, which matplotlib already depends on, joins the frames.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=SIZES["gif"], dpi=GIF_DPI)
    FigureCanvasAgg(fig)
    names = list(frames[0]["probability"])
    axes = fig.subplots(1, len(names))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.84, wspace=0.2)
    first = {n: frames[0]["probability"][n] for n in names}
    for ax, name in zip(axes, names, strict=True):
        _draw_plane(ax, first[name], x, y, domain, name, point_size=6)
    ticks = torch.linspace(-domain, domain, first[names[0]].shape[0]).numpy()
    heading = fig.suptitle("")
    images = []
    for frame in frames:
        for ax, name in zip(axes, names, strict=True):
            p = _cpu(frame["probability"][name]).numpy()
            ax.images[0].set_data(p)
            for old in ax.collections[:]:  # the previous frame's boundary line (the points are kept)
                if old.get_label() == "boundary":
                    old.remove()
            _boundary_line(ax, ticks, p)
            loss = frame["loss"].get(name)
            ax.set_title(name + (f", loss {loss:.3f}" if loss is not None else ", untrained"))
        heading.set_text(f"epoch {frame['epoch']}")
        fig.canvas.draw()
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        images.append(Image.fromarray(rgb).quantize(colors=32, method=Image.Quantize.FASTOCTREE,
                                                    dither=Image.Dither.NONE))
    path = Path(folder) / "boundary.gif"
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [ms_per_frame] * (len(images) - 1) + [2000]  # rest on the final boundary
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=True)
    return path


# --- training health (train --plots; recorded by compare/diagnostics.py) --------------------------------------

HEALTHY_UPDATE_RATIO = 1e-3  # std(update) / std(weights) around which a layer learns at a healthy pace


def _histogram_pair(ax, values: dict[str, Tensor], title: str, xlabel: str) -> None:
    styles = {"scratch": SCRATCH_STYLE, "torch": TORCH_STYLE}
    low = min(_cpu(v).min().item() for v in values.values())
    high = max(_cpu(v).max().item() for v in values.values())
    bins = torch.linspace(low, high if high > low else low + 1, 61).numpy()
    for name, v in values.items():
        ax.hist(_cpu(v).numpy(), bins=bins, histtype="step", density=True, label=name, **styles[name])
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
    fig = _figure("activations", (12.0, 2.6 * rows + 0.8))
    for row in range(rows):
        for col, (when, health) in enumerate([("at initialization", diagnostics.initial),
                                              ("after training", diagnostics.final)]):
            ax = fig.add_subplot(rows, 2, 2 * row + col + 1)
            layer = health[sides[0]][row]
            _histogram_pair(ax, {side: health[side][row].activations for side in sides},
                            _health_title(layer, when), "activation")
    if title:
        fig.suptitle(title, fontsize="medium")
    return _save(fig, folder, "activations.png")


def gradient_histograms(folder: str | Path, diagnostics, title: str = "") -> Path:
    """gradients.png: each weight matrix's gradient at the last training step, scratch over torch."""
    sides = list(diagnostics.gradients)
    names = list(diagnostics.gradients[sides[0]])
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _figure("gradients", (12.0, 2.8 * rows + 0.8))
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        g = diagnostics.gradients[sides[0]][name]
        _histogram_pair(ax, {side: diagnostics.gradients[side][name] for side in sides},
                        f"{name}: gradient std {g.std().item():.1e}, mean {g.mean().item():+.1e}", "gradient")
    if title:
        fig.suptitle(title, fontsize="medium")
    return _save(fig, folder, "gradients.png")


def update_ratios(folder: str | Path, ratios: dict[str, dict[str, Sequence[float]]], steps_per_epoch: int,
                  title: str = "") -> Path:
    """update_ratio.png: std(update) / std(weights) of each weight matrix at every step, log scale; one colour per
    matrix, scratch solid and torch dashed; the grey line is the ~1e-3 of a layer that learns at a healthy pace."""
    fig = _figure("update_ratio")
    ax = fig.add_subplot(1, 1, 1)
    colours = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink"]
    styles = {"scratch": dict(linestyle="-", linewidth=1.2), "torch": dict(linestyle=(0, (4, 3)), linewidth=1.0)}
    for side, per_weight in ratios.items():
        for k, (name, values) in enumerate(per_weight.items()):
            window = max(1, len(values) // 200)  # one step is noisy: a moving average shows the trend
            smooth = [max(v, LOG_FLOOR) for v in _moving_average(values, window)]
            ax.plot(range(window, len(values) + 1), smooth, color=colours[k % len(colours)],
                    label=f"{side} {name}", **styles[side])
    ax.axhline(HEALTHY_UPDATE_RATIO, color="gray", linestyle=":", label="1e-3: a healthy pace")
    ax.set(xlabel="training step", ylabel="std(update) / std(weights)", yscale="log",
           title="how much each step changes each weight matrix, relative to its size")
    _epoch_ticks(ax, len(next(iter(next(iter(ratios.values())).values()))), steps_per_epoch)
    ax.legend(fontsize="x-small", ncol=2)
    if title:
        fig.suptitle(title, fontsize="medium")
    return _save(fig, folder, "update_ratio.png")


def training_health(folder: str | Path, diagnostics, steps_per_epoch: int, title: str = "") -> list[Path]:
    """The pictures of a compare.diagnostics.TrainingDiagnostics: activations.png (when the family's model has
    hidden activation layers to walk), gradients.png, update_ratio.png."""
    paths = []
    if diagnostics.final and all(diagnostics.final.values()):
        paths.append(activation_histograms(folder, diagnostics, title))
    if diagnostics.gradients and all(diagnostics.gradients.values()):
        paths.append(gradient_histograms(folder, diagnostics, title))
    paths.append(update_ratios(folder, diagnostics.update_ratios, steps_per_epoch, title))
    return paths
