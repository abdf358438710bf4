"""A fully connected (linear) layer written by hand: every input neuron feeds every output neuron.

Run the lesson's worked neuron (inputs 2 and 5, weights 3 and 6, bias -2):

    >>> import torch
    >>> from scratch.linear import Linear
    >>> neuron = Linear(2, 1)
    >>> neuron.weight.copy_(torch.tensor([[3.0, 6.0]])); neuron.bias.fill_(-2.0)
    >>> neuron(torch.tensor([[2.0, 5.0]]))   # 2*3 + 5*6 - 2
    tensor([[34.]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scratch.module import Module


def linear_init_(weight: Tensor, bias: Tensor | None, generator: torch.Generator | None = None) -> None:
    """Fill weight and bias exactly as PyTorch's `nn.Linear` and `nn.Conv2d` `reset_parameters` do.

    torch draws weight from kaiming_uniform(a=sqrt(5)), i.e. U(-b, b) with
    b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)); the bias from U(-1/sqrt(fan_in), +).
    fan_in is the number of inputs one output neuron sees: in_features for a Linear weight
    [out, in], C_in * k * k for a convolution weight [C_out, C_in, k, k] (one window), i.e. the
    product of every dimension after the first.
    The bound is computed with the same float operations in the same order, and the
    draws come from the same random stream in the same order (weight, then bias), so
    from one seed both implementations start bit-identical. Without a bias (bias=None), as
    torch, nothing is drawn for it.
    """
    fan_in = math.prod(weight.shape[1:])
    a = math.sqrt(5)
    gain = math.sqrt(2.0 / (1 + a**2))
    std = gain / math.sqrt(fan_in)
    bound = math.sqrt(3.0) * std
    weight.uniform_(-bound, bound, generator=generator)
    if bias is not None:
        bias_bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        bias.uniform_(-bias_bound, bias_bound, generator=generator)


class Linear(Module):
    """y = x W^T + b, with W of shape [out, in] and b of shape [out] (as PyTorch's `nn.Linear`).

    Each output neuron j computes  y_j = sum_i x_i W_ji + b_j  (weights times inputs, plus bias).

    forward:   out = x @ W^T + b                        x: [B, in]  ->  out: [B, out]
    backward:  dx  = dout @ W                           [B, in]
               dW  = dout^T @ x                         [out, in]   (sum over the batch)
               db  = sum_b dout[b, :]                   [out]
    cache: x, the only thing the weight gradient needs (dx needs W, which the layer holds).
    With bias=False there is no b (used before BatchNorm1d, whose own bias makes b redundant).
    backward(dout, input_grad=False) skips dx and returns None: for the first layer, whose input
    is the data, nobody reads dx (autograd skips it too, as images do not require grad).
    """

    param_names: tuple[str, ...] = ("weight", "bias")

    def __init__(self, in_features: int, out_features: int, generator: torch.Generator | None = None,
                 *, bias: bool = True) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        # Drawn in float32 like nn.Linear (default dtype), then cast by .to(): same values either way.
        self.weight = torch.empty(out_features, in_features)
        self.bias = torch.empty(out_features) if bias else None
        if not bias:
            self.param_names = ("weight",)
        linear_init_(self.weight, self.bias, generator)
        self.dweight = torch.zeros_like(self.weight)
        self.dbias = torch.zeros_like(self.bias) if bias else None
        self.x: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}) expects input of shape [batch, {self.in_features}], "
                f"got {list(x.shape)}; flatten 28x28 images to 784 values first"
            )
        self.x = x  # B,in
        if self.bias is None:
            return x @ self.weight.t()  # B,out
        # addmm fuses the product and the bias add in one kernel, as nn.Linear does.
        return torch.addmm(self.bias, x, self.weight.t())  # B,out

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.x is None:
            raise RuntimeError("Linear.backward called before forward; run forward on a batch first")
        # Written into the persistent buffers (out=) so the optimizer's references stay valid
        # and no new gradient tensors are allocated each step.
        torch.mm(dout.t(), self.x, out=self.dweight)  # out,in
        if self.dbias is not None:
            torch.sum(dout, dim=0, out=self.dbias)  # out
        if not input_grad:
            return None  # saves a third of the layer's backward work: 2*B*in*out FLOPs, a B x in tensor
        return dout @ self.weight  # B,in

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"
