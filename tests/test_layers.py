"""Every scratch layer against finite differences (float64) and against its torch.nn twin (autograd).

Adding a layer adds one line to LAYERS: a name, how to build the scratch layer, how to build
its torch twin, and the input shape.
"""

from __future__ import annotations

import pytest
import torch
from layer_check import away_from_zero, check_against_autograd, check_finite_differences, copy_parameters
from torch import nn

import scratch

# name: (scratch factory, torch factory taking the scratch layer, input shape)
LAYERS = {
    "linear": (lambda: scratch.Linear(7, 5), lambda s: copy_parameters(s, nn.Linear(7, 5)), (4, 7)),
    "relu": (scratch.ReLU, lambda s: nn.ReLU(), (4, 6)),
    "sigmoid": (scratch.Sigmoid, lambda s: nn.Sigmoid(), (4, 6)),
    "tanh": (scratch.Tanh, lambda s: nn.Tanh(), (4, 6)),
}


def make(name: str, dtype: torch.dtype, seed: int = 0):
    torch.manual_seed(seed)
    make_scratch, make_torch, shape = LAYERS[name]
    layer = make_scratch().to(dtype=dtype)
    module = make_torch(layer).to(dtype=dtype)
    x = away_from_zero(shape, dtype)
    dout = torch.randn(x.shape[0], *layer.forward(x).shape[1:], dtype=dtype)
    return layer, module, x, dout


@pytest.mark.parametrize("name", LAYERS)
def test_finite_differences_float64(name):
    layer, _, x, dout = make(name, torch.float64)
    check_finite_differences(layer, x, dout)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", LAYERS)
def test_matches_autograd(name, dtype):
    layer, module, x, dout = make(name, dtype, seed=1)
    check_against_autograd(layer, module, x, dout)


def test_lessons_worked_neuron():
    """Inputs 2 and 5, weights 3 and 6, bias -2: 2*3 + 5*6 - 2 = 34."""
    neuron = scratch.Linear(2, 1)
    neuron.weight.copy_(torch.tensor([[3.0, 6.0]]))
    neuron.bias.fill_(-2.0)
    total = neuron(torch.tensor([[2.0, 5.0]]))
    assert total.item() == 34.0
    assert scratch.ReLU()(total).item() == 34.0  # positive: the ReLU passes it through
    assert scratch.Sigmoid()(total).item() == pytest.approx(1.0)  # saturated: fires fully


def test_linear_init_matches_nn_linear_bit_for_bit():
    torch.manual_seed(123)
    ours = scratch.Linear(784, 16)
    torch.manual_seed(123)
    theirs = nn.Linear(784, 16)
    assert torch.equal(ours.weight, theirs.weight.detach()) and torch.equal(ours.bias, theirs.bias.detach())


def test_linear_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 784\].*flatten"):
        scratch.Linear(784, 16)(torch.zeros(2, 28, 28))


def test_backward_before_forward_is_explained():
    with pytest.raises(RuntimeError, match="before forward"):
        scratch.Linear(3, 2).backward(torch.zeros(1, 2))
