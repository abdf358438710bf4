"""The losses of `scratch/losses.py`, built from `torch.nn`; autograd computes their gradients."""

from __future__ import annotations

from torch import Tensor, nn

CrossEntropyLoss = nn.CrossEntropyLoss


class MSELoss(nn.Module):
    """`nn.MSELoss` against one-hot targets, so it takes class indices like the cross-entropy (or real targets
    shaped as the outputs, for regression)."""

    def __init__(self) -> None:
        super().__init__()
        self.mse = nn.MSELoss()

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        if target.is_floating_point():
            return self.mse(output, target.reshape(output.shape))
        onehot = nn.functional.one_hot(target, output.shape[1]).to(output.dtype)
        return self.mse(output, onehot)


LOSSES: dict[str, type[nn.Module]] = {"cross-entropy": CrossEntropyLoss, "mse": MSELoss}
