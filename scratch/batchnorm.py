"""Batch normalization written by hand: standardize each feature over the batch, then scale and shift.

    >>> bn = BatchNorm1d(64)
    >>> out = bn(h)                  # h: [B, 64]; training: batch statistics, running estimates updated
    >>> dh = bn.backward(dout)       # fills bn.dweight, bn.dbias
    >>> bn.eval(); bn(h)             # evaluation: the running estimates instead of the batch's
    >>> BatchNorm2d(6)(maps)         # maps: [B, 6, H, W]; one mean and variance per channel, over B, H and W

Between a Linear layer and its activation it keeps every hidden neuron's input near mean 0
and variance 1 whatever the earlier layers do, which lets larger learning rates train stably.
After a convolution, a channel is one feature seen at every position, so BatchNorm2d pools
its statistics over the positions as well as the batch: the same formulas, summed over more axes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.module import Module


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share: everything but the axes the statistics are taken over.

    Subclasses set `reduce_dims`, the input dimensions summed over (every one but the feature/channel
    dimension 1), and `_check_input`. Sums keep their dimensions (keepdim=True), so a per-feature value
    has shape [1, F] or [1, C, 1, 1] and broadcasts against the input; n below is the number of values
    each feature's statistics are taken over (B, or B*H*W).
    """

    param_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    reduce_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"{type(self).__name__} needs a positive number of features, got {num_features}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = torch.ones(num_features)  # gamma: starts as "keep the standardized value"
        self.bias = torch.zeros(num_features)  # beta
        self.dweight = torch.zeros(num_features)
        self.dbias = torch.zeros(num_features)
        self.running_mean = torch.zeros(num_features)
        self.running_var = torch.ones(num_features)
        self.num_batches_tracked = torch.tensor(0, dtype=torch.int64)
        self.xhat: Tensor | None = None

    def _check_input(self, x: Tensor) -> None:
        raise NotImplementedError

    def _per_feature(self, values: Tensor, x: Tensor) -> Tensor:
        """A [F] vector shaped to broadcast along x's feature dimension: [1, F] or [1, F, 1, 1]."""
        return values.view(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self.batch_stats = self.training
        if self.training:
            n = x.numel() // self.num_features
            if n < 2:
                raise ValueError(f"{type(self).__name__} in training mode needs at least 2 examples per batch "
                                 f"(at least 2 values per feature) to compute a variance, got input "
                                 f"{list(x.shape)}; use a larger --batch-size (a last batch of 1 can be avoided "
                                 "the same way)")
            mean = x.mean(dim=self.reduce_dims, keepdim=True)  # 1,F(,1,1)
            centered = torch.sub(x, mean, out=self.workspace("xhat", x.shape, x))  # as x: becomes xhat below
            # sum (x - mu)^2 as the squared 2-norm: one pass over the values, no squares written out
            sum_sq = torch.linalg.vector_norm(centered, dim=self.reduce_dims, keepdim=True).square_()  # 1,F(,1,1)
            var = sum_sq / n  # 1,F(,1,1), biased: used to normalize
            self.running_mean.mul_(1 - self.momentum).add_(mean.view(-1), alpha=self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(sum_sq.view(-1) / (n - 1), alpha=self.momentum)
            self.num_batches_tracked += 1
        else:
            centered = torch.sub(x, self._per_feature(self.running_mean, x), out=self.workspace("xhat", x.shape, x))
            var = self._per_feature(self.running_var, x)  # 1,F(,1,1)
        self.invstd = torch.rsqrt(var + self.eps)  # 1,F(,1,1); s = 1/sqrt(var + eps)
        self.xhat = centered.mul_(self.invstd)  # as x (in centered's memory, a workspace: kept for backward)
        return torch.addcmul(self._per_feature(self.bias, x), self.xhat, self._per_feature(self.weight, x))  # as x

    def backward(self, dout: Tensor) -> Tensor:
        if self.xhat is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward; run forward on a batch first")
        xhat, s = self.xhat, self.invstd
        torch.sum(dout, dim=self.reduce_dims, out=self.dbias)  # F
        torch.sum(dout * xhat, dim=self.reduce_dims, out=self.dweight)  # F
        scale = s * self._per_feature(self.weight, dout)  # 1,F(,1,1): s * weight
        if not self.batch_stats:
            return dout * scale  # as x: dxhat * s, the running statistics are constants
        # dx = (s / n)(n dxhat - sum dxhat - xhat sum(dxhat xhat)) with dxhat = dout * weight, whose sums are
        # weight * dbias and weight * dweight: per feature, dx = (s w) dout - (s w / n)(dbias + dweight xhat),
        # two passes over the values instead of six.
        n = dout.numel() // self.num_features
        per_n = scale / -n  # 1,F(,1,1)
        dx = torch.addcmul(per_n * self._per_feature(self.dbias, dout), dout, scale)  # as x
        return dx.addcmul_(xhat, per_n * self._per_feature(self.dweight, dout))  # as x

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features}, eps={self.eps}, momentum={self.momentum})"


class BatchNorm1d(_BatchNorm):
    """Batch normalization over the batch dimension of [B, F] inputs (as PyTorch's `nn.BatchNorm1d`).

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
    computed per feature as  dx = (s w) dout - (s w / B)(dbias + dweight * xhat)  (w = weight), since
    sum_b dxhat_b = w dbias and sum_b dxhat_b xhat_b = w dweight: two passes over the values, not six.
    Derivation of the training dx (one feature; mu and var depend on every x_i):
        d var / d x_i = (2/B)(x_i - mu)   (the mu term drops out: sum_b (x_b - mu) = 0)
        so  d sqrt(var + eps) / d x_i = s (x_i - mu) / B = xhat_i / B, and
        d xhat_j / d x_i = s (delta_ij - 1/B) - (x_j - mu) s^2 xhat_i / B = (s / B)(B delta_ij - 1 - xhat_i xhat_j).
        dx_i = sum_j dxhat_j d xhat_j / d x_i gives the compact formula above.
    cache: xhat and s, all the compact formula needs (plus which mode the forward ran in).
    """

    reduce_dims = (0,)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}) expects input of shape [batch, {self.num_features}], "
                             f"got {list(x.shape)}")


class BatchNorm2d(_BatchNorm):
    """Batch normalization of each channel of [B, C, H, W] feature maps (as PyTorch's `nn.BatchNorm2d`).

    BatchNorm1d's formulas with one change: each channel's statistics are taken over its
    n = B*H*W values (every example, every position), not over the B examples only:
        mu_c = (1/n) sum_{b,h,w} x[b,c,h,w]       var_c = (1/n) sum_{b,h,w} (x[b,c,h,w] - mu_c)^2
        xhat = (x - mu_c) / sqrt(var_c + eps)     out = weight_c * xhat + bias_c              [B, C, H, W]
        running_var <- (1 - momentum) * running_var + momentum * var_c * n / (n - 1)    (unbiased, n = B*H*W)
    backward (sums over b, h, w; n = B*H*W; dxhat = dout * weight_c; s = 1 / sqrt(var_c + eps)):
        dbias_c = sum dout          dweight_c = sum dout * xhat                                   [C]
        dx = (s / n) * (n * dxhat - sum dxhat - xhat * sum (dxhat * xhat))   training           [B, C, H, W]
        dx = s * dxhat                                                         evaluation
    The derivation is BatchNorm1d's with B replaced by n: nothing in it cared which axis the
    n values came from. So both classes run the same code (`_BatchNorm`), with other `reduce_dims`.
    cache: xhat and s (plus which mode the forward ran in).
    """

    reduce_dims = (0, 2, 3)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d({self.num_features}) expects input of shape "
                             f"[batch, {self.num_features}, height, width], got {list(x.shape)}")
