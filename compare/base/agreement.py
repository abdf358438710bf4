"""The one comparison helper, and the named tolerances every check in this project uses.

Two ways to judge "equal":

- relative to the tensor (`scale="tensor"`): |a - e| <= atol + rtol * max|e| (atol mostly 0).  Used in float64,
  where both sides are exact up to rounding in different summation orders. Dividing by
  the largest entry, not by each entry, keeps a gradient entry that cancels to ~1e-17
  from turning harmless rounding into a huge "relative" error.
- element by element (`scale="element"`): |a - e| <= atol + rtol * |e|, the rule of
  `torch.testing.assert_close`, with its float32 defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

TINY = 1e-300  # avoids 0/0 when both tensors are all zeros


@dataclass(frozen=True)
class Tolerance:
    name: str
    rtol: float
    atol: float = 0.0
    scale: str = "tensor"  # "tensor" or "element", see the module docstring

    def describe(self) -> str:
        if self.scale == "tensor":
            floor = f"{self.atol:g} + " if self.atol else ""
            return f"{self.name}: |a-e| <= {floor}{self.rtol:g} * max|e|"
        return f"{self.name}: |a-e| <= {self.atol:g} + {self.rtol:g} * |e|"


# Scratch backward vs torch.autograd, same float64 inputs: differ only by summation order.
AUTOGRAD_FLOAT64 = Tolerance("autograd-float64", rtol=1e-10)
# The same in float32: torch.testing.assert_close's defaults for float32.
AUTOGRAD_FLOAT32 = Tolerance("autograd-float32", rtol=1.3e-6, atol=1e-5, scale="element")
# The autograd engine vs torch.autograd on random expressions (tests/test_autograd_engine.py),
# float64: as AUTOGRAD_FLOAT64, plus an absolute floor for gradients that cancel to exactly 0
# (log-softmax is shift-invariant, so an input broadcast along its dim gets sum_j (1 - n p_j) = 0):
# both sides then hold rounding noise, ~1e-16 times the upstream gradient (there ~N(0, 1)).
AUTOGRAD_EXPRESSIONS_FLOAT64 = Tolerance("autograd-expressions-float64", rtol=1e-10, atol=1e-13)
# The MLP on the scratch autograd engine vs the hand-derived one, float64: the same formulas
# reached by different routes (e.g. (x^T dout)^T vs dout^T x); measured ~5e-16, so 1e-12 has room.
ENGINE_VS_HAND_FLOAT64 = Tolerance("engine-vs-hand-float64", rtol=1e-12)
# One layer on a strided (non-contiguous) input vs on its contiguous copy, float64 (tests/test_ops.py): the same
# sums, but a strided loop and a vectorized one round differently (measured there: up to ~1e-15 of the largest entry).
LAYOUT_FLOAT64 = Tolerance("layout-float64", rtol=1e-13)
# A gradient's directional derivative, (g(x + h w) - g(x - h w)) / 2h, against the engine's second derivative H w,
# float64 (tests/test_ops.py): rounding of the gradient over h, ~1e-16 * |g| / 1e-6, is the floor; the truncation
# (h^2 times a third derivative) sits far below 1e-6.
SECOND_ORDER_FD_FLOAT64 = Tolerance("second-order-finite-difference-float64", rtol=1e-6, atol=1e-8)
# A second derivative in float32 against torch's: two backward passes of float32 rounding, taken in other orders;
# an entry that cancels to ~1e-3 of the largest one is off by more than assert_close's per-element rule allows
# (seen: 2e-5 on an entry of 0.06 next to entries of 20, attention), so relative to the tensor's largest entry,
# with a floor for saturated inputs, where 1 - tanh^2 cancels in float32 (seen: 3e-9 on second derivatives of
# 2e-4). float64 is the strict proof (AUTOGRAD_FLOAT64).
SECOND_ORDER_FLOAT32 = Tolerance("second-order-float32", rtol=1e-5, atol=1e-7)
# The engine's forward mode, double backward and Hessian-vector products of a whole network's loss against torch's
# (`python -m compare autograd --mode forward|hvp|double-backward`), float64, relative to the tensor. Measured on the
# first real MNIST batch (of 8, 32 and 64 images), every family at its defaults: worst 5.1e-14, the ViT's forward
# mode at batch 32 (dL/dp . v_p of blocks.2.norm1.weight, 4.6e-5: a sum of terms of both signs, larger than what is
# left of it); 1.4e-14 or less for the other directional derivatives, 6.1e-15 or less for double backward and H v.
# 1e-12 leaves room for another CPU's summation order.
AUTOGRAD_MODES_FLOAT64 = Tolerance("autograd-modes-float64", rtol=1e-12)
# The same in float32, as SECOND_ORDER_FLOAT32 and for its reasons. Measured as above: worst 2.5e-5 relative, 1.1e-9
# absolute (that cancelling sum again), 1e-5 or less for the other directional derivatives, 2.9e-6 or less for
# double backward and H v; the floor covers a directional derivative that cancels to a small number.
AUTOGRAD_MODES_FLOAT32 = Tolerance("autograd-modes-float32", rtol=1e-5, atol=1e-7)
# The third witness of `autograd --mode hvp`: H v against the central difference of the engine's gradient along the
# unit direction v, (g(theta + h v) - g(theta - h v)) / 2h, float64, with h of compare/checking/finite_diff.py's
# step_for (1e-6 with kinks, 1e-5 smooth); max |H v - FD| over max |FD|, both over all parameters. Rounding
# (~eps |g| / h) is the floor: measured 2.7e-10 to 7.8e-9 on the first MNIST batch (as above), every family.
HVP_FINITE_DIFF_FLOAT64 = Tolerance("hvp-finite-difference-float64", rtol=1e-6)
# Central finite differences in float64 (step FD_STEP): truncation ~h^2 and rounding ~eps/h.
FINITE_DIFF_FLOAT64 = Tolerance("finite-difference-float64", rtol=1e-7)
# Scratch optimizer vs torch.optim fed the same gradient sequence, parameters at every step
# (1000 steps): float64 relative to the tensor, float32 at assert_close's defaults.
TRAJECTORY_FLOAT64 = Tolerance("optimizer-trajectory-float64", rtol=1e-12)
TRAJECTORY_FLOAT32 = Tolerance("optimizer-trajectory-float32", rtol=1.3e-6, atol=1e-5, scale="element")
# Lockstep training in float64: two runs whose per-step losses stay within this relative difference have
# identical trajectories (a stable run stays near 1e-14); beyond it they have separated.
LOCKSTEP_LOSS_FLOAT64 = 1e-9
# Float32 runs of one model (evaluate: a checkpoint's weights in both implementations): identical test
# predictions on at least this fraction (a logit pair within rounding of a tie may flip).
PREDICTION_MATCH_FLOAT64 = 0.999
# Lockstep float32: the same, for float32's 7 digits; the first step, from identical parameters, differs by
# rounding only (~1e-7), and chaotic training amplifies that over thousands of steps.
FIRST_STEP_LOSS_FLOAT32 = 1e-5
# Data parallelism (ddp): N processes on shards, gradients averaged, vs DistributedDataParallel and vs one
# process on whole batches; float64 parameters after training, relative to the tensor. The shards' sums are
# added in another order than the whole batch's: rounding (~1e-16 a step) that a stable run keeps small.
TRAINED_PARAMETERS_FLOAT64 = Tolerance("data-parallel-float64", rtol=1e-12)


# Re-synchronized checks (compare/training/resync.py): both implementations from one state, one step on one batch; the
# loss, every gradient and every updated parameter and buffer, relative to the tensor's largest entry. float64:
# as AUTOGRAD_FLOAT64. float32: measured worst 2e-7 to 2e-6 on the lesson's network and with batch norm (a sum
# of 32 products in another order); 1e-5 leaves room and still catches a gradient off by 1e-4 (a factor 1.0001).
RESYNC_FLOAT64 = Tolerance("resync-float64", rtol=1e-10)
RESYNC_FLOAT32 = Tolerance("resync-float32", rtol=1e-5)


def gradient_tolerance(dtype: torch.dtype) -> Tolerance:
    return AUTOGRAD_FLOAT64 if dtype == torch.float64 else AUTOGRAD_FLOAT32


def modes_tolerance(dtype: torch.dtype) -> Tolerance:
    """Forward mode, double backward and Hessian-vector products, engine against torch."""
    return AUTOGRAD_MODES_FLOAT64 if dtype == torch.float64 else AUTOGRAD_MODES_FLOAT32


def max_abs_diff(actual: Tensor, expected: Tensor) -> float:
    return (actual - expected).abs().max().item() if actual.numel() else 0.0


def max_rel_error(actual: Tensor, expected: Tensor) -> float:
    """max|a - e| / max|e|: the largest difference, relative to the size of the expected tensor."""
    if actual.numel() == 0:
        return 0.0
    scale = max(expected.abs().max().item(), TINY)
    return (actual - expected).abs().max().item() / scale


@dataclass
class Comparison:
    name: str
    passed: bool
    max_abs_diff: float
    max_rel_error: float
    message: str


def compare(name: str, actual: Tensor, expected: Tensor, tol: Tolerance) -> Comparison:
    """Compare two tensors: shape, then dtype, then values. The message names the worst index."""
    if tuple(actual.shape) != tuple(expected.shape):
        return Comparison(name, False, float("inf"), float("inf"),
                          f"{name}: shape {list(actual.shape)} != expected {list(expected.shape)}")
    if actual.dtype != expected.dtype:
        return Comparison(name, False, float("inf"), float("inf"),
                          f"{name}: dtype {actual.dtype} != expected {expected.dtype}")
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    # The same inf, or NaN on both sides, at a position: both implementations computed the same non-finite value
    # (a diverged run), so that position agrees; it is left out of the differences and of the scale.
    same = (torch.isnan(a) & torch.isnan(e)) | (torch.isinf(a) & (a == e))
    a, e = a.masked_fill(same, 0.0), e.masked_fill(same, 0.0)
    diff = (a - e).abs()
    if tol.scale == "tensor":
        allowed = torch.full_like(e, tol.atol + tol.rtol * max(e.abs().max().item(), TINY) if e.numel() else 0.0)
    else:
        allowed = tol.atol + tol.rtol * e.abs()
    excess = diff - allowed
    one_sided = ~(torch.isfinite(a) & torch.isfinite(e))  # what is left: an inf or NaN on one side only
    passed = not one_sided.any() and bool((excess <= 0).all())
    abs_d, rel_e = max_abs_diff(a, e), max_rel_error(a, e)
    if passed:
        return Comparison(name, True, abs_d, rel_e, f"{name}: ok (max rel error {rel_e:.2e}; {tol.describe()})")
    worst = (int(one_sided.flatten().nonzero()[0]) if one_sided.any()
             else int(torch.nan_to_num(excess, nan=float("inf")).flatten().argmax()))
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), a.shape)) if a.dim() else ()
    got, want = a.flatten()[worst].item(), e.flatten()[worst].item()
    return Comparison(name, False, abs_d, rel_e,
                      f"{name}: mismatch at index {index}: got {got!r}, expected {want!r} "
                      f"(|diff| {abs(got - want):.3e}, max rel error {rel_e:.3e}; {tol.describe()})")


def assert_agree(name: str, actual: Tensor, expected: Tensor, tol: Tolerance) -> Comparison:
    """`compare`, raising AssertionError with its message on a mismatch (for tests)."""
    result = compare(name, actual, expected, tol)
    if not result.passed:
        raise AssertionError(result.message)
    return result


def resync_tolerance(dtype: torch.dtype) -> Tolerance:
    return RESYNC_FLOAT64 if dtype == torch.float64 else RESYNC_FLOAT32


def separation_threshold(dtype: torch.dtype) -> float:
    """The per-step relative loss difference beyond which two runs' trajectories count as separated."""
    return LOCKSTEP_LOSS_FLOAT64 if dtype == torch.float64 else FIRST_STEP_LOSS_FLOAT32
