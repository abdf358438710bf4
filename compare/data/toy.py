"""Two-dimensional toy datasets, as in TensorFlow Playground: each point (x1, x2) is one of two classes.

    >>> from compare.data.toy import make_toy
    >>> x, y = make_toy("spiral", samples=500, noise=0.1, seed=0)
    >>> x.shape, y.shape        # (torch.Size([500, 2]), torch.Size([500])); y is 0 or 1

The generators follow Playground's own (its `dataset.ts`), in its units: points lie in
about [-6, 6] x [-6, 6], and `noise` is Playground's noise slider divided by 100 (0 to 0.5).

- circles:  class 1 inside a disc of radius 2.5, class 0 on a ring from 3.5 to 5.
- xor:      uniform points; class 1 where x1 * x2 >= 0 (first and third quadrants).
- gaussian: two round blobs, class 1 around (2, 2), class 0 around (-2, -2).
- spiral:   two interleaved arms of 1.75 turns each, half a turn apart.

and two for regression, whose target is a number in [-1, 1] (float64) instead of a class:

- plane:           uniform points; the target rises linearly along x1 + x2, from -1 at (-5, -5) to 1 at (5, 5).
- multi-gaussian:  six bumps of +1 and -1 in two rows; the target is the strongest bump's at the point.

Class 0 (or -1) is drawn orange and class 1 (or +1) blue, Playground's colours. Everything is drawn
from a `torch.Generator` seeded with `seed`, so a seed always gives the same points.

`features(x, names)` makes Playground's input features of the points: x1, x2, x1^2, x2^2, x1*x2, sin x1, sin x2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DATASETS = ("circles", "gaussian", "spiral", "xor")  # classification: y is 0 or 1
REGRESSION_DATASETS = ("plane", "multi-gaussian")  # regression: y is a number in [-1, 1]
CLASSES = ("0", "1")
DOMAIN = 6.0  # plots show the square [-DOMAIN, DOMAIN]^2, as Playground does
MAX_NOISE = 0.5  # Playground's slider goes from 0 to 50 (%)
RADIUS = 5.0  # the scale of every dataset: spiral and ring radius, xor half-width


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def _circles(n: int, noise: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    inner, outer = n // 2, n - n // 2
    r = torch.cat([_uniform(inner, 0, RADIUS * 0.5, g), _uniform(outer, RADIUS * 0.7, RADIUS, g)])
    angle = _uniform(n, 0, 2 * math.pi, g)
    x = torch.stack([r * torch.sin(angle), r * torch.cos(angle)], dim=1)  # N,2
    # Playground's noise moves the point only when deciding its label, so noisy labels
    # appear near the gap between disc and ring while the points stay where they were drawn.
    nudged = x + _uniform(2 * n, -RADIUS, RADIUS, g).reshape(n, 2) * noise
    y = (nudged.norm(dim=1) < RADIUS * 0.5).long()
    return x, y


def _xor(n: int, noise: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    x = _uniform(2 * n, -RADIUS, RADIUS, g).reshape(n, 2)
    x = x + 0.3 * torch.sign(x)  # a little padding keeps points off the axes, where the class flips
    nudged = x + _uniform(2 * n, -RADIUS, RADIUS, g).reshape(n, 2) * noise
    y = (nudged[:, 0] * nudged[:, 1] >= 0).long()
    return x, y


def _gaussian(n: int, noise: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    variance = 0.5 + (4.0 - 0.5) * noise / MAX_NOISE  # Playground maps noise 0..0.5 to variance 0.5..4
    positives, negatives = n // 2, n - n // 2
    centers = torch.tensor([[2.0, 2.0]] * positives + [[-2.0, -2.0]] * negatives, dtype=torch.float64)
    x = centers + math.sqrt(variance) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.cat([torch.ones(positives, dtype=torch.long), torch.zeros(negatives, dtype=torch.long)])
    return x, y


def _spiral(n: int, noise: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    arms = []
    for label, size, turn in [(1, n // 2, 0.0), (0, n - n // 2, math.pi)]:
        i = torch.arange(size, dtype=torch.float64) / size  # 0 .. 1 along the arm
        r, t = i * RADIUS, 1.75 * i * 2 * math.pi + turn
        xy = torch.stack([r * torch.sin(t), r * torch.cos(t)], dim=1)  # size,2
        xy = xy + _uniform(2 * size, -1, 1, g).reshape(size, 2) * noise
        arms.append((xy, torch.full((size,), label, dtype=torch.long)))
    return torch.cat([a[0] for a in arms]), torch.cat([a[1] for a in arms])


def _plane(n: int, noise: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    x = _uniform(2 * n, -DOMAIN, DOMAIN, g).reshape(n, 2)
    nudged = x + _uniform(2 * n, -DOMAIN, DOMAIN, g).reshape(n, 2) * noise
    return x, (nudged.sum(dim=1) / 10).clamp(-1, 1)  # Playground's scale: x1 + x2 from -10..10 to -1..1


GAUSSIAN_BUMPS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))  # x1, x2, sign


def _multi_gaussian(n: int, noise: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    x = _uniform(2 * n, -DOMAIN, DOMAIN, g).reshape(n, 2)
    nudged = x + _uniform(2 * n, -DOMAIN, DOMAIN, g).reshape(n, 2) * noise
    centres = torch.tensor([b[:2] for b in GAUSSIAN_BUMPS], dtype=torch.float64)  # 6,2
    signs = torch.tensor([b[2] for b in GAUSSIAN_BUMPS], dtype=torch.float64)  # 6
    heights = signs * (1 - torch.cdist(nudged, centres) / 2).clamp(0, 1)  # N,6: 1 at a centre, 0 from distance 2
    strongest = heights.abs().argmax(dim=1, keepdim=True)  # the bump largest in absolute value, as Playground
    return x, heights.gather(1, strongest).squeeze(1)


_GENERATORS = {"circles": _circles, "gaussian": _gaussian, "spiral": _spiral, "xor": _xor, "plane": _plane,
               "multi-gaussian": _multi_gaussian}
FEATURES = {  # Playground's input features, by the names the live playground's API takes
    "x1": lambda x: x[:, 0], "x2": lambda x: x[:, 1], "x1_squared": lambda x: x[:, 0] ** 2,
    "x2_squared": lambda x: x[:, 1] ** 2, "x1_times_x2": lambda x: x[:, 0] * x[:, 1],
    "sin_x1": lambda x: torch.sin(x[:, 0]), "sin_x2": lambda x: torch.sin(x[:, 1]),
}


def features(x: Tensor, names: list[str] | tuple[str, ...]) -> Tensor:
    """The points x [N, 2] as the input features `names` (keys of FEATURES), in that order: [N, len(names)]."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ValueError(f"unknown or no input features {unknown}; choose from {', '.join(FEATURES)}")
    return torch.stack([FEATURES[n](x) for n in names], dim=1)


def plane_grid(resolution: int, dtype: torch.dtype = torch.float64, device: str = "cpu") -> Tensor:
    """G*G points covering [-DOMAIN, DOMAIN]^2, row by row from the bottom (x2) and left (x1): [G*G, 2]. The
    pictures of the playground command and the live playground's heatmaps are drawn on it."""
    ticks = torch.linspace(-DOMAIN, DOMAIN, resolution, dtype=dtype, device=device)
    x2, x1 = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([x1.flatten(), x2.flatten()], dim=1)


def make_toy(name: str, samples: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """`samples` points of dataset `name`, shuffled: x [samples, 2] float64, y [samples] int64 (0 or 1), or
    float64 in [-1, 1] for a dataset of REGRESSION_DATASETS."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown toy dataset {name!r}; choose one of {', '.join(_GENERATORS)}")
    if samples < 2:
        raise ValueError(f"a toy dataset needs at least 2 samples (one per class), got {samples}")
    if not 0 <= noise <= MAX_NOISE:
        raise ValueError(f"noise must be between 0 and {MAX_NOISE} (Playground's 0-50%), got {noise}")
    g = torch.Generator().manual_seed(seed)
    x, y = _GENERATORS[name](samples, noise, g)
    order = torch.randperm(samples, generator=g)  # the generators emit one class after the other
    return x[order], y[order]


def train_test_split(name: str, samples: int, noise: float, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A training set of `samples` points and an independent test set of as many, both from `seed`."""
    x, y = make_toy(name, 2 * samples, noise, seed)
    return x[:samples], y[:samples], x[samples:], y[samples:]
