"""Forward mode, second derivatives and Hessian-vector products of a whole network's loss on one batch, by the
scratch engine and by torch (`python -m compare autograd --mode forward|double-backward|hvp`).

Both sides see the loss as a function of the network's parameter tensors, L(theta), from the same batch:

    engine:  `engine_loss`: the engine model called with Values of our choosing in place of its parameters
             (what torch.func.functional_call does for a torch module), so that scratch/engine.py's jvp, grad
             and hvp, which take their own Values, differentiate the model itself
    torch:   `torch_loss`: torch.func.functional_call on the twin, under the composite kernels that have
             forward-mode and double-backward formulas (`torch_derivative_kernels`)

and three quantities, one tensor of each per parameter p:

    forward          dL/dp . v_p: the directional derivative along a random unit direction v_p of p alone
                     (engine.jvp against torch.func.jvp)
    double-backward  dP/dp of the gradient penalty P = sum_p |dL/dp|^2 (grad with create_graph=True, then grad
                     of P; torch.autograd.grad the same two ways); dP/dp = 2 H dL/dp
    hvp              H v along one random unit direction v of all parameters together (engine.hvp, forward
                     over reverse, against torch.func.jvp of torch.func.grad), and a third witness, a central
                     difference of the engine's plain gradient, (g(theta + h v) - g(theta - h v)) / 2h
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from scratch import engine
from scratch.engine import Value

MODES = ("forward", "double-backward", "hvp")
# What each mode compares, for the table's header and the report.
QUANTITIES = {
    "forward": "the directional derivative dL/dp . v_p along a random unit direction v_p of each parameter alone",
    "double-backward": "dP/dp of the gradient penalty P = sum_p |dL/dp|^2",
    "hvp": "H v, the Hessian of the loss times one random unit direction v of all the parameters",
}

EngineLoss = Callable[[Mapping[str, Value]], Value]
TorchLoss = Callable[[Mapping[str, Tensor]], Tensor]


@dataclass
class Derivatives:
    """One mode's result: a tensor per parameter from each side, and the finite-difference witness (hvp only)."""

    engine: dict[str, Tensor]
    torch: dict[str, Tensor]
    finite_difference: dict[str, Tensor] | None = None
    step: float | None = None  # h of the finite difference


# ----------------------------------------------------------------------------- the loss as a function of theta


def _slot(model: object, name: str) -> tuple[object, str | int]:
    """Where parameter `name` ("layers.0.weight", "blocks.2.self_attn.in_proj_weight") lives: (owner, key), the
    owner a block (key an attribute) or a list of blocks (key an index), as engine_nn.Layer.named_parameters
    names them."""
    *path, last = name.split(".")
    owner = model
    for part in path:
        owner = owner[int(part)] if isinstance(owner, list) else getattr(owner, part)
    return owner, int(last) if isinstance(owner, list) else last


@contextlib.contextmanager
def parameters_replaced(model: object, values: Mapping[str, Value]) -> Iterator[None]:
    """Run the block with the engine model's parameters `values` (by name) in place of its own, then put its own
    back: the engine's torch.func.functional_call."""
    slots = {name: _slot(model, name) for name in values}
    own = {name: (owner[key] if isinstance(owner, list) else getattr(owner, key))
           for name, (owner, key) in slots.items()}
    missing = [name for name, p in own.items() if not isinstance(p, Value)]
    if missing:
        raise KeyError(f"the engine model has no parameter {missing[0]!r}")

    def put(name: str, value: Value) -> None:
        owner, key = slots[name]
        if isinstance(owner, list):
            owner[key] = value
        else:
            setattr(owner, key, value)

    for name, value in values.items():
        put(name, value)
    try:
        yield
    finally:
        for name, value in own.items():
            put(name, value)


def engine_loss(model: object, loss_fn: Callable[[Value, Tensor], Value], x: Tensor, y: Tensor) -> EngineLoss:
    """L(theta) on the engine: the loss of batch (x, y) with the given Values as (some of) the model's parameters."""
    def loss(values: Mapping[str, Value]) -> Value:
        with parameters_replaced(model, values):
            return loss_fn(model(Value(x, name="x")), y)

    return loss


def torch_loss(module: torch.nn.Module, loss_fn: torch.nn.Module, x: Tensor, y: Tensor) -> TorchLoss:
    """L(theta) on the torch twin: the loss of batch (x, y) with the given tensors as (some of) its parameters."""
    module.train()

    def loss(values: Mapping[str, Tensor]) -> Tensor:
        return loss_fn(torch.func.functional_call(module, dict(values), (x,)), y)

    return loss


@contextlib.contextmanager
def torch_derivative_kernels() -> Iterator[None]:
    """Torch's composite kernels, which have forward-mode and double-backward formulas: its fused CPU attention
    (flash) and oneDNN's RNN kernels have none ("Trying to use forward AD with ... that does not support it").
    The same functions, computed by the plain ops they are made of."""
    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with sdpa_kernel(SDPBackend.MATH), warnings.catch_warnings():
            # torch's first forward-mode call loads its own jvp decompositions with torch.jit.script, which torch
            # itself has deprecated: a warning about torch's internals, nothing this run can act on
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            yield
    finally:
        torch.backends.mkldnn.enabled = onednn


# ----------------------------------------------------------------------------- directions


def unit_directions(params: Mapping[str, Tensor], seed: int, each: bool) -> dict[str, Tensor]:
    """Random directions, seeded: one of unit length for each parameter tensor (each=True), or one of unit length
    over all of them together; in the parameters' dtype and device."""
    generator = torch.Generator().manual_seed(seed)
    v = {name: torch.randn(p.shape, generator=generator, dtype=torch.float64) for name, p in params.items()}
    norms = {name: d.norm() for name, d in v.items()} if each else \
        dict.fromkeys(v, torch.stack([d.norm() for d in v.values()]).norm())
    return {name: (d / norms[name]).to(dtype=params[name].dtype, device=params[name].device) for name, d in v.items()}


# ----------------------------------------------------------------------------- the three modes


def forward_mode(e_loss: EngineLoss, t_loss: TorchLoss, params: Mapping[str, Tensor],
                 v: Mapping[str, Tensor]) -> Derivatives:
    """Per parameter p, dL/dp . v_p in one forward pass with a tangent: engine.jvp against torch.func.jvp."""
    ours, theirs = {}, {}
    for name, p in params.items():
        ours[name] = engine.jvp(lambda value, name=name: e_loss({name: value}), (p,), (v[name],))[1]
        with torch_derivative_kernels():
            theirs[name] = torch.func.jvp(lambda t, name=name: t_loss({**params, name: t}), (p,), (v[name],))[1]
    return Derivatives(ours, {n: t.detach() for n, t in theirs.items()})


def gradient_penalty(e_loss: EngineLoss, t_loss: TorchLoss, params: Mapping[str, Tensor]) -> Derivatives:
    """dP/dp of P = sum_p |dL/dp|^2 on both sides: the gradient with its graph (create_graph=True), P from it,
    then P's gradient, as in a gradient-penalty loss."""
    values = {name: Value(p, requires_grad=True, name=name) for name, p in params.items()}
    grads = engine.grad(e_loss(values), list(values.values()), create_graph=True)
    penalty = sum(((g * g).sum() for g in grads[1:]), (grads[0] * grads[0]).sum())
    ours = engine.grad(penalty, list(values.values()))

    leaves = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
    with torch_derivative_kernels():
        first = torch.autograd.grad(t_loss(leaves), list(leaves.values()), create_graph=True)
        theirs = torch.autograd.grad(sum((g * g).sum() for g in first), list(leaves.values()))
    return Derivatives(dict(zip(params, ours, strict=True)), dict(zip(params, theirs, strict=True)))


def engine_gradient(e_loss: EngineLoss, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The engine's plain gradient dL/dp at `params` (one backward pass, nothing recorded)."""
    values = {name: Value(p, requires_grad=True, name=name) for name, p in params.items()}
    return dict(zip(params, engine.grad(e_loss(values), list(values.values())), strict=True))


def hessian_vector_product(e_loss: EngineLoss, t_loss: TorchLoss, params: Mapping[str, Tensor],
                           v: Mapping[str, Tensor], h: float | None) -> Derivatives:
    """H v: engine.hvp (forward over reverse) against torch.func.jvp(torch.func.grad(L)); with a step h, also the
    central difference of the engine's gradient along v, (g(theta + h v) - g(theta - h v)) / 2h."""
    names = list(params)
    _, ours = engine.hvp(lambda *values: e_loss(dict(zip(names, values, strict=True))),
                         [params[n] for n in names], [v[n] for n in names])
    with torch_derivative_kernels():
        _, theirs = torch.func.jvp(torch.func.grad(t_loss), (dict(params),), (dict(v),))
    result = Derivatives(dict(zip(names, ours, strict=True)), {n: theirs[n].detach() for n in names})
    if h is not None:
        plus = engine_gradient(e_loss, {n: params[n] + h * v[n] for n in names})
        minus = engine_gradient(e_loss, {n: params[n] - h * v[n] for n in names})
        result.finite_difference = {n: (plus[n] - minus[n]) / (2 * h) for n in names}
        result.step = h
    return result


def finite_difference_rel_error(analytic: Mapping[str, Tensor], numeric: Mapping[str, Tensor]) -> float:
    """max |analytic - numeric| / max |numeric|, both maxima over every parameter together."""
    diff = max((analytic[n] - numeric[n]).abs().max().item() for n in numeric)
    return diff / max(max(t.abs().max().item() for t in numeric.values()), 1e-300)
