"""Layer normalization written by hand: standardize each example's features, then scale and shift.

    >>> ln = LayerNorm(64)
    >>> out = ln(h)                  # h: [..., 64], e.g. [B, T, 64]: each token normalized on its own
    >>> dh = ln.backward(dout)       # fills ln.dweight, ln.dbias

Batch norm (scratch/batchnorm.py) takes its statistics over the batch, per feature; layer norm
takes them over the features, per example (per token), so it needs no running estimates and
behaves the same in training and evaluation. Transformers use it in front of every sub-layer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.module import Module


class LayerNorm(Module):
    """Layer normalization over the last dimension of [..., D] inputs (as PyTorch's `nn.LayerNorm(D)`).

    forward (per row x = x[n, :] of D features; N = all leading dimensions together):
        mu = (1/D) sum_d x_d                      var = (1/D) sum_d (x_d - mu)^2   (biased: divides by D)
        xhat = (x - mu) / sqrt(var + eps)         out = weight * xhat + bias       weight, bias: [D]
    backward (with dxhat = dout * weight, s = 1 / sqrt(var + eps) of the row, sums over the D features):
        dbias   = sum_n dout_n                    [D]  (sum over every leading position)
        dweight = sum_n dout_n * xhat_n           [D]
        dx      = (s / D) * (D * dxhat - sum_d dxhat_d - xhat * sum_d (dxhat_d * xhat_d))     [..., D]
                = s * (dxhat - xhat * mean_d(dxhat_d xhat_d)) - s * mean_d(dxhat_d)          (as computed: 4 passes)
    The derivation is batch norm's with the roles of the axes swapped: mu and var of a row depend on
    every feature of that row, d xhat_j / d x_i = (s / D)(D delta_ij - 1 - xhat_i xhat_j) (docs/attention.md).
    cache: xhat and s, all the compact formula needs.
    """

    param_names = ("weight", "bias")

    def __init__(self, normalized_shape: int, eps: float = 1e-5) -> None:
        super().__init__()
        if normalized_shape <= 0:
            raise ValueError(f"LayerNorm needs a positive number of features, got {normalized_shape}")
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = torch.ones(normalized_shape)  # gamma: starts as "keep the standardized value"
        self.bias = torch.zeros(normalized_shape)  # beta
        self.dweight = torch.zeros(normalized_shape)
        self.dbias = torch.zeros(normalized_shape)
        self.xhat: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.normalized_shape:
            raise ValueError(f"LayerNorm({self.normalized_shape}) expects inputs whose last dimension is "
                             f"{self.normalized_shape}, got shape {list(x.shape)}")
        centered = x - x.mean(dim=-1, keepdim=True)  # ...,D
        # sum_d (x_d - mu)^2 as the squared 2-norm of the row: one pass, no squares written out
        var = torch.linalg.vector_norm(centered, dim=-1, keepdim=True).square_().div_(self.normalized_shape)  # ...,1
        self.invstd = torch.rsqrt(var.add_(self.eps))  # ...,1; s = 1/sqrt(var + eps)
        self.xhat = centered.mul_(self.invstd)  # ...,D (centered's memory: it is not needed any more)
        return torch.addcmul(self.bias, self.xhat, self.weight)  # ...,D

    def backward(self, dout: Tensor) -> Tensor:
        if self.xhat is None:
            raise RuntimeError("LayerNorm.backward called before forward; run forward on a batch first")
        xhat, s = self.xhat, self.invstd
        features = xhat.shape[-1]
        rows_dout = dout.reshape(-1, features)  # N,D
        torch.sum(rows_dout, dim=0, out=self.dbias)  # D
        torch.sum(rows_dout * xhat.reshape(-1, features), dim=0, out=self.dweight)  # D
        dxhat = dout * self.weight  # ...,D
        # (s / D)(D dxhat - sum dxhat - xhat sum(dxhat xhat)) = s (dxhat - xhat m2) - s m1, with the row means
        # m1 = mean(dxhat) and m2 = mean(dxhat xhat) (a dot product along the row: no products written out)
        m1 = dxhat.mean(dim=-1, keepdim=True)  # ...,1
        m2 = torch.linalg.vecdot(dxhat, xhat, dim=-1).unsqueeze(-1).div_(features)  # ...,1
        return torch.addcmul(-s * m1, dxhat.addcmul_(xhat, m2, value=-1), s)  # ...,D

    def __repr__(self) -> str:
        return f"LayerNorm({self.normalized_shape}, eps={self.eps})"
