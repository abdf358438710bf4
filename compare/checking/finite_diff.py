"""Finite differences, the gradient check that needs no calculus: for a layer under the checker, and for a network.

    central:      dL/dp_i  ~  (L(p + h e_i) - L(p - h e_i)) / 2h          error ~h^2 L''' / 6 + rounding / h
    one-sided:    s+ = (L(p + h e_i) - L(p)) / h,   s- = (L(p) - L(p - h e_i)) / h
    directional:  <dL/dp, v>  ~  (L(p + h v) - L(p - h v)) / 2h            (as JAX's check_grads)

Where L is smooth, s+ and s- differ by h L'' only. Where a kink (a ReLU at 0, a tie in a max) lies within h
of p, they differ by the jump in slope, and the central difference lands anywhere between the two slopes: a
correct gradient would be reported wrong. So a coordinate (or direction) whose one-sided slopes disagree by
more than a threshold times the gradient's scale is reported as non-differentiable there and left out of the
comparison, with a count; it is never covered by a looser tolerance. The disagreement depends on the loss
alone, not on the gradient under test, so a wrong backward cannot hide behind it.

Two users, one half of this module each:

- The layer checker (compare/checking/backward.py), with the fake loss L = sum(out * dout), dout a random
  upstream gradient: `coordinate_slopes` and `directional_slopes`, with the step and tolerances of
  `Settings`. Differences are taken of the outputs first, then dotted with dout: L(p + h e_i) - L(p - h e_i)
  = sum((out+ - out-) * dout). The outputs a nudge does not touch cancel exactly, so the rounding of a sum
  over every output (large for a big layer) never enters the difference. Nothing here knows about layers: a
  `Nudge` moves one coordinate (or the tensor along one direction) by a step, runs the forward pass, puts
  the value back and returns the output.

- A whole network's loss on one batch (`python -m compare grads`, and tests of layers and losses): `loss_at()`
  returns the scalar loss, and `finite_difference` / `finite_difference_slopes` nudge one parameter tensor
  in place. In float64, with a step that depends on whether the network has kinks (`step_for`):

  - smooth networks (sigmoid, tanh, GELU): h = 1e-5, where rounding (~2e-16 * 2.3 / 1e-5 ~ 5e-11
    absolute) and truncation (~1e-10) are both far below the 1e-7 tolerance;
  - networks with kinks (ReLU, LeakyReLU, max pooling): h = 1e-6. A nudge of 1e-5 pushes some
    pre-activation across 0 on real MNIST, and the difference quotient then mixes two slopes (measured: a
    "relative error" of 1e-2 for a correct gradient); at 1e-6 that no longer happens, at the price of 10x
    more rounding error (still ~1e-8 relative).

  A kink can still fall between p - h and p + h: with max pooling, two entries of a window a hair apart swap
  places (measured on random test images: relative errors of 1e-3 at 2 of 78 coordinates of a correct
  convolution). `finite_difference_slopes` also returns |s+ - s-|, and a coordinate above KINK_RTOL times
  the gradient's scale is left out (`grads` reports how many). Small networks are checked at every
  coordinate; larger ones at a random sample that covers every parameter tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from compare.base.agreement import AUTOGRAD_EXPRESSIONS_FLOAT64, AUTOGRAD_FLOAT32, FINITE_DIFF_FLOAT64, Tolerance

# ----------------------------------------------------------------------------- a layer under the checker


@dataclass(frozen=True)
class Settings:
    """The step, the tolerances and the kink threshold of one floating-point type."""

    dtype: torch.dtype
    reference: Tolerance  # the target's gradients against torch.autograd on its reference
    step: float  # h
    coordinates: Tolerance  # |numeric - analytic| <= rtol * max|analytic| over the whole tensor
    directions: Tolerance  # |numeric - <g, v>| <= rtol * |g| |v|
    kink_rtol: float  # |s+ - s-| above this times the gradient's scale: not differentiable there


# float64: h = 1e-6 keeps rounding (~eps |out| / h ~ 2e-10 |out|) and truncation (~1e-12 L''') far below
# 1e-7, and the smooth part of s+ - s- (h L'' = 1e-6 L'') far below the kink threshold 1e-3.
# Against the reference: 1e-10 relative, with agreement's 1e-13 absolute floor for gradients that cancel to 0.
FLOAT64 = Settings(torch.float64, AUTOGRAD_EXPRESSIONS_FLOAT64, 1e-6, FINITE_DIFF_FLOAT64,
                   Tolerance("directional-derivative-float64", rtol=1e-7), kink_rtol=1e-3)
# float32 (only when forced): eps is 1.2e-7, so h must be ~1e-3 and rounding alone is ~1e-4 |out|;
# 1e-2 passes correct layers, and a bug that moves a gradient by less than about 1% goes unseen.
FLOAT32 = Settings(torch.float32, AUTOGRAD_FLOAT32, 1e-3, Tolerance("finite-difference-float32", rtol=1e-2),
                   Tolerance("directional-derivative-float32", rtol=1e-2), kink_rtol=5e-2)


def settings_for(dtype: torch.dtype) -> Settings:
    return FLOAT64 if dtype == torch.float64 else FLOAT32


# nudge(i, step) -> (the output with flat coordinate i moved by step, the step actually taken after rounding)
Nudge = Callable[[int, float], tuple[Tensor, float]]
# nudge_along(v, step) -> the output with the whole tensor moved by step * v
NudgeAlong = Callable[[Tensor, float], Tensor]


ROUNDING = 8  # rounding error of one output entry, in units of eps * max|out| (a few operations' worth, with room)


@dataclass
class Slopes:
    """Difference quotients of L at k coordinates (or along k directions), float64."""

    central: Tensor  # k
    forward: Tensor  # k, s+
    backward: Tensor  # k, s-
    # k: the rounding error of the central difference, ROUNDING * eps * max|out| * sum |dout_j| / h over the
    # outputs the nudge moved. It is the floor under every comparison: where a gradient is exactly 0 (a symmetry),
    # the difference quotient is rounding noise of this size and nothing else. max|out|, not |out_j|: an entry's
    # rounding comes from the values it was computed from (batch norm's centred h - mean(h) has h's rounding, and
    # an output near 0 then moves by far more than eps |out_j|: measured, 7.6e-17 on an entry of -0.041, 8
    # times eps |out_j|, in the engine-batch-stats subject at seed 41).
    noise: Tensor

    def kinks(self, scale: float, rtol: float) -> Tensor:
        """True where the one-sided slopes disagree: L is not differentiable there (bool, k)."""
        return (self.forward - self.backward).abs() > rtol * scale + 2 * self.noise


def _differences(plus: Tensor, minus: Tensor, out0: Tensor, dout: Tensor, weight: Tensor) -> tuple[float, float, float]:
    """L(p + h) - L(p), L(p) - L(p - h), and the rounding in them (before dividing by h)."""
    rise, fall = (plus - out0).reshape(-1).double(), (out0 - minus).reshape(-1).double()
    moved = ((rise != 0) | (fall != 0)).double()
    return torch.dot(rise, dout).item(), torch.dot(fall, dout).item(), torch.dot(moved, weight).item()


def _weights(out0: Tensor, dout: Tensor) -> tuple[Tensor, Tensor]:
    """dout flattened in float64, and ROUNDING * eps * max|out0| * |dout| per output."""
    d = dout.reshape(-1).double()
    largest = out0.abs().max().item() if out0.numel() else 0.0
    return d, ROUNDING * torch.finfo(out0.dtype).eps * largest * d.abs()


def coordinate_slopes(nudge: Nudge, out0: Tensor, dout: Tensor, coords: Tensor, h: float) -> Slopes:
    """Central and one-sided differences at the flat indices `coords`; `out0` is the output unmoved."""
    d, weight = _weights(out0, dout)
    central, forward, backward, noise = (torch.empty(len(coords), dtype=torch.float64) for _ in range(4))
    for k, i in enumerate(coords.tolist()):
        plus, up = nudge(i, h)
        minus, down = nudge(i, -h)  # down < 0
        rise, fall, rounding = _differences(plus, minus, out0, d, weight)
        central[k] = (rise + fall) / (up - down)
        forward[k] = rise / up
        backward[k] = fall / -down
        noise[k] = rounding / up
    return Slopes(central, forward, backward, noise)


def directional_slopes(nudge_along: NudgeAlong, out0: Tensor, dout: Tensor, directions: Tensor, h: float) -> Slopes:
    """The same along each row of `directions` ([k, numel] unit vectors)."""
    d, weight = _weights(out0, dout)
    central, forward, backward, noise = (torch.empty(len(directions), dtype=torch.float64) for _ in range(4))
    for k, v in enumerate(directions):
        rise, fall, rounding = _differences(nudge_along(v, h), nudge_along(v, -h), out0, d, weight)
        central[k] = (rise + fall) / (2 * h)
        forward[k] = rise / h
        backward[k] = fall / h
        noise[k] = rounding / h
    return Slopes(central, forward, backward, noise)


def sample_coordinates(numel: int, k: int, generator: torch.Generator) -> Tensor:
    """k distinct flat indices, sorted (all of them when k >= numel)."""
    if k >= numel:
        return torch.arange(numel)
    return torch.randperm(numel, generator=generator)[:k].sort().values


def random_directions(numel: int, k: int, generator: torch.Generator) -> Tensor:
    """k random unit vectors ([k, numel], float64): every coordinate moves at once."""
    # Normal draws in float32 (3x faster than float64; a direction needs no more precision), then normalised.
    v = torch.randn(k, numel, generator=generator).double()
    return v / v.norm(dim=1, keepdim=True)


# ----------------------------------------------------------------------------- a network's loss on one batch

FD_STEP = 1e-6  # for networks with kinks (see the module docstring)
FD_STEP_SMOOTH = 1e-5  # for smooth networks
# |s+ - s-| above this times max|gradient|: a kink inside the nudge. At a kink the central difference is off by up
# to half the disagreement, so the threshold sits far below the layer checker's 1e-3 (which judges directions, not
# coordinates against 1e-7). Measured (LeNet-5, float64, h = 1e-6, batch 32 of random images): smooth coordinates
# disagree by at most 1.4e-7 of max|gradient| (rounding, eps |L| / h), the kinks by 1.4e-4 to 3.3e-3.
KINK_RTOL = 1e-5
FULL_CHECK_LIMIT = 20_000  # networks with at most this many parameters: every coordinate is checked
SAMPLE_SIZE = 2_000  # otherwise about this many coordinates in all ...
MIN_PER_TENSOR = 20  # ... and at least this many (or all) in every tensor


def step_for(kinked: bool) -> float:
    """The step for a network with kinks (ReLU, max pooling: see `Family.kinked`), or for a smooth one."""
    return FD_STEP if kinked else FD_STEP_SMOOTH


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
