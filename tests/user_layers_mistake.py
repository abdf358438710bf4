"""The mistake of docs/checking-your-backward.md's worked example: tests/user_layers.py's LayerNorm with
`dxhat = dout` where `dout * weight` belongs (right while the weight is all ones, as after `__init__`).
tests/test_user_example.py checks that it fails; run, it prints what the failing test says:

    python tests/user_layers_mistake.py
"""

from torch import Tensor, nn
from user_layers import LayerNorm

from compare.checking import assert_backward_correct


class ForgotTheWeight(LayerNorm):
    def backward(self, dout: Tensor) -> Tensor:
        self.dweight = (dout * self.xhat).sum(dim=0)
        self.dbias = dout.sum(dim=0)
        dxhat = dout  # should be dout * weight: invisible while the weight is all ones
        mean_dxhat = dxhat.mean(dim=-1, keepdim=True)
        return (dxhat - mean_dxhat - self.xhat * (dxhat * self.xhat).mean(dim=-1, keepdim=True)) * self.rstd


def check_forgot_the_weight() -> None:
    assert_backward_correct(ForgotTheWeight, args=(8,), shapes=[(4, 8)], reference=nn.LayerNorm)


if __name__ == "__main__":
    import user_layers_mistake  # this file by its module name, so the message names it rather than __main__

    try:
        user_layers_mistake.check_forgot_the_weight()
    except AssertionError as failure:
        print(failure)
