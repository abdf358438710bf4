"""BatchNorm1d, Dropout, LeakyReLU, GELU and the bias-free Linear against torch.nn and finite differences.

    pytest tests/test_regularization.py -q

The checks of tests/layer_check.py (random upstream gradient dout through sum(out * dout);
scratch vs torch.autograd in float64 and float32; scratch vs central differences in float64),
applied to each line of LAYERS, in training and evaluation mode; then what those checks do
not see: batch norm's running statistics, the dropout mask itself, whole networks.

How both dropout layers get the same mask: on the CPU, `nn.Dropout` draws it with
`empty_like(x).bernoulli_(1 - p)` from torch's global generator, and `scratch.Dropout` makes
the same call; so the test sets the global generator to one state (MASK_SEED) before every
forward, scratch, torch, and each finite-difference evaluation alike.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_check import away_from_zero, check_against_autograd, check_finite_differences, copy_parameters, copy_state
from torch import nn

import scratch
import torch_impl
from compare.base.agreement import assert_agree, gradient_tolerance

MASK_SEED = 1234  # the global random state every dropout forward starts from, in these tests


class ScratchDropoutSameMask(scratch.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(MASK_SEED)
        return super().forward(x)


class TorchDropoutSameMask(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(MASK_SEED)
        return super().forward(x)


def random_affine(layer: scratch.BatchNorm1d) -> scratch.BatchNorm1d:
    """Move batch norm off its initial weight 1, bias 0 (which would hide a swapped weight and bias)."""
    g = torch.Generator().manual_seed(5)
    layer.weight.uniform_(0.5, 1.5, generator=g)
    layer.bias.uniform_(-0.5, 0.5, generator=g)
    return layer


def trained_statistics(layer: scratch.BatchNorm1d) -> scratch.BatchNorm1d:
    """Batch norm in evaluation mode with running statistics that are not the initial 0 and 1."""
    g = torch.Generator().manual_seed(6)
    layer.running_mean.uniform_(-1, 1, generator=g)
    layer.running_var.uniform_(0.5, 2, generator=g)
    return random_affine(layer)


# name: (scratch factory, torch factory taking the scratch layer, input shape, training mode)
LAYERS = {
    "leaky-relu": (scratch.LeakyReLU, lambda s: nn.LeakyReLU(), (4, 6), True),
    "leaky-relu-0.2": (lambda: scratch.LeakyReLU(0.2), lambda s: nn.LeakyReLU(0.2), (4, 6), True),
    "gelu": (scratch.GELU, lambda s: nn.GELU(), (4, 6), True),
    "linear-no-bias": (lambda: scratch.Linear(7, 5, bias=False),
                       lambda s: copy_parameters(s, nn.Linear(7, 5, bias=False)), (4, 7), True),
    "batchnorm-train": (lambda: random_affine(scratch.BatchNorm1d(6)),
                        lambda s: copy_state(s, nn.BatchNorm1d(6)), (9, 6), True),
    "batchnorm-train-eps-momentum": (lambda: random_affine(scratch.BatchNorm1d(6, eps=1e-3, momentum=0.3)),
                                     lambda s: copy_state(s, nn.BatchNorm1d(6, eps=1e-3, momentum=0.3)), (9, 6), True),
    "batchnorm-train-batch-2": (lambda: random_affine(scratch.BatchNorm1d(3)),
                                lambda s: copy_state(s, nn.BatchNorm1d(3)), (2, 3), True),
    "batchnorm-eval": (lambda: trained_statistics(scratch.BatchNorm1d(6)),
                       lambda s: copy_state(s, nn.BatchNorm1d(6)), (9, 6), False),
    "dropout-train": (lambda: ScratchDropoutSameMask(0.3), lambda s: TorchDropoutSameMask(0.3), (20, 6), True),
    "dropout-train-p-1": (lambda: ScratchDropoutSameMask(1.0), lambda s: TorchDropoutSameMask(1.0), (4, 6), True),
    "dropout-eval": (lambda: scratch.Dropout(0.3), lambda s: nn.Dropout(0.3), (20, 6), False),
}


def make(name: str, dtype: torch.dtype, seed: int = 0):
    torch.manual_seed(seed)
    make_scratch, make_torch, shape, training = LAYERS[name]
    layer = make_scratch().to(dtype=dtype).train(training)
    module = make_torch(layer).to(dtype=dtype).train(training)
    x = away_from_zero(shape, dtype) * 2 + 0.5  # batch norm should have a mean and scale to remove
    dout = torch.randn(x.shape[0], *layer.forward(x).shape[1:], dtype=dtype)
    layer = make_scratch().to(dtype=dtype).train(training)  # afresh: that forward moved the running statistics
    module = make_torch(layer).to(dtype=dtype).train(training)
    return layer, module, x, dout


# With two examples batch norm's outputs are +-1 whatever x is (up to eps), so dx is eps-small
# and a finite difference measures only rounding; that case is checked against autograd alone.
NO_FINITE_DIFFERENCES = {"batchnorm-train-batch-2"}


@pytest.mark.parametrize("name", [n for n in LAYERS if n not in NO_FINITE_DIFFERENCES])
def test_finite_differences_float64(name):
    layer, _, x, dout = make(name, torch.float64)
    check_finite_differences(layer, x, dout)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", LAYERS)
def test_matches_autograd(name, dtype):
    layer, module, x, dout = make(name, dtype, seed=1)
    check_against_autograd(layer, module, x, dout)
    tol = gradient_tolerance(dtype)
    buffers = dict(layer.named_buffers())
    assert set(buffers) == {n for n, _ in module.named_buffers()}
    for n, b in module.named_buffers():  # batch norm's running statistics after that forward
        assert_agree(n, buffers[n], b, tol)


def test_dropout_masks_really_drop():
    """Guard for the table above: its dropout layers did drop entries, and kept the rest scaled."""
    layer, _, x, _ = make("dropout-train", torch.float64)
    out = layer.forward(x)
    assert 0 < (out == 0).sum() < out.numel()


# --- batch norm ---------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(batch=st.integers(3, 12), features=st.integers(1, 5), seed=st.integers(0, 1000))
def test_batchnorm_any_shape(batch, features, seed):
    torch.manual_seed(seed)
    layer = random_affine(scratch.BatchNorm1d(features)).to(dtype=torch.float64)
    module = copy_state(layer, nn.BatchNorm1d(features)).double()
    x = torch.randn(batch, features, dtype=torch.float64) * 2 - 1
    dout = torch.randn(batch, features, dtype=torch.float64)
    check_against_autograd(layer, module, x, dout)
    check_finite_differences(layer, x, dout)


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


def test_a_summed_output_hides_batchnorm_errors_a_random_dout_does_not():
    x = torch.randn(9, 6, dtype=torch.float64) * 2 + 0.5
    right, wrong = (layer(6).to(dtype=torch.float64) for layer in (scratch.BatchNorm1d, BatchNormWithoutLastTerm))
    # sum(out) = B * sum(bias) whatever x is (each normalized column sums to 0), so with dout = 1 the true
    # dx is 0, and the wrong formula gives 0 too: a check through out.sum() would pass it.
    ones = torch.ones(9, 6, dtype=torch.float64)
    for layer in (right, wrong):
        layer.forward(x)
        assert layer.backward(ones).abs().max() < 1e-12
    # A random dout tells them apart.
    dout = torch.randn(9, 6, dtype=torch.float64)
    check_finite_differences(right, x, dout)
    with pytest.raises(AssertionError, match="x: finite-difference relative error"):
        check_finite_differences(wrong, x, dout)


def test_batchnorm_errors_are_for_people():
    layer = scratch.BatchNorm1d(4)
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 4\], got \[3, 5\]"):
        layer.forward(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least 2 examples"):
        layer.forward(torch.zeros(1, 4))
    layer.eval()
    assert layer.forward(torch.zeros(1, 4)).shape == (1, 4)  # evaluation needs no batch statistics


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
    with pytest.raises(ValueError, match="between 0 and 1"):
        scratch.Dropout(1.5)


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
