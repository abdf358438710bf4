"""The lesson's neuron, and what the op table (tests/ops.py, tests/test_ops.py) does not see of the Linear layer.

Every scratch layer's gradients, forward pass, dtypes, layouts and documented errors are checked by the tests
generated from tests/ops.py; here, the lesson's worked example and the bit-identical initialisation.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import scratch


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
