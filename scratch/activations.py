"""Activation functions written by hand: the non-linearity each neuron applies to its weighted sum.

Without them a stack of linear layers collapses into one linear map. Each backward
multiplies the upstream gradient by the local derivative f'(x), element by element.
"""

from __future__ import annotations

import math

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
        # out >= 0, so sign(out) is the mask [out > 0] already as 1.0/0.0 in dout's dtype: faster than
        # dout * (out > 0), which converts a bool mask, or torch.where with a 0.0 that it converts too;
        # multiplied in place, so that one new tensor is made, not two
        return torch.sign(self.out).mul_(dout)  # B,H


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


class LeakyReLU(Module):
    """ReLU that lets a little through below zero, so a neuron never goes completely silent.

    forward:   out = x if x > 0 else negative_slope * x         (negative_slope 0.01, as torch)
    backward:  dx = dout * (1 if x > 0 else negative_slope)   (the slope side at x = 0, as torch)
    cache: the mask x > 0.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        self.positive = x > 0  # B,H
        return torch.where(self.positive, x, x * self.negative_slope)  # B,H

    def backward(self, dout: Tensor) -> Tensor:
        return torch.where(self.positive, dout, dout * self.negative_slope)  # B,H


class GELU(Module):
    """Gaussian error linear unit, the exact (erf) form: x weighted by the chance a standard normal is below x.

    forward:   out = x * Phi(x),            Phi(x) = (1 + erf(x / sqrt(2))) / 2   (the normal CDF)
    backward:  dx = dout * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)   (product rule; phi = Phi')
    cache: x and Phi(x) (erf is the costly part, so it is not recomputed). Each line below is written to make
    as few passes over the values as it can (in-place steps on its own temporaries): 4 forward, 5 backward.
    """

    def forward(self, x: Tensor) -> Tensor:
        self.x = x  # B,H
        self.cdf = torch.erf(x * SQRT_HALF).add_(1).mul_(0.5)  # B,H
        return x * self.cdf  # B,H

    def backward(self, dout: Tensor) -> Tensor:
        gauss = (self.x * self.x).mul_(-0.5).exp_()  # B,H: exp(-x^2 / 2) = sqrt(2 pi) phi(x)
        return torch.addcmul(self.cdf, self.x, gauss, value=INV_SQRT_2PI).mul_(dout)  # B,H


class Identity(Module):
    """The linear activation (Playground's "linear"): the neuron passes its weighted sum on unchanged.

    forward:   out = x
    backward:  dx = dout          (derivative 1 everywhere)
    cache: nothing.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x

    def backward(self, dout: Tensor) -> Tensor:
        return dout


SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)

ACTIVATIONS: dict[str, type[Module]] = {
    "relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "leaky-relu": LeakyReLU, "gelu": GELU, "linear": Identity,
}
