"""Mutants of the autograd engine: one method of `engine.Value` (or a function of the engine) replaced by a
version with ONE realistic bug while a check runs (a `Patch`), each with its line in MUTANTS."""

from __future__ import annotations

import torch
from torch import Tensor

from compare.checking.mutants.subjects import (
    ENGINE_LINEAR_TANH,
    ENGINE_LOG_PROBS,
    ENGINE_SILU_SKIP,
    ENGINE_STANDARDIZE,
    Mutant,
    Patch,
)
from compare.checking.targets import engine


def backward_assigns(self: engine.Value, grad: Tensor | None = None, retain_graph: bool = False,
                     create_graph: bool = False) -> None:
    """`grads[parent] = share` instead of `+=`: a value used twice keeps only the share of its last use."""
    grads = {self: grad if grad is not None else torch.ones_like(self.data)}
    for node in reversed(self.topological_order()):
        dout = grads.pop(node)
        node._add_to_grad(dout)
        shares = node._backward(dout, node.data, *(p.data for p in node._parents)) if node._parents else ()
        for parent, dparent in zip(node._parents, shares, strict=True):
            if parent.requires_grad:
                grads[parent] = engine._sum_to_shape(dparent, parent.shape, node._op)


def sub_keeps_sign(self: engine.Value, other: engine.Value | Tensor | float) -> engine.Value:
    """a - b with db = dout: the minus sign of the second operand's gradient dropped."""
    other = self._lift(other)
    return engine._result(self.data - other.data, (self, other), "sub", lambda dout, out, a, b: (dout, dout))


def mean_without_n(self: engine.Value, dim: int | None = None, keepdim: bool = False) -> engine.Value:
    """mean's rule copies dout back without dividing by n (the rule of sum)."""
    dims, in_shape = engine._dims(dim, self.data.dim()), self.data.shape
    return engine._result(self.data.mean(dim=dims, keepdim=keepdim), (self,), "mean",
                          lambda dout, out, a: (engine._unreduce(dout, in_shape, dims, keepdim),))


def pow_exponent_not_lowered(self: engine.Value, exponent: float) -> engine.Value:
    """a ** p with da = dout * p * a^p: the exponent not lowered by one."""
    a = self.data
    return engine._result(a ** exponent, (self,), f"pow {exponent:g}",
                          lambda dout, out, a: (dout * exponent * a ** exponent,))


def log_softmax_without_sum(self: engine.Value, dim: int = -1) -> engine.Value:
    """log_softmax with da = dout - softmax(a): the sum of dout over the dim dropped (right only if it is 1)."""
    shifted = self.data - self.data.amax(dim=dim, keepdim=True)
    out = shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
    return engine._result(out, (self,), "log_softmax", lambda dout, out, a: (dout - out.exp(),))


def tanh_missing_square(self: engine.Value) -> engine.Value:
    """tanh with da = dout * (1 - out): the square in tanh' = 1 - tanh^2 forgotten."""
    out = torch.tanh(self.data)
    return engine._result(out, (self,), "tanh", lambda dout, out, a: (dout * (1 - out),))


def sum_to_shape_averages(grad: Tensor, shape: torch.Size, op: str) -> Tensor:
    """broadcasting undone by averaging instead of summing: a broadcast bias gets the batch mean of its gradient."""
    if grad.shape == shape:
        return grad
    extra = grad.dim() - len(shape)
    if extra > 0:
        grad = grad.mean(dim=tuple(range(extra)))
    stretched = tuple(d for d, n in enumerate(shape) if n == 1 and grad.shape[d] != 1)
    return grad.mean(dim=stretched, keepdim=True) if stretched else grad


MUTANTS = [
    Mutant("engine-assign-instead-of-accumulate", ENGINE_SILU_SKIP, Patch(engine.Value, "backward", backward_assigns)),
    Mutant("engine-sub-keeps-sign", ENGINE_STANDARDIZE, Patch(engine.Value, "__sub__", sub_keeps_sign)),
    Mutant("engine-mean-without-n", ENGINE_STANDARDIZE, Patch(engine.Value, "mean", mean_without_n)),
    Mutant("engine-pow-exponent-not-lowered", ENGINE_STANDARDIZE,
           Patch(engine.Value, "__pow__", pow_exponent_not_lowered)),
    Mutant("engine-log-softmax-without-sum", ENGINE_LOG_PROBS,
           Patch(engine.Value, "log_softmax", log_softmax_without_sum)),
    Mutant("engine-tanh-missing-square", ENGINE_LINEAR_TANH, Patch(engine.Value, "tanh", tanh_missing_square)),
    Mutant("engine-broadcast-averaged", ENGINE_LINEAR_TANH, Patch(engine, "_sum_to_shape", sum_to_shape_averages)),
]
