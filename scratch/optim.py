"""Optimizers written by hand: they move each weight and bias against its gradient.

    >>> opt = SGD(model.parameters(), model.gradients(), lr=0.1)
    >>> model.backward(loss.backward()); opt.step()

Unlike `torch.optim`, which reads `param.grad`, a scratch optimizer is handed the
gradient buffers (`dweight`, `dbias`) that each layer's backward overwrites in place.
"""

from __future__ import annotations

from torch import Tensor


class SGD:
    """Plain stochastic gradient descent with a learning rate.

    update:  p <- p - lr * dp      (the same operation, in the same order, as torch.optim.SGD)
    """

    def __init__(self, params: list[Tensor], grads: list[Tensor], lr: float) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if len(params) != len(grads) or any(p.shape != g.shape for p, g in zip(params, grads)):
            raise ValueError("every parameter needs a gradient buffer of the same shape")
        self.params, self.grads, self.lr = params, grads, lr

    def step(self) -> None:
        for p, dp in zip(self.params, self.grads):
            p.add_(dp, alpha=-self.lr)
