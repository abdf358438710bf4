"""Batch normalization written by hand: standardize each feature over the batch, then scale and shift.

    >>> bn = BatchNorm1d(64)
    >>> out = bn(h)                  # h: [B, 64]; training: batch statistics, running estimates updated
    >>> dh = bn.backward(dout)       # fills bn.dweight, bn.dbias
    >>> bn.eval(); bn(h)             # evaluation: the running estimates instead of the batch's

Between a Linear layer and its activation it keeps every hidden neuron's input near mean 0
and variance 1 whatever the earlier layers do, which lets larger learning rates train stably.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.module import Module


class BatchNorm1d(Module):
    """Batch normalization over the batch dimension of [B, F] inputs (as `torch.nn.BatchNorm1d`).

    forward, training (statistics of this batch, per feature f):
        mu = (1/B) sum_b x_b                      var = (1/B) sum_b (x_b - mu)^2   (biased: divides by B)
        xhat = (x - mu) / sqrt(var + eps)         out = weight * xhat + bias
        running_mean <- (1 - momentum) * running_mean + momentum * mu
        running_var  <- (1 - momentum) * running_var  + momentum * var * B / (B - 1)   (unbiased estimate)
    forward, evaluation: the same with mu = running_mean, var = running_var (nothing updated).

    backward (with dxhat = dout * weight, s = 1 / sqrt(var + eps), sums over the batch):
        dbias   = sum_b dout_b
        dweight = sum_b dout_b * xhat_b
        dx      = (s / B) * (B * dxhat - sum_b dxhat_b - xhat * sum_b (dxhat_b * xhat_b))   training
        dx      = s * dxhat                                                               evaluation
    Derivation of the training dx (one feature; mu and var depend on every x_i):
        d var / d x_i = (2/B)(x_i - mu)   (the mu term drops out: sum_b (x_b - mu) = 0)
        so  d sqrt(var + eps) / d x_i = s (x_i - mu) / B = xhat_i / B, and
        d xhat_j / d x_i = s (delta_ij - 1/B) - (x_j - mu) s^2 xhat_i / B = (s / B)(B delta_ij - 1 - xhat_i xhat_j).
        dx_i = sum_j dxhat_j d xhat_j / d x_i gives the compact formula above.
    cache: xhat and s, all the compact formula needs (plus which mode the forward ran in).
    """

    param_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"BatchNorm1d needs a positive number of features, got {num_features}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = torch.ones(num_features)  # gamma: starts as "keep the standardized value"
        self.bias = torch.zeros(num_features)  # beta
        self.dweight = torch.zeros(num_features)
        self.dbias = torch.zeros(num_features)
        self.running_mean = torch.zeros(num_features)
        self.running_var = torch.ones(num_features)
        self.num_batches_tracked = torch.tensor(0, dtype=torch.int64)
        self.xhat: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}) expects input of shape [batch, {self.num_features}], "
                             f"got {list(x.shape)}")
        self.batch_stats = self.training
        if self.training:
            batch = x.shape[0]
            if batch < 2:
                raise ValueError("BatchNorm1d in training mode needs at least 2 examples per batch to compute a "
                                 "variance; use a larger --batch-size (a last batch of 1 can be avoided the same way)")
            mean = x.mean(dim=0)  # F
            centered = x - mean  # B,F
            sum_sq = (centered * centered).sum(dim=0)  # F
            var = sum_sq / batch  # F, biased: used to normalize
            self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(sum_sq / (batch - 1), alpha=self.momentum)
            self.num_batches_tracked += 1
        else:
            centered = x - self.running_mean  # B,F
            var = self.running_var  # F
        self.invstd = torch.rsqrt(var + self.eps)  # F; s = 1/sqrt(var + eps)
        self.xhat = centered * self.invstd  # B,F
        return self.xhat * self.weight + self.bias  # B,F

    def backward(self, dout: Tensor) -> Tensor:
        if self.xhat is None:
            raise RuntimeError("BatchNorm1d.backward called before forward; run forward on a batch first")
        xhat, s = self.xhat, self.invstd
        torch.sum(dout, dim=0, out=self.dbias)  # F
        torch.sum(dout * xhat, dim=0, out=self.dweight)  # F
        dxhat = dout * self.weight  # B,F
        if not self.batch_stats:
            return dxhat * s  # B,F: the running statistics are constants
        batch = dout.shape[0]
        return (s / batch) * (batch * dxhat - dxhat.sum(dim=0) - xhat * (dxhat * xhat).sum(dim=0))  # B,F

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum})"
