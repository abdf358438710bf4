"""BatchNorm1d and Dropout: what the op table does not see.

    pytest tests/test_regularization.py -q

Their gradients (finite differences and torch.autograd), in training and evaluation mode, with the same
dropout mask on both sides (tests/ops.py, MASK_SEED, says how), are checked by the tests generated from
tests/ops.py. Here: batch norm on any shape and its running statistics, why a random upstream gradient
and not a sum, the dropout mask itself, whole networks with both.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from op_kinds import Case, OpInfo, assert_finite_differences, assert_matches_twin, sample
from ops import MASK_SEED, OPS_BY_NAME, random_affine
from torch import nn
from twins import copy_state

import scratch
import torch_impl
from compare.base.agreement import assert_agree, gradient_tolerance


def test_dropout_masks_really_drop():
    """Guard for the op table: its training dropout entry did drop entries, and kept the rest scaled."""
    op = OPS_BY_NAME["dropout-train"]
    case = Case(op, op.samples[0], torch.float64)
    out, x = case.ours().outputs[0], case.inputs[0]
    assert 0 < (out == 0).sum() < out.numel()
    torch.testing.assert_close(out[out != 0], x[out != 0] / 0.7)


# --- batch norm ---------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(batch=st.integers(3, 12), features=st.integers(1, 5), seed=st.integers(0, 1000))
def test_batchnorm_any_shape(batch, features, seed):
    op = OpInfo("batchnorm1d-any-shape", "layer", (), (sample("drawn", (batch, features), values="shifted"),),
                lambda: random_affine(scratch.BatchNorm1d(features)), lambda s: copy_state(s, nn.BatchNorm1d(features)))
    case = Case(op, op.samples[0], torch.float64, seed=seed)
    assert_matches_twin(case)
    assert_finite_differences(case)


def test_batchnorm_running_statistics_over_many_batches():
    """Five training batches update the running estimates as torch does; evaluation then uses them."""
    torch.manual_seed(0)  # the same batches every run (an unlucky draw can keep the mean far from 2)
    for dtype in (torch.float64, torch.float32):
        tol = gradient_tolerance(dtype)
        layer = random_affine(scratch.BatchNorm1d(6)).to(dtype=dtype)
        module = copy_state(layer, nn.BatchNorm1d(6)).to(dtype)
        for _ in range(5):
            x = torch.randn(16, 6, dtype=dtype) * 3 + 2
            assert_agree("training output", layer.forward(x), module(x).detach(), tol)
        for n, b in module.named_buffers():
            assert_agree(n, dict(layer.named_buffers())[n], b, tol)
        assert layer.num_batches_tracked.item() == 5 and layer.num_batches_tracked.dtype == torch.int64
        assert (layer.running_mean - 2).abs().max() < 1.5  # on its way from 0 towards the data's mean 2
        layer.eval()
        module.eval()
        x = torch.randn(3, 6, dtype=dtype)
        assert_agree("evaluation output", layer.forward(x), module(x).detach(), tol)
        assert layer.num_batches_tracked.item() == 5  # evaluation updates nothing
    # The running variance is the unbiased one (divides by B - 1), the normalization the biased one.
    layer = scratch.BatchNorm1d(1, momentum=1.0).to(dtype=torch.float64)
    out = layer.forward(torch.tensor([[1.0], [3.0]], dtype=torch.float64))
    assert layer.running_var.item() == pytest.approx(2.0)  # ((1-2)^2 + (3-2)^2) / (2 - 1)
    assert out.flatten().tolist() == pytest.approx([-1 / (1 + 1e-5) ** 0.5, 1 / (1 + 1e-5) ** 0.5])


class BatchNormWithoutLastTerm(scratch.BatchNorm1d):
    """A plausible mistake: the backward without the variance's contribution (- xhat * sum(dxhat * xhat))."""

    def backward(self, dout: torch.Tensor) -> torch.Tensor:
        super().backward(dout)
        dxhat = dout * self.weight
        return (self.invstd / len(dout)) * (len(dout) * dxhat - dxhat.sum(dim=0))


def batchnorm_case(cls: type) -> Case:
    op = OpInfo(cls.__name__, "layer", (), (sample("typical", (9, 6), values="shifted"),), lambda: cls(6),
                lambda s: copy_state(s, nn.BatchNorm1d(6)))
    return Case(op, op.samples[0], torch.float64)


def test_a_summed_output_hides_batchnorm_errors_a_random_dout_does_not():
    right, wrong = batchnorm_case(scratch.BatchNorm1d), batchnorm_case(BatchNormWithoutLastTerm)
    # sum(out) = B * sum(bias) whatever x is (each normalized column sums to 0), so with dout = 1 the true
    # dx is 0, and the wrong formula gives 0 too: a check through out.sum() would pass it.
    for case in (right, wrong):
        case.model.forward(case.inputs[0])
        assert case.model.backward(torch.ones_like(case.inputs[0])).abs().max() < 1e-12
    # A random dout (the op table's) tells them apart.
    assert_finite_differences(right)
    with pytest.raises(AssertionError, match="dx: finite-difference relative error"):
        assert_finite_differences(wrong)


# --- dropout ------------------------------------------------------------------------------

def test_dropout_mask_is_torchs_and_inverted():
    x = torch.randn(200, 50, dtype=torch.float64)
    layer = scratch.Dropout(0.3)
    torch.manual_seed(7)
    out_s = layer.forward(x)
    torch.manual_seed(7)
    out_t = nn.Dropout(0.3)(x)
    assert torch.equal(out_s, out_t)  # the same mask, bit for bit
    kept = out_s != 0
    assert kept.double().mean().item() == pytest.approx(0.7, abs=0.02)
    assert torch.allclose(out_s[kept], x[kept] / 0.7)  # survivors scaled by 1 / (1 - p)
    torch.manual_seed(8)
    assert not torch.equal(layer.forward(x), out_s)  # another state, another mask


def test_dropout_in_evaluation_and_with_p_0_is_the_identity():
    x, dout = torch.randn(4, 3), torch.randn(4, 3)
    for layer in (scratch.Dropout(0.5).eval(), scratch.Dropout(0.0)):
        assert layer.forward(x) is x
        assert layer.backward(dout) is dout


# --- whole networks -----------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["gelu", "leaky-relu"])
def test_mlp_with_batchnorm_and_dropout_matches_torch(activation):
    torch.manual_seed(0)
    model_s = scratch.MLP(12, (8, 6), activation, 3, dropout=0.25, batch_norm=True).to(dtype=torch.float64)
    torch.manual_seed(0)
    model_t = torch_impl.MLP(12, (8, 6), activation, 3, dropout=0.25, batch_norm=True).double()
    assert [n for n, _ in model_s.named_parameters()] == [n for n, _ in model_t.named_parameters()]
    assert all(torch.equal(a, b.detach()) for (_, a), (_, b) in zip(model_s.named_parameters(),
                                                                      model_t.named_parameters(), strict=True))
    x = torch.randn(10, 12, dtype=torch.float64)
    dout = torch.randn(10, 3, dtype=torch.float64)
    tol = gradient_tolerance(torch.float64)
    for training in (True, False):
        model_s.train(training)
        model_t.train(training)
        model_t.zero_grad()
        torch.manual_seed(MASK_SEED)
        out_s = model_s.forward(x)
        model_s.backward(dout)
        torch.manual_seed(MASK_SEED)
        out_t = model_t(x)
        (out_t * dout).sum().backward()
        assert_agree(f"logits (training={training})", out_s, out_t.detach(), tol)
        for (n, g), (_, p) in zip(model_s.named_gradients(), model_t.named_parameters(), strict=True):
            assert_agree(f"d{n} (training={training})", g, p.grad, tol)
    for (n, b), (_, bt) in zip(model_s.named_buffers(), model_t.named_buffers(), strict=True):
        assert_agree(n, b, bt, tol)
