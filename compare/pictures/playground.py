"""The playground's pictures, as TensorFlow Playground draws them: decision boundaries, hidden neurons, an animation.

    python -m compare playground --plots pictures/ --gif      # boundary.png, neurons.png, curves.png, boundary.gif

On the plane, class 0 is orange and class 1 blue, as in TensorFlow Playground.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from compare.pictures.canvas import GIF_DPI, SIZES, cpu, figure, save

ORANGE, BLUE = "#f59322", "#0877bd"  # Playground's class colours


def _playground_cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("playground", [ORANGE, "#ffffff", BLUE])


def _draw_plane(ax, probability: Tensor, x: Tensor, y: Tensor, domain: float, title: str,
                point_size: float = 14) -> None:
    """One panel: p(class 1) on the plane as colour, the 0.5 contour, and the points."""
    extent = (-domain, domain, -domain, domain)
    ax.imshow(cpu(probability).numpy(), origin="lower", extent=extent, cmap=_playground_cmap(), vmin=0, vmax=1,
              alpha=0.75, interpolation="bilinear")
    ticks = torch.linspace(-domain, domain, probability.shape[0]).numpy()
    _boundary_line(ax, ticks, cpu(probability).numpy())
    x, y = cpu(x), y.cpu()
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
    fig = figure("boundary")
    for ax, (name, p) in zip(fig.subplots(1, len(probabilities)), probabilities.items(), strict=True):
        _draw_plane(ax, p, x, y, domain, titles[name])
    fig.suptitle(suptitle)
    return save(fig, folder, "boundary.png")


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
    fig = figure("neurons", size)
    cols = max(m.shape[-1] for m in layers)
    axes = fig.subplots(len(layers), cols, squeeze=False)
    extent = (-domain, domain, -domain, domain)
    for k, maps in enumerate(layers):
        scale = max(cpu(maps).abs().max().item(), 1e-12)
        for j, ax in enumerate(axes[k]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= maps.shape[-1]:
                ax.set_axis_off()
                continue
            m = cpu(maps[..., j]).numpy()
            ax.imshow(m, origin="lower", extent=extent, cmap=_playground_cmap(), vmin=-scale, vmax=scale,
                      interpolation="bilinear")
            if j == 0:
                ax.set_ylabel(f"layer {k + 1}", fontsize=8)
            ax.set_title(f"{j}", fontsize=7, pad=1)
    fig.suptitle(suptitle, fontsize=10)
    return save(fig, folder, "neurons.png")


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
            p = cpu(frame["probability"][name]).numpy()
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
