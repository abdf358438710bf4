"""L1 and L2 regularization as a torch user writes it: a penalty term added to the loss, differentiated by autograd.

    >>> penalty = Penalty(model, l1=0.0, l2=1e-3)
    >>> loss = criterion(model(x), y) + penalty()      # then loss.backward(); optimizer.step()

    R(w) = l1 * sum_k |w_k|_1 + l2 * 1/2 * sum_k |w_k|_2^2

over the same weights as scratch/regularization.py (`is_penalized`: weight matrices and kernels, not biases or
norm scales). Nothing here computes a gradient: autograd differentiates R, taking sgn(0) = 0 for |w| at 0.
"""

from __future__ import annotations

from torch import Tensor, nn

from scratch.regularization import is_penalized  # which tensors are penalized: a plain rule on names and shapes


class Penalty(nn.Module):
    """R(w) of `model`'s penalized weights, as a differentiable 0-dim tensor (0 when both rates are 0)."""

    def __init__(self, model: nn.Module, l1: float = 0.0, l2: float = 0.0) -> None:
        super().__init__()
        if not (l1 >= 0 and l2 >= 0):
            raise ValueError(f"regularization rates must be >= 0, got l1={l1} and l2={l2}")
        self.l1, self.l2 = l1, l2
        # a plain list, not registered: the weights belong to `model`, this module only reads them
        self.weights = [p for n, p in model.named_parameters() if is_penalized(n, p.shape)]

    def forward(self) -> Tensor | float:
        total: Tensor | float = 0
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in self.weights)
        if self.l2:
            total = total + self.l2 * 0.5 * sum(w.pow(2).sum() for w in self.weights)
        return total
