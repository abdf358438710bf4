"""A SiLU whose every derivative is written by hand, as a user of this project would write it, and the test that
proves its forward mode and its second derivative too (docs/checking-your-backward.md, "Second order")."""

import torch
from torch import Tensor

from compare.checking import assert_backward_correct


class SiLU(torch.autograd.Function):
    """silu(x) = x * s,  s = sigmoid(x).

    backward:  dx = dout * s * (1 + x * (1 - s)), written with torch operations on x, the input that forward
               saved: with create_graph=True autograd records them, so dx can be differentiated again. s is
               recomputed here, not saved: forward runs outside autograd, so a tensor it computes (neither an
               input nor the output) reaches the backward as a constant, and d(dx)/dx would lose its part in s.
    jvp:       t_out = t * s * (1 + x * (1 - s)), the same derivative applied to a tangent t (forward mode).
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)  # what jvp reads
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, dout: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return dout * s * (1 + x * (1 - s))

    @staticmethod
    def jvp(ctx, t: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return t * s * (1 + x * (1 - s))


def test_silu_every_derivative():
    assert_backward_correct(SiLU, shapes=[(4, 8)], reference=torch.nn.functional.silu, order=2, forward_ad=True)
