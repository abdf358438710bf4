"""L1 and L2 regularization written by hand: a penalty on the weights, and its gradient added to theirs.

TensorFlow Playground's regularization, for every network of this project:

    R(w) = l1 * sum_k sum_i |w_ki|  +  l2 * 1/2 * sum_k sum_i w_ki^2          (k: every penalized weight tensor)

    dR/dw_ki = l1 * sign(w_ki)  +  l2 * w_ki,      sign(0) = 0

The objective minimized is then loss + R(w). Its gradient is the loss's, which the layers' backward passes
left in their buffers (`dweight`), plus dR/dw, which `backward` adds to those buffers in place after the
network's backward pass: the optimizer then steps along the whole objective's gradient, as torch's optimizer
does after autograd differentiated loss + R.

|w| has no derivative at w = 0; any value in [-1, 1] is a subgradient there. sign(0) = 0 is the one torch's
autograd takes for `abs` (its backward is grad * sgn(w), and sgn(0) = 0), so a weight that is exactly 0
stays at 0 under plain SGD: the penalty neither pushes it nor lets it flip. (Playground takes the same.)

Penalized are the weight matrices and kernels only, every parameter named `...weight...` with two or more
dimensions (`is_penalized`): not the biases, and not the 1-D scales of batch norm and layer norm, whose size
says nothing about a network's complexity. This differs from `weight_decay` in scratch/optim.py, which
shrinks every parameter, biases included, inside the optimizer, and never appears in the loss.

    >>> penalty = Penalty(model.named_parameters(), model.named_gradients(), l1=0.0, l2=1e-3)
    >>> loss = loss_fn.forward(model.forward(x), y) + penalty.value()
    >>> model.backward(loss_fn.backward()); penalty.backward(); optimizer.step()

The derivation, and why L1 makes weights exactly 0 while L2 only shrinks them, is in docs/optimizers.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def is_penalized(name: str, shape: tuple[int, ...] | torch.Size) -> bool:
    """Whether a parameter is a weight matrix or kernel ("layers.0.weight", "weight_ih_l0", "in_proj_weight"):
    the regularized ones. Biases, norm scales (1-D) and embeddings (no "weight" in the name) are not."""
    return "weight" in name.rsplit(".", 1)[-1] and len(shape) >= 2


class Penalty:
    """L1 and L2 penalties on the penalized weights of a network, and their gradient, by hand.

    value:     R = l1 * sum_k |w_k|_1 + (l2 * 0.5) * sum_k |w_k|_2^2          (a 0-dim tensor)
    backward:  dw_k += l1 * sign(w_k) + l2 * w_k        (into the gradient buffers, in place)
    The sums run over the tensors in the order of named_parameters, as a user's sum() over
    model.parameters() does on the torch side, so that the two values round alike.
    """

    def __init__(self, named_parameters: Iterable[tuple[str, Tensor]], named_gradients: Iterable[tuple[str, Tensor]],
                 l1: float = 0.0, l2: float = 0.0) -> None:
        if not (l1 >= 0 and l2 >= 0):
            raise ValueError(f"regularization rates must be >= 0, got l1={l1} and l2={l2}")
        self.l1, self.l2 = l1, l2
        params, grads = dict(named_parameters), dict(named_gradients)
        self.names = [n for n, p in params.items() if is_penalized(n, p.shape)]
        self.weights = [params[n] for n in self.names]  # the layers' own tensors: updated in place by the optimizer
        self.gradients = [grads[n] for n in self.names]  # the layers' own gradient buffers (dweight)

    def value(self) -> Tensor | float:
        """R(w): a 0-dim tensor (0 when both rates are 0)."""
        total: Tensor | float = 0
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in self.weights)
        if self.l2:
            total = total + self.l2 * 0.5 * sum(w.pow(2).sum() for w in self.weights)
        return total

    def backward(self) -> None:
        """Add dR/dw to each penalized weight's gradient buffer: dw += l1 * sign(w), then dw += l2 * w.

        Each term is formed, then added (no fused multiply-add), as autograd adds its gradient of the penalty
        to the loss's: l2 * 0.5 * 2 * w is l2 * w rounded once, so the float64 sums agree to the last bit."""
        for w, dw in zip(self.weights, self.gradients, strict=True):
            if self.l1:
                dw.add_(torch.sign(w) * self.l1)  # sign(0) = 0: autograd's subgradient of |w| at 0
            if self.l2:
                dw.add_(w * self.l2)
