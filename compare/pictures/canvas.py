"""What every picture shares: the optional matplotlib, the figure sizes, the two sides' styles, writing a PNG.

matplotlib is an optional extra (`pip install -e '.[plots]'`) and is imported only when a
picture is asked for, so every command works without it. Figures are drawn on
`matplotlib.figure.Figure` objects with the Agg canvas, never through `pyplot`: no window,
no display, no global backend switch, so it runs headless on any server. Every figure has
a fixed size in inches at `DPI` dots per inch, so its PNG has exactly `pixels(name)` pixels.

Colours: scratch is drawn solid red, torch dashed blue on top of it, so where the two lines
coincide both stay visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

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


def figure(name: str, size: tuple[float, float] | None = None):
    from matplotlib.figure import Figure

    return Figure(figsize=size or SIZES[name], dpi=DPI, layout="constrained")


def save(fig, folder: str | Path, filename: str) -> Path:
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


def cpu(t: Tensor) -> Tensor:
    """A float64 CPU copy; matplotlib gets `.numpy()` of it (a tensor would go through a deprecated path)."""
    return t.detach().to("cpu", torch.float64)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    return t.unfold(0, window, 1).mean(dim=1).tolist() if window > 1 else t.tolist()


def epoch_ticks(ax, n_steps: int, steps_per_epoch: int) -> None:
    """Thin vertical lines at epoch boundaries, when there are few enough to see."""
    epochs = n_steps // max(steps_per_epoch, 1)
    if 1 <= epochs <= 20:
        for e in range(1, epochs):
            ax.axvline(e * steps_per_epoch, color="gray", linewidth=0.5, alpha=0.5)
