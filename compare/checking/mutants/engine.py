"""Mutants of the autograd engine: one method of `engine.Value` (or a function of the engine) replaced by a
version with ONE realistic bug while a check runs (a `Patch`), each with its line in MUTANTS.

The engine's subjects are checked in every mode (compare/checking/mutants/subjects.py: the backward, the forward
mode and the backward's own backward), so a replaced op keeps the rules its bug is not in: a wrong backward rule
comes with the right tangent rule, and the other way round. The bugs of the first group are in backward rules,
of the second in tangent rules (forward mode), of the third in what a recorded backward pass keeps (second order).
"""

from __future__ import annotations

import torch
from torch import Tensor

from compare.checking.mutants.subjects import (
    ENGINE_ATTENTION,
    ENGINE_BATCH_STATS,
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
    return engine._result(self.data - other.data, (self, other), "sub", lambda dout, out, a, b: (dout, dout),
                          lambda ta, tb: engine._plus(ta, engine._neg(tb)))


def mean_without_n(self: engine.Value, dim: int | None = None, keepdim: bool = False) -> engine.Value:
    """mean's rule copies dout back without dividing by n (the rule of sum)."""
    dims, in_shape = engine._dims(dim, self.data.dim()), self.data.shape
    return engine._result(self.data.mean(dim=dims, keepdim=keepdim), (self,), "mean",
                          lambda dout, out, a: (engine._unreduce(dout, in_shape, dims, keepdim),),
                          lambda ta: ta.mean(dim=dims, keepdim=keepdim))


def pow_exponent_not_lowered(self: engine.Value, exponent: float) -> engine.Value:
    """a ** p with da = dout * p * a^p: the exponent not lowered by one."""
    a = self.data
    return engine._result(a ** exponent, (self,), f"pow {exponent:g}",
                          lambda dout, out, a: (dout * exponent * a ** exponent,),
                          lambda ta: ta * exponent * a ** (exponent - 1))


def log_softmax_without_sum(self: engine.Value, dim: int = -1) -> engine.Value:
    """log_softmax with da = dout - softmax(a): the sum of dout over the dim dropped (right only if it is 1)."""
    shifted = self.data - self.data.amax(dim=dim, keepdim=True)
    out = shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
    return engine._result(out, (self,), "log_softmax", lambda dout, out, a: (dout - out.exp(),),
                          lambda ta: ta - (torch.exp(out) * ta).sum(dim=dim, keepdim=True))


def tanh_missing_square(self: engine.Value) -> engine.Value:
    """tanh with da = dout * (1 - out): the square in tanh' = 1 - tanh^2 forgotten."""
    out = torch.tanh(self.data)
    return engine._result(out, (self,), "tanh", lambda dout, out, a: (dout * (1 - out),),
                          lambda ta: ta * (1 - out * out))


def sum_to_shape_averages(grad: Tensor, shape: torch.Size, op: str) -> Tensor:
    """broadcasting undone by averaging instead of summing: a broadcast bias gets the batch mean of its gradient."""
    if grad.shape == shape:
        return grad
    extra = grad.dim() - len(shape)
    if extra > 0:
        grad = grad.mean(dim=tuple(range(extra)))
    stretched = tuple(d for d, n in enumerate(shape) if n == 1 and grad.shape[d] != 1)
    return grad.mean(dim=stretched, keepdim=True) if stretched else grad


# ---------------------------------------------------------------------------- tangent rules (forward mode)


def sub_tangent_keeps_sign(self: engine.Value, other: engine.Value | Tensor | float) -> engine.Value:
    """a - b with the tangent ta + tb: the minus sign of the second operand's tangent dropped."""
    other = self._lift(other)
    return engine._result(self.data - other.data, (self, other), "sub", lambda dout, out, a, b: (dout, -dout),
                          lambda ta, tb: engine._plus(ta, tb))


def mul_tangent_one_term(self: engine.Value, other: engine.Value | Tensor | float) -> engine.Value:
    """a * b with the tangent ta * b alone: the product rule's second term, a * tb, forgotten where both move."""
    other = self._lift(other)
    a, b = self.data, other.data
    return engine._result(a * b, (self, other), "mul", lambda dout, out, a, b: (dout * b, dout * a),
                          lambda ta, tb: engine._times(ta, b) if ta is not None else engine._times(tb, a))


def div_tangent_sign(self: engine.Value, other: engine.Value | Tensor | float) -> engine.Value:
    """a / b with the tangent ta / b + a tb / b^2: the minus sign of the quotient rule lost."""
    other = self._lift(other)
    a, b = self.data, other.data

    def tangent(ta: Tensor | None, tb: Tensor | None) -> Tensor:
        return engine._plus(None if ta is None else ta / b, None if tb is None else tb * a / (b * b))

    return engine._result(a / b, (self, other), "div", lambda dout, out, a, b: (dout / b, -dout * a / (b * b)),
                          tangent)


def softmax_tangent_without_subtraction(self: engine.Value, dim: int = -1) -> engine.Value:
    """softmax's tangent t = out * ta: the subtraction of sum_j out_j ta_j (what the others give up) forgotten."""
    e = torch.exp(self.data - self.data.amax(dim=dim, keepdim=True))
    out = e / e.sum(dim=dim, keepdim=True)
    return engine._result(out, (self,), "softmax",
                          lambda dout, out, a: (out * (dout - (dout * out).sum(dim=dim, keepdim=True)),),
                          lambda ta: out * ta)


def result_tangent_not_stretched(data: Tensor, parents: tuple[engine.Value, ...], op: str,
                                 backward: engine.BackwardRule, tangent: engine.TangentRule | None = None
                                 ) -> engine.Value:
    """a broadcast input's tangent kept in its own shape: a bias's tangent stays [C] where the output is [B, C]."""
    if engine._recording and any(p.requires_grad for p in parents):
        out = engine.Value(data, requires_grad=True, _parents=parents, _op=op, _backward=backward)
    else:
        out = engine.Value(data, _op=op)
    if engine._forward_mode and any(p.tangent is not None for p in parents):
        out.tangent = tangent(*(p.tangent for p in parents))
    return out


# ---------------------------------------------------------------------------- recorded backward passes (order 2)


def tanh_rule_reads_tensor(self: engine.Value) -> engine.Value:
    """tanh's rule with 1 - out^2 from out's tensor: recorded, tanh'' (the -2 out dout dt term) is missing."""
    out = torch.tanh(self.data)

    def backward(dout: engine.Either, out: engine.Either, a: engine.Either) -> tuple[engine.Either]:
        o = engine._data(out)  # a constant of the recorded pass
        return (dout * (1 - o * o),)

    return engine._result(out, (self,), "tanh", backward, lambda ta: ta * (1 - out * out))


def mul_rule_reads_tensors(self: engine.Value, other: engine.Value | Tensor | float) -> engine.Value:
    """a * b's rule with dout * b.data and dout * a.data: recorded, the cross term d2(ab)/(da db) = 1 is lost."""
    other = self._lift(other)
    a, b = self.data, other.data
    return engine._result(a * b, (self, other), "mul",
                          lambda dout, out, a, b: (dout * engine._data(b), dout * engine._data(a)),
                          lambda ta, tb: engine._plus(engine._times(ta, b), engine._times(tb, a)))


def log_softmax_rule_reads_tensor(self: engine.Value, dim: int = -1) -> engine.Value:
    """log_softmax's rule with softmax from out's tensor: recorded, the Hessian diag(p) - p p^T is lost."""
    shifted = self.data - self.data.amax(dim=dim, keepdim=True)
    out = shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))

    def backward(dout: engine.Either, out: engine.Either, a: engine.Either) -> tuple[engine.Either]:
        return (dout - engine._data(out).exp() * dout.sum(dim=dim, keepdim=True),)

    return engine._result(out, (self,), "log_softmax", backward,
                          lambda ta: ta - (torch.exp(out) * ta).sum(dim=dim, keepdim=True))


_BACKPROPAGATE = engine._backpropagate


def backpropagate_upstream_as_constant(root: engine.Value, seed: Tensor | engine.Value, retain_graph: bool,
                                       create_graph: bool, wanted: dict[int, int] | None = None) -> list:
    """a recorded backward pass started from the upstream gradient's tensor: the gradient's dependence on dout lost."""
    return _BACKPROPAGATE(root, seed.data if isinstance(seed, engine.Value) else seed, retain_graph, create_graph,
                          wanted)


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
    Mutant("engine-tangent-sub-keeps-sign", ENGINE_STANDARDIZE, Patch(engine.Value, "__sub__", sub_tangent_keeps_sign)),
    Mutant("engine-tangent-product-rule-one-term", ENGINE_SILU_SKIP,
           Patch(engine.Value, "__mul__", mul_tangent_one_term)),
    Mutant("engine-tangent-quotient-sign", ENGINE_STANDARDIZE, Patch(engine.Value, "__truediv__", div_tangent_sign)),
    Mutant("engine-softmax-tangent-without-subtraction", ENGINE_ATTENTION,
           Patch(engine.Value, "softmax", softmax_tangent_without_subtraction)),
    Mutant("engine-tangent-not-stretched", ENGINE_BATCH_STATS, Patch(engine, "_result", result_tangent_not_stretched)),
    Mutant("engine-tanh-second-derivative-lost", ENGINE_LINEAR_TANH,
           Patch(engine.Value, "tanh", tanh_rule_reads_tensor)),
    Mutant("engine-mul-cross-term-lost", ENGINE_SILU_SKIP, Patch(engine.Value, "__mul__", mul_rule_reads_tensors)),
    Mutant("engine-log-softmax-hessian-lost", ENGINE_LOG_PROBS,
           Patch(engine.Value, "log_softmax", log_softmax_rule_reads_tensor)),
    Mutant("engine-upstream-gradient-constant", ENGINE_ATTENTION,
           Patch(engine, "_backpropagate", backpropagate_upstream_as_constant)),
]
