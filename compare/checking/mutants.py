"""Deliberately wrong backward passes (mutants): the bugs people really make, each one the checker must catch.

    python -m compare check --mutants            # every mutant, then the correct subjects over 200 seeds

Each mutant is a small subclass of a correct scratch layer, loss or optimizer (or a replacement of
one method of the autograd engine) with ONE realistic bug, described by its docstring's first line.
A `Subject` is the correct thing and how to check it; the same subjects, unmutated, are checked
over many seeds to count false positives. Adding a mutant is one class and one line in `MUTANTS`;
adding a layer to the suite is one line in `SUBJECTS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

import scratch
from compare.checking.backward import check_backward
from compare.checking.optimizers import check_optimizer
from compare.checking.results import CheckResult
from compare.checking.targets import engine

# ---------------------------------------------------------------------- subjects: the correct things


@dataclass(frozen=True)
class Patch:
    """One attribute of the autograd engine replaced while a check runs: an engine's bugs live in its methods."""

    owner: object  # engine.Value or the engine module
    attr: str
    replacement: Callable

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        original = getattr(self.owner, self.attr)
        setattr(self.owner, self.attr, self.replacement)
        try:
            yield
        finally:
            setattr(self.owner, self.attr, original)


@dataclass(frozen=True)
class Subject:
    """A correct layer, loss, engine expression or optimizer, and the check that its mutants must fail."""

    name: str
    target: object  # the correct class (or function on engine Values)
    check_with: Callable[[object, list[int]], CheckResult]  # (what to check, seeds) -> result

    def check(self, seeds: list[int], mutant: type | Patch | None = None) -> CheckResult:
        if isinstance(mutant, Patch):
            with mutant.applied():
                return self.check_with(self.target, seeds)
        return self.check_with(self.target if mutant is None else mutant, seeds)


def layer(name: str, cls: type, *args: object, shape: tuple[int, ...]) -> Subject:
    """A scratch layer or loss, checked against its torch twin (found through the mutant's base class too)."""
    return Subject(name, cls, lambda target, seeds: check_backward(target, args=args, shapes=[shape], seeds=seeds))


def expression(name: str, fn: Callable, *shapes: tuple[int, ...]) -> Subject:
    """A function of engine Values, checked against the same function on torch tensors."""
    return Subject(name, fn, lambda target, seeds: check_backward(target, kind="engine", shapes=shapes, seeds=seeds))


def optimizer(name: str, cls: type, **kwargs: object) -> Subject:
    return Subject(name, cls, lambda target, seeds: check_optimizer(target, kwargs=kwargs, seeds=seeds))


def linear_tanh(x, weight, bias):  # matmul, transpose, a broadcast add, tanh
    return (x @ weight.T + bias).tanh()


def silu_skip(x, weight):  # h is used three times: its gradient is the sum of three shares
    h = x @ weight.T
    return h * h.sigmoid() + h


def standardize(x, shift):  # sub, mul, mean, a power 0.5, div; c is used three times
    c = x - shift
    return c / ((c * c).mean(dim=1, keepdim=True) + 1e-3) ** 0.5


def log_probs(x, weight):
    return (x @ weight.T).log_softmax(dim=1)


LINEAR = layer("linear", scratch.Linear, 5, 4, shape=(4, 5))
CONV = layer("conv2d", scratch.Conv2d, 2, 3, 3, 1, 1, shape=(2, 2, 6, 6))  # 3x3 kernel, stride 1, padding 1
CONV_STRIDED = layer("conv2d-strided", scratch.Conv2d, 2, 3, 3, 2, 0, shape=(2, 2, 7, 7))
MAX_POOL = layer("max-pool", scratch.MaxPool2d, 2, shape=(2, 3, 6, 6))
AVG_POOL = layer("avg-pool", scratch.AvgPool2d, 2, shape=(2, 3, 6, 6))
BATCH_NORM_2D = layer("batch-norm-2d", scratch.BatchNorm2d, 3, shape=(4, 3, 3, 3))
LINEAR_SQUARE = layer("linear-square", scratch.Linear, 6, 6, shape=(4, 6))  # in = out: a transpose keeps the shape
RELU = layer("relu", scratch.ReLU, shape=(4, 6))
SIGMOID = layer("sigmoid", scratch.Sigmoid, shape=(4, 6))
TANH = layer("tanh", scratch.Tanh, shape=(4, 6))
LEAKY_RELU = layer("leaky-relu", scratch.LeakyReLU, 0.1, shape=(4, 6))
GELU = layer("gelu", scratch.GELU, shape=(4, 6))
BATCH_NORM = layer("batch-norm", scratch.BatchNorm1d, 5, shape=(6, 5))
DROPOUT = layer("dropout", scratch.Dropout, 0.5, shape=(4, 6))
MLP = layer("mlp-6-5-3", scratch.MLP, 6, (5,), "relu", 3, shape=(4, 6))
CROSS_ENTROPY = layer("cross-entropy", scratch.CrossEntropyLoss, shape=(6, 5))
MSE = layer("mse", scratch.MSELoss, shape=(6, 5))
ENGINE_LINEAR_TANH = expression("engine-linear-tanh", linear_tanh, (4, 5), (3, 5), (3,))
ENGINE_SILU_SKIP = expression("engine-silu-skip", silu_skip, (4, 5), (3, 5))
ENGINE_STANDARDIZE = expression("engine-standardize", standardize, (4, 5), (5,))
ENGINE_LOG_PROBS = expression("engine-log-probs", log_probs, (4, 5), (3, 5))
SGD_MOMENTUM = optimizer("sgd-momentum", scratch.SGD, lr=0.1, momentum=0.9, weight_decay=0.1)
SGD_NESTEROV = optimizer("sgd-nesterov", scratch.SGD, lr=0.1, momentum=0.9, nesterov=True)
ADAM = optimizer("adam", scratch.Adam, lr=1e-2, weight_decay=0.1)
ADAMW = optimizer("adamw", scratch.AdamW, lr=1e-2, weight_decay=0.1)

SUBJECTS = [LINEAR, LINEAR_SQUARE, RELU, SIGMOID, TANH, LEAKY_RELU, GELU, BATCH_NORM, DROPOUT, MLP, CROSS_ENTROPY,
            CONV, CONV_STRIDED, MAX_POOL, AVG_POOL, BATCH_NORM_2D, MSE, ENGINE_LINEAR_TANH, ENGINE_SILU_SKIP,
            ENGINE_STANDARDIZE, ENGINE_LOG_PROBS, SGD_MOMENTUM, SGD_NESTEROV, ADAM, ADAMW]

# ---------------------------------------------------------------------- mutants of the layers


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
            return torch.zeros_like(self.x)
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


# ---------------------------------------------------------------------- mutants of the autograd engine


def backward_assigns(self: engine.Value, grad: Tensor | None = None, retain_graph: bool = False) -> None:
    """`grads[parent] = share` instead of `+=`: a value used twice keeps only the share of its last use."""
    grads = {self: grad if grad is not None else torch.ones_like(self.data)}
    for node in reversed(self.topological_order()):
        dout = grads.pop(node)
        node._add_to_grad(dout)
        for parent, dparent in zip(node._parents, node._backward(dout) if node._parents else (), strict=True):
            if parent.requires_grad:
                grads[parent] = engine._sum_to_shape(dparent, parent.shape, node._op)


def sub_keeps_sign(self: engine.Value, other: engine.Value | Tensor | float) -> engine.Value:
    """a - b with db = dout: the minus sign of the second operand's gradient dropped."""
    other = self._lift(other)
    return engine._result(self.data - other.data, (self, other), "sub", lambda dout: (dout, dout))


def mean_without_n(self: engine.Value, dim: int | None = None, keepdim: bool = False) -> engine.Value:
    """mean's rule copies dout back without dividing by n (the rule of sum)."""
    dims, in_shape = engine._dims(dim, self.data.dim()), self.data.shape
    return engine._result(self.data.mean(dim=dims, keepdim=keepdim), (self,), "mean",
                          lambda dout: (engine._unreduce(dout, in_shape, dims, keepdim),))


def pow_exponent_not_lowered(self: engine.Value, exponent: float) -> engine.Value:
    """a ** p with da = dout * p * a^p: the exponent not lowered by one."""
    a = self.data
    return engine._result(a ** exponent, (self,), f"pow {exponent:g}", lambda dout: (dout * exponent * a ** exponent,))


def log_softmax_without_sum(self: engine.Value, dim: int = -1) -> engine.Value:
    """log_softmax with da = dout - softmax(a): the sum of dout over the dim dropped (right only if it is 1)."""
    shifted = self.data - self.data.amax(dim=dim, keepdim=True)
    out = shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
    return engine._result(out, (self,), "log_softmax", lambda dout: (dout - torch.exp(out),))


def tanh_missing_square(self: engine.Value) -> engine.Value:
    """tanh with da = dout * (1 - out): the square in tanh' = 1 - tanh^2 forgotten."""
    out = torch.tanh(self.data)
    return engine._result(out, (self,), "tanh", lambda dout: (dout * (1 - out),))


def sum_to_shape_averages(grad: Tensor, shape: torch.Size, op: str) -> Tensor:
    """broadcasting undone by averaging instead of summing: a broadcast bias gets the batch mean of its gradient."""
    if grad.shape == shape:
        return grad
    extra = grad.dim() - len(shape)
    if extra > 0:
        grad = grad.mean(dim=tuple(range(extra)))
    stretched = tuple(d for d, n in enumerate(shape) if n == 1 and grad.shape[d] != 1)
    return grad.mean(dim=stretched, keepdim=True) if stretched else grad


# ---------------------------------------------------------------------- mutants of the optimizers


class AdamWithoutBiasCorrection(scratch.Adam):
    """m and v used as they are, not divided by 1 - beta^t: the first steps are ~3x too large."""

    def step(self) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        for p, dp, m, v in zip(self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, strict=True):
            g = dp.add(p, alpha=self.weight_decay) if self.weight_decay else dp
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.addcdiv_(m, v.sqrt().add_(self.eps), value=-self.lr)


class AdamWDecayAfterUpdate(scratch.AdamW):
    """the weights shrunk by (1 - lr wd) after the Adam step instead of before it: the decay scales the update too."""

    def step(self) -> None:
        decay, self.weight_decay = self.weight_decay, 0.0
        super().step()
        self.weight_decay = decay
        for p in self.params:
            p.mul_(1 - self.lr * decay)


class SGDWeightDecayAfterMomentum(scratch.SGD):
    """wd * p added to the step after the momentum buffer instead of to the gradient before it."""

    def step(self) -> None:
        for i, (p, dp) in enumerate(zip(self.params, self.grads, strict=True)):
            b = self.momentum_buffers[i]
            if b is None:
                b = self.momentum_buffers[i] = dp.clone()
            else:
                b.mul_(self.momentum).add_(dp, alpha=1 - self.dampening)
            p.add_(b.add(p, alpha=self.weight_decay), alpha=-self.lr)


class SGDNesterovWithoutLookahead(scratch.SGD):
    """Nesterov's step taken along the momentum buffer alone (g <- b), not g + mu * b: classic momentum."""

    def step(self) -> None:
        self.nesterov = False
        try:
            super().step()
        finally:
            self.nesterov = True


# ---------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Mutant:
    name: str
    subject: Subject
    bug: type | Patch  # a subclass of the subject's class, or a replaced engine method

    @property
    def description(self) -> str:
        doc = (self.bug.replacement if isinstance(self.bug, Patch) else self.bug).__doc__ or ""
        return doc.strip().splitlines()[0]

    def check(self, seeds: list[int]) -> CheckResult:
        return self.subject.check(seeds, self.bug)


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
    Mutant("engine-assign-instead-of-accumulate", ENGINE_SILU_SKIP, Patch(engine.Value, "backward", backward_assigns)),
    Mutant("engine-sub-keeps-sign", ENGINE_STANDARDIZE, Patch(engine.Value, "__sub__", sub_keeps_sign)),
    Mutant("engine-mean-without-n", ENGINE_STANDARDIZE, Patch(engine.Value, "mean", mean_without_n)),
    Mutant("engine-pow-exponent-not-lowered", ENGINE_STANDARDIZE,
           Patch(engine.Value, "__pow__", pow_exponent_not_lowered)),
    Mutant("engine-log-softmax-without-sum", ENGINE_LOG_PROBS,
           Patch(engine.Value, "log_softmax", log_softmax_without_sum)),
    Mutant("engine-tanh-missing-square", ENGINE_LINEAR_TANH, Patch(engine.Value, "tanh", tanh_missing_square)),
    Mutant("engine-broadcast-averaged", ENGINE_LINEAR_TANH, Patch(engine, "_sum_to_shape", sum_to_shape_averages)),
    Mutant("adam-without-bias-correction", ADAM, AdamWithoutBiasCorrection),
    Mutant("adamw-decay-after-update", ADAMW, AdamWDecayAfterUpdate),
    Mutant("sgd-weight-decay-after-momentum", SGD_MOMENTUM, SGDWeightDecayAfterMomentum),
    Mutant("sgd-nesterov-without-lookahead", SGD_NESTEROV, SGDNesterovWithoutLookahead),
]
