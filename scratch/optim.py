"""Optimizers written by hand: they move each weight and bias against its gradient.

Optimization is the search for weights that make the loss function small; an optimizer
is one rule for the next step of that search, scaled by the learning rate.

    >>> opt = Adam(model.parameters(), model.gradients(), lr=1e-3)
    >>> model.backward(loss.backward()); opt.step()

Unlike PyTorch's `optim`, which reads `param.grad`, a scratch optimizer is handed the
gradient buffers (`dweight`, `dbias`) that each layer's backward overwrites in place.
Each `step` performs the tensor operations of PyTorch's `optim` single-tensor
(`foreach=False`) code path, in the same order, so that both give the same numbers
to the last bit (plain SGD does its one operation for all tensors in a single
`_foreach_add_` call: the same arithmetic, for speed); the formula each one implements is in its docstring.
tests/test_optim.py feeds both the same 1000 gradients and compares the trajectories.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Optimizer:
    """Holds the parameters, their gradient buffers and a learning rate `lr` (a schedule may change it)."""

    def __init__(self, params: list[Tensor], grads: list[Tensor], lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if len(params) != len(grads) or any(p.shape != g.shape for p, g in zip(params, grads, strict=True)):
            raise ValueError("every parameter needs a gradient buffer of the same shape")
        self.params, self.grads, self.lr = params, grads, lr

    def step(self) -> None:
        raise NotImplementedError

    def state_tensors(self) -> list[Tensor]:
        """The tensors of its state (what a sharded optimizer keeps only 1/N of); none for plain SGD."""
        return []


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with weight decay and (Nesterov) momentum, as PyTorch's optim.SGD.

    With g = dp, and for each parameter p (lr: learning rate, wd: weight decay, mu: momentum,
    tau: dampening):

        g <- g + wd * p                     weight decay = the gradient of an L2 term (wd/2)|p|^2
        b <- g                              on the first step (no dampening on it), then
        b <- mu * b + (1 - tau) * g         a running, exponentially decaying sum of gradients
        g <- g + mu * b   (Nesterov)   or   g <- b   (classic momentum)
        p <- p - lr * g

    With mu = 0 this is plain SGD, p <- p - lr * dp. Nesterov "looks ahead": it steps
    along the current gradient plus the momentum it is about to have.
    state: one momentum buffer b per parameter, created on the first step.
    """

    def __init__(self, params: list[Tensor], grads: list[Tensor], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight decay must be >= 0, got {momentum} and {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening 0 (as PyTorch's optim.SGD)")
        self.momentum, self.dampening, self.nesterov, self.weight_decay = momentum, dampening, nesterov, weight_decay
        self.momentum_buffers: list[Tensor | None] = [None] * len(params)

    def step(self) -> None:
        if self.momentum == 0 and self.weight_decay == 0:
            # Plain SGD, p <- p - lr * dp, for all parameters in one call: the same arithmetic as the
            # loop below, minus a Python round trip per tensor (a tenth of a small network's step).
            torch._foreach_add_(self.params, self.grads, alpha=-self.lr)
            return
        for i, (p, dp) in enumerate(zip(self.params, self.grads, strict=True)):
            g = dp
            if self.weight_decay != 0:
                g = g.add(p, alpha=self.weight_decay)  # a new tensor: the layer's dp stays the loss gradient
            if self.momentum != 0:
                b = self.momentum_buffers[i]
                if b is None:
                    b = self.momentum_buffers[i] = g.clone()
                else:
                    b.mul_(self.momentum).add_(g, alpha=1 - self.dampening)
                g = g.add(b, alpha=self.momentum) if self.nesterov else b
            p.add_(g, alpha=-self.lr)

    def state_tensors(self) -> list[Tensor]:
        return [b for b in self.momentum_buffers if b is not None]


class Adam(Optimizer):
    """Adam: a step per coordinate, scaled by running averages of the gradient and its square (PyTorch's optim.Adam).

    With g = dp, step count t = 1, 2, ..., (beta1, beta2) = betas:

        g <- g + wd * p                          L2 weight decay, folded into the gradient (Adam only)
        m <- beta1 * m + (1 - beta1) * g         first moment: a running mean of g
        v <- beta2 * v + (1 - beta2) * g^2       second moment: a running mean of g^2
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)     bias correction: m, v start at 0
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)                  eps is added AFTER the square root

    torch computes the last line as  p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps),
    and so does this code, so the rounding matches too.
    state: m and v (zeros at first) per parameter, and the step count t.
    """

    decoupled_weight_decay = False

    def __init__(self, params: list[Tensor], grads: list[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 or weight_decay < 0:
            raise ValueError(f"Adam needs 0 <= betas < 1, eps >= 0, weight_decay >= 0; "
                             f"got {betas}, {eps}, {weight_decay}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.exp_avgs = [p.new_zeros(p.shape) for p in params]  # m
        self.exp_avg_sqs = [p.new_zeros(p.shape) for p in params]  # v
        self.t = 0

    def step(self) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        # Scalars in Python floats (double precision), as torch computes them.
        bias_correction1 = 1 - beta1**self.t
        bias_correction2_sqrt = (1 - beta2**self.t) ** 0.5
        step_size = self.lr / bias_correction1
        for p, dp, m, v in zip(self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, strict=True):
            g = dp
            if self.weight_decay != 0:
                if self.decoupled_weight_decay:
                    p.mul_(1 - self.lr * self.weight_decay)
                else:
                    g = g.add(p, alpha=self.weight_decay)
            # lerp_ computes m + (1 - beta1) * (g - m) = beta1 * m + (1 - beta1) * g; torch uses this op.
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)

    def state_tensors(self) -> list[Tensor]:
        return [*self.exp_avgs, *self.exp_avg_sqs]


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's optim.AdamW): the decay bypasses the moments.

        p <- p * (1 - lr * wd)                   shrink the weights directly, first ...
        then the Adam update above with wd = 0   ... then step with the loss gradient alone

    Why it differs from Adam with L2 (weight_decay in Adam): there, wd * p is added to g and
    then divided by sqrt(v_hat) like the rest of the gradient, so weights with large
    gradients are barely decayed and weights with tiny gradients are decayed hugely. AdamW
    decays every weight by the same factor, lr * wd, whatever its gradient history.
    Default weight_decay 0.01, as torch.
    """

    decoupled_weight_decay = True

    def __init__(self, params: list[Tensor], grads: list[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, grads, lr, betas, eps, weight_decay)
