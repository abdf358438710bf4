"""The scratch losses against finite differences and torch.autograd, and with extreme logits."""

from __future__ import annotations

import math

import pytest
import torch

import scratch
import torch_impl
from compare.base import agreement
from compare.checking.finite_diff import finite_difference, finite_difference_error

LOSS_NAMES = list(scratch.LOSSES)


def batch(dtype: torch.dtype, seed: int = 0, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(6, 10, generator=g, dtype=dtype)
    target = torch.randint(0, 10, (6,), generator=g)
    return logits, target


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_finite_differences_float64(name):
    logits, target = batch(torch.float64)
    loss_fn = scratch.LOSSES[name]()
    dloss = 0.7  # a non-unit upstream gradient, so its scaling is tested too
    loss_fn.forward(logits, target)
    analytic = loss_fn.backward(dloss)
    coords = torch.arange(logits.numel())
    numeric = finite_difference(lambda: dloss * loss_fn.forward(logits, target).item(), logits, coords)
    error = finite_difference_error(numeric, analytic, coords)
    assert error <= agreement.FINITE_DIFF_FLOAT64.rtol, f"{name}: finite-difference relative error {error:.3e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_matches_autograd(name, dtype):
    logits, target = batch(dtype, seed=1)
    ours = scratch.LOSSES[name]()
    loss_s = ours.forward(logits, target)
    dlogits = ours.backward(0.3)

    leaf = logits.clone().requires_grad_(True)
    loss_t = torch_impl.LOSSES[name]()(leaf, target)
    (0.3 * loss_t).backward()
    tol = agreement.gradient_tolerance(dtype)
    agreement.assert_agree("loss", loss_s, loss_t.detach(), tol)
    agreement.assert_agree("dlogits", dlogits, leaf.grad, tol)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype=torch.float32)
    target = torch.tensor([1, 1])
    loss_fn = scratch.CrossEntropyLoss()
    loss = loss_fn.forward(logits, target)
    dlogits = loss_fn.backward()
    assert torch.isfinite(loss) and torch.isfinite(dlogits).all()
    assert loss.item() == pytest.approx(1e4, rel=1e-6)  # first row: log-sum-exp = 1e4, its target's logit -1e4, halved
    expected = torch.nn.CrossEntropyLoss()(logits, target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cross_entropy_of_uniform_logits_is_log_classes():
    loss = scratch.CrossEntropyLoss().forward(torch.zeros(4, 10, dtype=torch.float64), torch.tensor([0, 3, 5, 9]))
    assert loss.item() == pytest.approx(math.log(10), abs=1e-15)


def test_mse_against_one_hot():
    """Outputs equal to the one-hot targets cost nothing; one output off by 1 costs 1/(B*C)."""
    out = torch.zeros(2, 10, dtype=torch.float64)
    target = torch.tensor([3, 7])
    out[0, 3] = out[1, 7] = 1.0
    assert scratch.MSELoss().forward(out, target).item() == 0.0
    out[0, 0] = 1.0
    assert scratch.MSELoss().forward(out, target).item() == pytest.approx(1 / 20)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_bad_targets_are_explained(name):
    with pytest.raises(ValueError, match="integer targets"):
        scratch.LOSSES[name]().forward(torch.zeros(3, 10), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(TypeError, match="int64 class indices"):
        scratch.LOSSES[name]().forward(torch.zeros(3, 10), torch.zeros(3))
