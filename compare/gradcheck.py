"""Central finite differences: a gradient check that needs no calculus at all.

    dL/dp_i  ~  (L(p + h e_i) - L(p - h e_i)) / (2h)

The error is ~h^2 * L'''/6 (truncation) plus ~eps*|L|/h (rounding), so it is done in float64,
with a step that depends on the activation (`step_for`):

- smooth networks (sigmoid, tanh, GELU): h = 1e-5, where rounding (~2e-16 * 2.3 / 1e-5 ~ 5e-11
  absolute) and truncation (~1e-10) are both far below the 1e-7 tolerance;
- networks with kinks (ReLU, LeakyReLU): h = 1e-6. A nudge of 1e-5 pushes some pre-activation
  across 0 on real MNIST, and the difference quotient then mixes two slopes (measured: a
  "relative error" of 1e-2 for a correct gradient); at 1e-6 that no longer happens, at the
  price of 10x more rounding error (still ~1e-8 relative).

A kink can still fall between p - h and p + h: with max pooling, two entries of a window a
hair apart swap places (measured on random test images: relative errors of 1e-3 at 2 of 78
coordinates of a correct convolution). `finite_difference_slopes` also returns the one-sided
slopes' disagreement |s+ - s-|, with s+ = (L(p + h e_i) - L(p)) / h and s- = (L(p) - L(p - h e_i)) / h:
where L is smooth they differ by h L'' (1e-6 L''), at a kink by the jump in slope. A coordinate
whose disagreement exceeds KINK_RTOL times the gradient's scale is not differentiable there; the
`grads` command reports how many and judges the others (as compare/checking does). The
disagreement depends on the loss alone, not on the gradient under test, so a wrong backward
cannot hide behind it.

Small networks are checked at every coordinate; larger ones at a random sample that covers
every parameter tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from compare.models.family import KINKED_ACTIVATIONS

FD_STEP = 1e-6  # for networks with kinks (see the module docstring)
FD_STEP_SMOOTH = 1e-5  # for smooth networks
# |s+ - s-| above this times max|gradient|: a kink inside the nudge. At a kink the central difference is off by up
# to half the disagreement, so the threshold sits far below compare/checking's 1e-3 (which judges directions, not
# coordinates against 1e-7). Measured (LeNet-5, float64, h = 1e-6, batch 32 of random images): smooth coordinates
# disagree by at most 1.4e-7 of max|gradient| (rounding, eps |L| / h), the kinks by 1.4e-4 to 3.3e-3.
KINK_RTOL = 1e-5
FULL_CHECK_LIMIT = 20_000  # networks with at most this many parameters: every coordinate is checked
SAMPLE_SIZE = 2_000  # otherwise about this many coordinates in all ...
MIN_PER_TENSOR = 20  # ... and at least this many (or all) in every tensor


def step_for(activation: str) -> float:
    return FD_STEP if activation in KINKED_ACTIVATIONS else FD_STEP_SMOOTH


def choose_coordinates(params: dict[str, Tensor], seed: int = 0) -> dict[str, Tensor]:
    """Flat indices to check in each tensor: all of them, or a seeded random sample."""
    total = sum(p.numel() for p in params.values())
    generator = torch.Generator().manual_seed(seed)
    chosen = {}
    for name, p in params.items():
        if total <= FULL_CHECK_LIMIT:
            chosen[name] = torch.arange(p.numel())
        else:
            k = min(p.numel(), max(MIN_PER_TENSOR, round(SAMPLE_SIZE * p.numel() / total)))
            chosen[name] = torch.randperm(p.numel(), generator=generator)[:k].sort().values
    return chosen


@torch.no_grad()
def finite_difference(loss_at: Callable[[], float], param: Tensor, coords: Tensor, h: float = FD_STEP) -> Tensor:
    """Numerical dL/dparam at the flat indices `coords`; `param` is nudged in place and restored."""
    if param.dtype != torch.float64:
        raise TypeError(f"finite differences need float64 parameters, got {param.dtype}")
    flat = param.view(-1)
    grads = torch.empty(len(coords), dtype=torch.float64)
    for k, i in enumerate(coords.tolist()):
        original = flat[i].item()
        flat[i] = original + h
        plus = loss_at()
        flat[i] = original - h
        minus = loss_at()
        flat[i] = original
        grads[k] = (plus - minus) / (2 * h)
    return grads


@torch.no_grad()
def finite_difference_slopes(loss_at: Callable[[], float], param: Tensor, coords: Tensor, h: float = FD_STEP,
                             progress: Callable[[int], object] | None = None) -> tuple[Tensor, Tensor]:
    """(central differences, |s+ - s-|) at the flat indices `coords`: as `finite_difference`, plus the
    disagreement of the one-sided slopes, which flags a kink inside [p - h, p + h] (see the docstring).
    `progress(1)` is called after each coordinate (a progress bar's `update`)."""
    if param.dtype != torch.float64:
        raise TypeError(f"finite differences need float64 parameters, got {param.dtype}")
    base = loss_at()
    flat = param.view(-1)
    central = torch.empty(len(coords), dtype=torch.float64)
    disagreement = torch.empty(len(coords), dtype=torch.float64)
    for k, i in enumerate(coords.tolist()):
        original = flat[i].item()
        flat[i] = original + h
        plus = loss_at()
        flat[i] = original - h
        minus = loss_at()
        flat[i] = original
        central[k] = (plus - minus) / (2 * h)
        disagreement[k] = abs((plus - base) - (base - minus)) / h
        if progress is not None:
            progress(1)
    return central, disagreement


def finite_difference_error(numeric: Tensor, analytic: Tensor, coords: Tensor) -> float:
    """max|numeric - analytic| over the checked coordinates, relative to max|analytic| over the whole tensor."""
    flat = analytic.detach().reshape(-1).double().cpu()
    if len(coords) == 0:
        return 0.0
    return (numeric - flat[coords]).abs().max().item() / max(flat.abs().max().item(), 1e-300)
