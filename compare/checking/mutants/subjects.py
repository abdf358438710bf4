"""The correct things the mutants are made from (`Subject`s), and what a mutant is: a subject with one bug.

A `Subject` is a correct scratch layer, loss, engine expression or optimizer and how to check it; the same
subjects, unmutated, are checked over many seeds to count false positives (SUBJECTS). Adding a layer to
the suite is one line in SUBJECTS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import scratch
from compare.checking.backward import check_backward
from compare.checking.optimizers import check_optimizer
from compare.checking.results import CheckResult


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
    """A function of engine Values, checked against the same function on torch tensors in every mode the engine
    has: the backward, the forward mode (J t of each input) and the backward's own backward (order 2)."""
    return Subject(name, fn, lambda target, seeds: check_backward(target, kind="engine", shapes=shapes, seeds=seeds,
                                                                  order=2, forward_ad=True))


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


def batch_stats(x, weight, bias):  # a linear layer, then batch norm's statistics over the batch, as ops
    h = x @ weight.T + bias
    centred = h - h.mean(dim=0, keepdim=True)
    return centred * ((centred * centred).mean(dim=0, keepdim=True) + 1e-5).rsqrt()


def attention_weights(q, k):  # softmax(q k^T / sqrt(d)) along the keys
    return (q @ k.T * 0.5).softmax(dim=1)


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
ENGINE_BATCH_STATS = expression("engine-batch-stats", batch_stats, (4, 5), (3, 5), (3,))
ENGINE_ATTENTION = expression("engine-attention-weights", attention_weights, (4, 4), (3, 4))  # d = 4: 1/sqrt(d) = 0.5
SGD_MOMENTUM = optimizer("sgd-momentum", scratch.SGD, lr=0.1, momentum=0.9, weight_decay=0.1)
SGD_NESTEROV = optimizer("sgd-nesterov", scratch.SGD, lr=0.1, momentum=0.9, nesterov=True)
ADAM = optimizer("adam", scratch.Adam, lr=1e-2, weight_decay=0.1)
ADAMW = optimizer("adamw", scratch.AdamW, lr=1e-2, weight_decay=0.1)

SUBJECTS = [LINEAR, LINEAR_SQUARE, RELU, SIGMOID, TANH, LEAKY_RELU, GELU, BATCH_NORM, DROPOUT, MLP, CROSS_ENTROPY,
            CONV, CONV_STRIDED, MAX_POOL, AVG_POOL, BATCH_NORM_2D, MSE, ENGINE_LINEAR_TANH, ENGINE_SILU_SKIP,
            ENGINE_STANDARDIZE, ENGINE_LOG_PROBS, ENGINE_BATCH_STATS, ENGINE_ATTENTION, SGD_MOMENTUM, SGD_NESTEROV,
            ADAM, ADAMW]


@dataclass(frozen=True)
class Mutant:
    """A subject with ONE bug: the checker must fail it (layers.py, engine.py and optimizers.py list them)."""

    name: str
    subject: Subject
    bug: type | Patch  # a subclass of the subject's class, or a replaced engine method

    @property
    def description(self) -> str:
        doc = (self.bug.replacement if isinstance(self.bug, Patch) else self.bug).__doc__ or ""
        return doc.strip().splitlines()[0]

    def check(self, seeds: list[int]) -> CheckResult:
        return self.subject.check(seeds, self.bug)
