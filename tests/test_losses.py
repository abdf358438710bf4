"""The scratch losses against finite differences and torch.autograd, and with extreme logits."""

from __future__ import annotations

import math

import pytest
import torch

import scratch
import torch_impl


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




def test_mse_takes_real_targets_for_regression():
    """The playground's regression: one output per example and a real target, as nn.MSELoss takes them; the
    gradient by hand equals autograd's."""
    g = torch.Generator().manual_seed(0)
    out = torch.randn(7, 1, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(7, generator=g, dtype=torch.float64) * 2 - 1
    ours = scratch.MSELoss()
    loss = ours.forward(out.detach(), target)
    reference = torch.nn.MSELoss()(out, target[:, None])
    reference.backward()
    assert torch.allclose(loss, reference.detach(), rtol=0, atol=1e-15)
    assert torch.allclose(ours.backward(), out.grad, rtol=0, atol=1e-15)
    assert torch.equal(torch_impl.MSELoss()(out.detach(), target), reference.detach())
    with pytest.raises(TypeError, match=r"real targets shaped as the outputs \[7, 1\]; got torch.float64 targets"):
        ours.forward(out.detach(), torch.zeros(7, 2, dtype=torch.float64))
