"""Layers that only change a tensor's shape: no arithmetic, so the gradient is reshaped back.

    >>> Flatten()(maps).shape        # maps: [B, 16, 5, 5]  ->  [B, 400], ready for a Linear layer
"""

from __future__ import annotations

from torch import Tensor

from scratch.module import Module


class Flatten(Module):
    """Dimensions start_dim..end_dim merged into one (as PyTorch's `nn.Flatten`; by default all but the batch).

    forward:   out = x.flatten(start_dim, end_dim)          [B, C, H, W] -> [B, C*H*W]
    backward:  dx  = dout.reshape(x.shape)                  [B, C*H*W]   -> [B, C, H, W]
    Every output entry is one input entry, so the gradient is dout with the input's shape again.
    cache: the input's shape.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.x_shape = tuple(x.shape)
        return x.flatten(self.start_dim, self.end_dim)  # B,C*H*W

    def backward(self, dout: Tensor) -> Tensor:
        if self.x_shape is None:
            raise RuntimeError("Flatten.backward called before forward; run forward on a batch first")
        return dout.reshape(self.x_shape)  # B,C,H,W

    def __repr__(self) -> str:
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"
