"""Mutants of the layers and losses: each a small subclass of a correct scratch class with ONE realistic bug,
described by its docstring's first line, and its line in MUTANTS (the subject it mutates)."""

from __future__ import annotations

import torch
from torch import Tensor

import scratch
from compare.checking.mutants.subjects import (
    AVG_POOL,
    BATCH_NORM,
    BATCH_NORM_2D,
    CONV,
    CONV_STRIDED,
    CROSS_ENTROPY,
    DROPOUT,
    GELU,
    LEAKY_RELU,
    LINEAR,
    LINEAR_SQUARE,
    MAX_POOL,
    MSE,
    RELU,
    SIGMOID,
    TANH,
    Mutant,
)


class LinearWeightGradTransposed(scratch.Linear):
    """dW = x^T dout instead of dout^T x: the weight gradient transposed (a square layer hides the shape)."""

    def backward(self, dout: Tensor) -> Tensor:
        self.dweight.copy_(self.x.t() @ dout)
        self.dbias.copy_(dout.sum(dim=0))
        return dout @ self.weight


class LinearBiasGradAveraged(scratch.Linear):
    """db = the mean of dout over the batch instead of its sum."""

    def backward(self, dout: Tensor) -> Tensor:
        dx = super().backward(dout)
        self.dbias.copy_(dout.mean(dim=0))
        return dx


class LinearInputGradTransposedWeight(scratch.Linear):
    """dx = dout W^T instead of dout W: only the input gradient is wrong, unseen when the layer comes first."""

    def backward(self, dout: Tensor) -> Tensor:
        super().backward(dout)
        return dout @ self.weight.t()


class ReluMaskFromDout(scratch.ReLU):
    """dx = dout * [dout > 0]: the ReLU mask taken from the upstream gradient instead of the output."""

    def backward(self, dout: Tensor) -> Tensor:
        return dout * (dout > 0)


class ReluNoMask(scratch.ReLU):
    """dx = dout: the gradient passed on where the unit was off, as if ReLU were the identity."""

    def backward(self, dout: Tensor) -> Tensor:
        return dout


class SigmoidDerivativeOfInput(scratch.Sigmoid):
    """dx = dout * x (1 - x): sigmoid's derivative written with the input where the output belongs."""

    def forward(self, x: Tensor) -> Tensor:
        self.x = x
        return super().forward(x)

    def backward(self, dout: Tensor) -> Tensor:
        return dout * self.x * (1 - self.x)


class TanhMissingSquare(scratch.Tanh):
    """dx = dout * (1 - out): the square in tanh' = 1 - tanh^2 forgotten."""

    def backward(self, dout: Tensor) -> Tensor:
        return dout * (1 - self.out)


class LeakyReluSlopeForgotten(scratch.LeakyReLU):
    """dx = dout * [x > 0]: the negative slope forgotten in backward (the forward has it)."""

    def backward(self, dout: Tensor) -> Tensor:
        return dout * self.positive


class GeluMissingProductRule(scratch.GELU):
    """dx = dout * Phi(x): the second term of the product rule, x phi(x), forgotten."""

    def backward(self, dout: Tensor) -> Tensor:
        return dout * self.cdf


class BatchNormUnbiasedVariance(scratch.BatchNorm1d):
    """normalises by the unbiased variance (x.var() divides by B - 1), where torch and the backward use 1/B."""

    def forward(self, x: Tensor) -> Tensor:
        self.batch_stats = True
        self.invstd = torch.rsqrt(x.var(dim=0) + self.eps)  # F; torch's var is unbiased by default
        self.xhat = (x - x.mean(dim=0)) * self.invstd  # B,F
        return self.xhat * self.weight + self.bias


class BatchNormStatisticsAsConstants(scratch.BatchNorm1d):
    """dx = dout * weight / sqrt(var + eps): the batch mean and variance treated as constants in training."""

    def backward(self, dout: Tensor) -> Tensor:
        super().backward(dout)
        return dout * self.weight * self.invstd


class BatchNormMissingMeanTerm(scratch.BatchNorm1d):
    """dx without its - sum_b dxhat_b term: the gradient through the batch mean forgotten."""

    def backward(self, dout: Tensor) -> Tensor:
        super().backward(dout)
        dxhat, batch = dout * self.weight, dout.shape[0]
        return (self.invstd / batch) * (batch * dxhat - self.xhat * (dxhat * self.xhat).sum(dim=0))


class BatchNormDxWithoutWeight(scratch.BatchNorm1d):
    """dxhat = dout instead of dout * weight: hidden while the weight is all ones, as a fresh layer's is."""

    def backward(self, dout: Tensor) -> Tensor:
        super().backward(dout)
        dxhat, batch = dout, dout.shape[0]
        return (self.invstd / batch) * (batch * dxhat - dxhat.sum(dim=0) - self.xhat * (dxhat * self.xhat).sum(dim=0))


class DropoutNotRescaled(scratch.Dropout):
    """kept units not scaled by 1/(1 - p), in forward and backward alike (so they agree with each other)."""

    def forward(self, x: Tensor) -> Tensor:
        self.mask = torch.empty_like(x).bernoulli_(1 - self.p)  # B,H of 0s and 1s, never divided
        return x * self.mask


class DropoutFreshMaskInBackward(scratch.Dropout):
    """backward draws a new random mask instead of reusing the forward's."""

    def backward(self, dout: Tensor) -> Tensor:
        return dout * torch.empty_like(dout).bernoulli_(1 - self.p).div_(1 - self.p)


class CrossEntropyMissingBatchMean(scratch.CrossEntropyLoss):
    """dz = (softmax(z) - onehot(y)) * dL: the 1/B of the batch mean forgotten."""

    def backward(self, dloss: float | Tensor = 1.0) -> Tensor:
        dlogits = self.probs.clone()
        dlogits.scatter_(1, self.target, -1.0, reduce="add")
        return dlogits * dloss


class CrossEntropyWithoutSoftmax(scratch.CrossEntropyLoss):
    """dz = (z - onehot(y)) / B: the logits used where the softmax probabilities belong."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self.logits = logits
        return super().forward(logits, target)

    def backward(self, dloss: float | Tensor = 1.0) -> Tensor:
        dlogits = self.logits.clone()
        dlogits.scatter_(1, self.target, -1.0, reduce="add")
        return dlogits * (dloss / len(dlogits))


class CrossEntropyIgnoresUpstream(scratch.CrossEntropyLoss):
    """dz = (softmax(z) - onehot(y)) / B whatever dL is: right only when the upstream gradient is 1."""

    def backward(self, dloss: float | Tensor = 1.0) -> Tensor:
        return super().backward(1.0)


class MSEMissingFactorTwo(scratch.MSELoss):
    """dout = (out - t) / (B C): the 2 of the square's derivative forgotten."""

    def backward(self, dloss: float | Tensor = 1.0) -> Tensor:
        return self.diff * (dloss / self.diff.numel())


class MSEMeanOverBatchOnly(scratch.MSELoss):
    """dout = 2 (out - t) / B: divided by the batch size, where the forward averages over all B*C entries."""

    def backward(self, dloss: float | Tensor = 1.0) -> Tensor:
        return self.diff * (2 * dloss / self.diff.shape[0])


class ConvKernelNotFlipped(scratch.Conv2d):
    """dx from the kernel flipped twice over: a full convolution of dout with W where the rotated W belongs."""

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        weight = self.weight.clone()
        self.weight.copy_(weight.flip(2, 3))  # dweight does not read W; dx then uses the wrong orientation
        try:
            return super().backward(dout, input_grad)
        finally:
            self.weight.copy_(weight)


class ConvBiasGradMeanOverPositions(scratch.Conv2d):
    """dbias summed over the batch but averaged over the output positions (each position adds the bias once)."""

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        dx = super().backward(dout, input_grad)
        torch.mean(dout.sum(dim=0), dim=(1, 2), out=self.dbias)
        return dx


class ConvStrideIgnoredInBackward(scratch.Conv2d):
    """col2im with stride 1: the columns of a strided convolution scattered back to the wrong pixels."""

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        stride = self.stride
        self.stride = 1
        try:
            dx = super().backward(dout, input_grad)
        except RuntimeError:  # shapes that no longer fit: as wrong as it gets, give dx as zeros
            self.stride = stride
            return dout.new_zeros(self.x_shape)
        finally:
            self.stride = stride
        return dx


class MaxPoolGradientToEveryElement(scratch.MaxPool2d):
    """max pooling's gradient sent to every element of the window, not only to the arg-max."""

    def backward(self, dout: Tensor) -> Tensor:
        k = self.kernel_size
        return self.add_to_windows(dout.expand(k * k, *dout.shape))


class AvgPoolMissingDivision(scratch.AvgPool2d):
    """average pooling's gradient without the 1/k^2 of the mean."""

    def backward(self, dout: Tensor) -> Tensor:
        k = self.kernel_size
        return self.add_to_windows(dout.expand(k * k, *dout.shape))


class BatchNorm2dMeansPerPixel(scratch.BatchNorm2d):
    """dx with the mean terms taken per pixel (over the batch only), where the statistics were over B, H and W."""

    def backward(self, dout: Tensor) -> Tensor:
        super().backward(dout)  # dweight, dbias (right)
        xhat, s, dxhat = self.xhat, self.invstd, dout * self.weight.view(1, -1, 1, 1)
        n = dout.shape[0]
        return (s / n) * (n * dxhat - dxhat.sum(dim=0, keepdim=True) - xhat * (dxhat * xhat).sum(dim=0, keepdim=True))


MUTANTS = [
    Mutant("conv-kernel-not-flipped", CONV, ConvKernelNotFlipped),
    Mutant("conv-bias-grad-mean-over-positions", CONV, ConvBiasGradMeanOverPositions),
    Mutant("conv-stride-ignored-in-backward", CONV_STRIDED, ConvStrideIgnoredInBackward),
    Mutant("max-pool-gradient-to-every-element", MAX_POOL, MaxPoolGradientToEveryElement),
    Mutant("avg-pool-missing-division", AVG_POOL, AvgPoolMissingDivision),
    Mutant("batch-norm-2d-means-per-pixel", BATCH_NORM_2D, BatchNorm2dMeansPerPixel),
    Mutant("linear-weight-grad-transposed", LINEAR_SQUARE, LinearWeightGradTransposed),
    Mutant("linear-bias-grad-averaged", LINEAR, LinearBiasGradAveraged),
    Mutant("linear-input-grad-transposed-weight", LINEAR_SQUARE, LinearInputGradTransposedWeight),
    Mutant("relu-mask-from-dout", RELU, ReluMaskFromDout),
    Mutant("relu-no-mask", RELU, ReluNoMask),
    Mutant("sigmoid-derivative-of-input", SIGMOID, SigmoidDerivativeOfInput),
    Mutant("tanh-missing-square", TANH, TanhMissingSquare),
    Mutant("leaky-relu-slope-forgotten", LEAKY_RELU, LeakyReluSlopeForgotten),
    Mutant("gelu-missing-product-rule", GELU, GeluMissingProductRule),
    Mutant("batch-norm-unbiased-variance", BATCH_NORM, BatchNormUnbiasedVariance),
    Mutant("batch-norm-statistics-as-constants", BATCH_NORM, BatchNormStatisticsAsConstants),
    Mutant("batch-norm-missing-mean-term", BATCH_NORM, BatchNormMissingMeanTerm),
    Mutant("batch-norm-dx-without-weight", BATCH_NORM, BatchNormDxWithoutWeight),
    Mutant("dropout-not-rescaled", DROPOUT, DropoutNotRescaled),
    Mutant("dropout-fresh-mask-in-backward", DROPOUT, DropoutFreshMaskInBackward),
    Mutant("cross-entropy-missing-batch-mean", CROSS_ENTROPY, CrossEntropyMissingBatchMean),
    Mutant("cross-entropy-without-softmax", CROSS_ENTROPY, CrossEntropyWithoutSoftmax),
    Mutant("cross-entropy-ignores-upstream", CROSS_ENTROPY, CrossEntropyIgnoresUpstream),
    Mutant("mse-missing-factor-two", MSE, MSEMissingFactorTwo),
    Mutant("mse-mean-over-batch-only", MSE, MSEMeanOverBatchOnly),
]
