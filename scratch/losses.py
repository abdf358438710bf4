"""Loss functions written by hand: one number that says how wrong the network's outputs are.

Both take raw network outputs of shape [B, C] and integer class targets of shape [B],
return the mean loss over the batch, and `backward()` returns dL/doutputs.
"""

from __future__ import annotations

import torch
from torch import Tensor


class CrossEntropyLoss:
    """Softmax cross-entropy, averaged over the batch (as PyTorch's `nn.CrossEntropyLoss`).

    forward:   p = softmax(z),  L = -(1/B) sum_b log p[b, y_b]
               log p = z - m - log sum_c exp(z_c - m),  m = max_c z_c   (log-sum-exp: exp never overflows)
    backward:  dz = (p - onehot(y)) / B * dL
    cache: p (the softmax) and y.
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_loss_inputs(logits, target, "CrossEntropyLoss")
        shifted = logits - logits.amax(dim=1, keepdim=True)  # B,C: z - m; largest entry is 0
        exp = torch.exp(shifted)  # B,C
        sum_exp = exp.sum(dim=1, keepdim=True)  # B,1
        self.probs = exp / sum_exp  # B,C; reuses exp rather than exponentiating log p again (fewer kernels)
        self.target = target.unsqueeze(1)  # B,1: the class indices as a column, as gather and scatter_ take them
        # -log p[b, y_b] = log sum_c exp(z_c - m) - (z_y - m), for the target entries only
        return (torch.log(sum_exp) - shifted.gather(1, self.target)).mean()  # scalar

    def backward(self, dloss: float | Tensor = 1.0) -> Tensor:
        batch = self.probs.shape[0]
        dlogits = self.probs.clone()  # B,C
        # p[b, y_b] - 1 in every row; scatter_ needs no row-index tensor, unlike dlogits[arange(B), y] -= 1.
        dlogits.scatter_(1, self.target, -1.0, reduce="add")
        return dlogits.mul_(dloss / batch)  # in place: dlogits is this call's own copy

    __call__ = forward


class MSELoss:
    """Mean squared error against one-hot targets: the classic quadratic cost of the lesson.

    The output for the right class should be 1 and every other output 0.
    forward:   t = onehot(y),  L = (1/(B*C)) sum_{b,c} (out[b,c] - t[b,c])^2   (as `nn.MSELoss` on one-hot targets)
    backward:  dout = 2 (out - t) / (B*C) * dL
    cache: out - t.
    Regression: a floating-point target is t itself, [B, C] or, for one output, [B] (the playground's plane).
    """

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        if target.is_floating_point():
            if target.numel() != output.numel() or target.shape[0] != output.shape[0]:
                raise TypeError(f"MSELoss expects int64 class indices [batch], or real targets shaped as the outputs "
                                f"{list(output.shape)}; got {target.dtype} targets of shape {list(target.shape)}")
            self.diff = output - target.reshape(output.shape)  # B,C
            return (self.diff * self.diff).mean()
        check_loss_inputs(output, target, "MSELoss")
        onehot = torch.zeros_like(output)  # B,C
        onehot[torch.arange(output.shape[0], device=output.device), target] = 1
        self.diff = output - onehot  # B,C
        return (self.diff * self.diff).mean()

    def backward(self, dloss: float | Tensor = 1.0) -> Tensor:
        return self.diff * (2 * dloss / self.diff.numel())

    __call__ = forward


def check_loss_inputs(output: Tensor, target: Tensor, name: str) -> None:
    """Outputs [batch, classes] and int64 class indices [batch], or an error that says what was given.
    Shared with the engine's losses (scratch/engine.py), which pass their Value's tensor."""
    if output.dim() != 2 or target.dim() != 1 or output.shape[0] != target.shape[0]:
        raise ValueError(
            f"{name} expects outputs [batch, classes] and integer targets [batch], "
            f"got {list(output.shape)} and {list(target.shape)}"
        )
    if target.dtype != torch.int64:
        raise TypeError(f"{name} expects int64 class indices as targets, got {target.dtype}")


LOSSES: dict[str, type] = {"cross-entropy": CrossEntropyLoss, "mse": MSELoss}
