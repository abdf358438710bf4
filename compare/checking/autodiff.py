"""A target's own automatic differentiation, beyond its first backward: forward mode and the backward of the backward.

A first-order check needs only a target's gradient. `check_backward(..., order=2)` and `forward_ad=True` need
more of it, and ask it the same two questions whichever system computes it, this project's engine
(scratch.engine: Values, `engine.grad`, `engine.jvp`) or torch's (tensors, `torch.autograd.grad`, dual tensors):

    jvp(ins, i, t)               J_i t: how the output moves when input i moves along t (the others held)
    double_backward(ins, dout, ddx)
                                 the gradient, with respect to every input and to dout, of
                                 S = sum_i <ddx_i, g_i>,   g_i = J_i^T dout  (the backward's output for input i)
                                 taken through the backward itself: the vjp of the vjp, as torch's gradgradcheck

For S to have a gradient, the backward must be recorded as it runs (create_graph=True): an engine rule runs on
Values, a torch.autograd.Function's backward on tensors that carry a graph. Whatever a backward takes as a
constant (a tensor saved in forward, a `.detach()`) has no second derivative; that is what these checks find.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as forward_ad
from torch import Tensor

from scratch import engine


class NotDifferentiableError(RuntimeError):
    """The target cannot be differentiated as asked (no tangent rule, a backward that records nothing)."""


@dataclass(frozen=True)
class Differentiable:
    """A target as a function of its tensor inputs, differentiated by the engine or by torch."""

    fn: Callable  # fn(*inputs) -> output: engine Values in and out, or torch tensors
    engine: bool  # True: inputs are scratch.engine.Values; False: torch tensors

    def jvp(self, ins: list[Tensor], i: int, tangent: Tensor) -> Tensor:
        """J_i t, in one forward pass that carries a tangent on input i."""
        return (_engine_jvp if self.engine else _torch_jvp)(self.fn, ins, i, tangent)

    def double_backward(self, ins: list[Tensor], dout: Tensor, ddx: list[Tensor]) -> list[Tensor]:
        """dS/d(input) for every input, then dS/d(dout): one tensor each, zeros where S does not depend on it."""
        return (_engine_double_backward if self.engine else _torch_double_backward)(self.fn, ins, dout, ddx)


def _engine_jvp(fn: Callable, ins: list[Tensor], i: int, tangent: Tensor) -> Tensor:
    def along_input_i(x: engine.Value) -> engine.Value:
        return fn(*(x if k == i else engine.Value(t) for k, t in enumerate(ins)))

    try:
        return engine.jvp(along_input_i, (ins[i],), (tangent,))[1]
    except NotImplementedError as error:  # an op without a tangent rule
        raise NotDifferentiableError(f"forward mode: {error}") from error


def _torch_jvp(fn: Callable, ins: list[Tensor], i: int, tangent: Tensor) -> Tensor:
    try:
        with forward_ad.dual_level():
            out = fn(*(forward_ad.make_dual(t, tangent) if k == i else t for k, t in enumerate(ins)))
            pushed = forward_ad.unpack_dual(out).tangent
    except (NotImplementedError, RuntimeError) as error:  # e.g. an autograd.Function without a jvp
        raise NotDifferentiableError(f"forward mode: {str(error).splitlines()[0]}") from error
    return torch.zeros_like(out) if pushed is None else pushed.detach().clone()


def _engine_double_backward(fn: Callable, ins: list[Tensor], dout: Tensor, ddx: list[Tensor]) -> list[Tensor]:
    leaves = [engine.Value(t, requires_grad=True) for t in ins]
    upstream = engine.Value(dout, requires_grad=True)
    grads = engine.grad(fn(*leaves), leaves, upstream, create_graph=True, allow_unused=True)
    terms = [(g * d).sum() for g, d in zip(grads, ddx, strict=True) if g is not None and g.requires_grad]
    if not terms:
        raise NotDifferentiableError("the backward recorded nothing: its gradients carry no graph to differentiate")
    s = terms[0]
    for term in terms[1:]:
        s = s + term
    found = engine.grad(s, [*leaves, upstream], allow_unused=True)
    if all(g is None for g in found):
        raise NotDifferentiableError("the backward's gradients are not connected to its inputs nor to dout")
    return [torch.zeros_like(t) if g is None else g for t, g in zip([*ins, dout], found, strict=True)]


def _torch_double_backward(fn: Callable, ins: list[Tensor], dout: Tensor, ddx: list[Tensor]) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in [*ins, dout]]
    with torch.enable_grad():
        grads = torch.autograd.grad(fn(*leaves[:-1]), leaves[:-1], leaves[-1], create_graph=True, allow_unused=True)
        terms = [(g * d).sum() for g, d in zip(grads, ddx, strict=True) if g is not None and g.requires_grad]
        if not terms:
            raise NotDifferentiableError("the backward's gradients carry no graph (a backward that detaches what it "
                                    "computes, or runs outside autograd), so they cannot be differentiated again")
        try:
            found = torch.autograd.grad(sum(terms), leaves, allow_unused=True)
        except RuntimeError as error:  # e.g. @once_differentiable
            raise NotDifferentiableError(f"the backward cannot be differentiated again: {str(error).splitlines()[0]}") \
                from error
    if all(g is None for g in found):  # S = <ddx, J^T dout> always depends on dout where J is recorded at all
        raise NotDifferentiableError("the backward's gradients are not connected to its inputs nor to dout in "
                                     "autograd's graph (a backward under @once_differentiable, or of detached tensors)")
    return [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(leaves, found, strict=True)]
