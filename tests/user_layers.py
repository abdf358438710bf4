"""Two layers written by hand, as a user of this project would write them, and the tests that prove their backward."""

import torch
from torch import Tensor

from compare.checking import assert_backward_correct


class LayerNorm:
    """Layer normalization over the last dim (as torch.nn.LayerNorm), forward and backward by hand.

    forward:   xhat = (x - mean) / sqrt(var + eps)      out = xhat * weight + bias
    backward:  dxhat = dout * weight
               dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)   (means over the last dim)
               dweight = sum over rows of dout * xhat,   dbias = sum over rows of dout
    """

    param_names = ("weight", "bias")  # the checker finds self.weight with its gradient self.dweight, ...

    def __init__(self, features: int, eps: float = 1e-5) -> None:
        self.eps = eps
        self.weight, self.bias = torch.ones(features), torch.zeros(features)
        self.dweight, self.dbias = torch.zeros(features), torch.zeros(features)

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        self.rstd = (var + self.eps).rsqrt()
        self.xhat = (x - mean) * self.rstd
        return self.xhat * self.weight + self.bias

    def backward(self, dout: Tensor) -> Tensor:
        self.dweight = (dout * self.xhat).sum(dim=0)
        self.dbias = dout.sum(dim=0)
        dxhat = dout * self.weight
        mean_dxhat = dxhat.mean(dim=-1, keepdim=True)
        mean_dxhat_xhat = (dxhat * self.xhat).mean(dim=-1, keepdim=True)
        return (dxhat - mean_dxhat - self.xhat * mean_dxhat_xhat) * self.rstd


class SiLU(torch.autograd.Function):
    """silu(x) = x * sigmoid(x), with a hand-written backward:  dx = dout * s * (1 + x * (1 - s)),  s = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, dout: Tensor) -> Tensor:
        x, s = ctx.saved_tensors
        return dout * s * (1 + x * (1 - s))


def test_layer_norm_backward():
    assert_backward_correct(LayerNorm, args=(8,), shapes=[(4, 8)], reference=torch.nn.LayerNorm)


def test_silu_backward():
    assert_backward_correct(SiLU, shapes=[(4, 8)], reference=torch.nn.functional.silu)
