"""Activation functions written by hand: the non-linearity each neuron applies to its weighted sum.

Without them a stack of linear layers collapses into one linear map. Each backward
multiplies the upstream gradient by the local derivative f'(x), element by element.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.module import Module


class ReLU(Module):
    """Rectified linear unit.

    forward:   out = max(0, x)
    backward:  dx = dout * [out > 0]       (derivative 1 where the neuron fired, 0 elsewhere; 0 at x = 0, as torch)
    cache: out (its sign is all backward needs).
    """

    def forward(self, x: Tensor) -> Tensor:
        self.out = torch.clamp_min(x, 0.0)  # B,H
        return self.out

    def backward(self, dout: Tensor) -> Tensor:
        return dout * (self.out > 0)  # B,H


class Sigmoid(Module):
    """Logistic sigmoid, squashing any number into (0, 1).

    forward:   out = 1 / (1 + exp(-x))
    backward:  dx = dout * out * (1 - out)
    cache: out (the derivative is written in terms of the output, so x is not kept).
    """

    def forward(self, x: Tensor) -> Tensor:
        # torch.sigmoid evaluates 1/(1+exp(-x)) without overflow for large |x|.
        self.out = torch.sigmoid(x)  # B,H
        return self.out

    def backward(self, dout: Tensor) -> Tensor:
        return dout * self.out * (1 - self.out)  # B,H


class Tanh(Module):
    """Hyperbolic tangent, squashing into (-1, 1).

    forward:   out = tanh(x) = (e^x - e^-x) / (e^x + e^-x)
    backward:  dx = dout * (1 - out^2)
    cache: out.
    """

    def forward(self, x: Tensor) -> Tensor:
        self.out = torch.tanh(x)  # B,H
        return self.out

    def backward(self, dout: Tensor) -> Tensor:
        return dout * (1 - self.out * self.out)  # B,H


ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
