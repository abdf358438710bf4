"""What the gradient checker can check, named `package.module:Name`, and one interface over all of it.

Six kinds of target, told apart by what `Name` is:

- layer:    a class (or an instance) with `forward(x)` and a hand-written `backward(dout)` that returns dL/dx
            and leaves each parameter's gradient in `d<name>` (scratch.Module; or any class listing
            `param_names`). Its reference is its torch twin: `TWINS` below, or `reference=`.
- loss:     a layer whose `forward(x, target)` takes integer class targets (scratch's losses).
- function: a `torch.autograd.Function` subclass with a hand-written `backward`; every tensor argument of
            `forward(ctx, ...)` is checked. Its reference is a plain function of the same arguments.
- pair:     a class with static `forward(*tensors) -> (out, cache)` and `backward(dout, cache) -> grads`
            (the style of llm.c's layernorm.py).
- plain:    a plain function of tensors, differentiated by torch.autograd, checked against a reference.
- engine:   a function of the scratch autograd engine's Values (`kind="engine"`); its reference is the same
            function run on torch tensors (Value mirrors torch's tensor methods).

Each kind is adapted to `Bound`: the tensors to differentiate, a way to run the forward pass, the
target's own gradients, and the reference's forward for torch.autograd.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import scratch
import scratch.optim
import torch_impl.losses
import torch_impl.mlp
from compare.checking.autodiff import Differentiable
from scratch import engine  # the one import of the autograd engine in compare/checking outside autodiff.py

# Each scratch class and its torch twin, built from the same constructor arguments with the same
# parameter names. Subclasses (the mutants) find their twin through their base class.
TWINS: dict[type, type] = {
    scratch.Linear: nn.Linear,
    scratch.ReLU: nn.ReLU,
    scratch.Sigmoid: nn.Sigmoid,
    scratch.Tanh: nn.Tanh,
    scratch.LeakyReLU: nn.LeakyReLU,
    scratch.GELU: nn.GELU,
    scratch.BatchNorm1d: nn.BatchNorm1d,
    scratch.Dropout: nn.Dropout,
    scratch.MLP: torch_impl.mlp.MLP,
    scratch.CrossEntropyLoss: nn.CrossEntropyLoss,
    scratch.MSELoss: torch_impl.losses.MSELoss,
    scratch.SGD: torch.optim.SGD,
    scratch.Adam: torch.optim.Adam,
    scratch.AdamW: torch.optim.AdamW,
}

DEFAULT_BATCH = 4  # batch size of the input when a layer's input shape is inferred from its size


class TargetError(ValueError):
    """A target that cannot be found, built or run as asked; the message says what to do."""


def resolve(spec: str) -> object:
    """`package.module:Name` (or `package.module:Name.attribute`) -> the object."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"target {spec!r}: expected package.module:Name, for example scratch.linear:Linear")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise TargetError(f"target {spec!r}: cannot import module {module_name!r} ({error}); "
                          "run from the folder that holds it, or put it on PYTHONPATH") from error
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetError(f"target {spec!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


PUBLIC_TORCH = ("torch.nn", "torch.optim", "torch.nn.functional", "torch")  # shorter names for torch's own objects


def describe(obj: object) -> str:
    """`module:Name` of a class or function (or of an instance's class); torch's as `torch.nn.Linear`."""
    thing = obj if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj) else type(obj)
    module, name = getattr(thing, "__module__", None) or "?", getattr(thing, "__qualname__", repr(thing))
    if module.startswith("torch"):
        for prefix in PUBLIC_TORCH:
            if getattr(importlib.import_module(prefix), name, None) is thing:
                return f"{prefix}.{name}"
    return f"{module}:{name}"


def is_optimizer(obj: object) -> bool:
    return inspect.isclass(obj) and issubclass(obj, (scratch.optim.Optimizer, torch.optim.Optimizer))


def twin_of(cls: type) -> type | None:
    """The torch twin of a scratch class or of a subclass of one."""
    return next((TWINS[c] for c in cls.__mro__ if c in TWINS), None)


@dataclass
class Bound:
    """One target, built for one seed: what is differentiated and three ways to run it.

    inputs are fed to the target (the first one through the checker's random layer in front); params
    are the target's own parameter tensors, nudged in place by the finite differences.
    """

    input_names: list[str]
    inputs: list[Tensor]
    params: dict[str, Tensor]
    run: Callable[[list[Tensor]], Tensor]  # forward: output from the inputs and the parameters as they are now
    own: Callable[[list[Tensor], Tensor], tuple[Tensor, list[Tensor], dict[str, Tensor]]]  # out, d inputs, d params
    # forward of the reference on inputs that require grad -> (output, its parameters under the same names)
    reference: Callable[[list[Tensor]], tuple[Tensor, dict[str, Tensor]]] | None
    restore: Callable[[], None] = field(default=lambda: None)  # puts back a given instance's parameters
    # the target differentiated beyond its first backward (forward mode, the backward of its backward): engine
    # functions, torch.autograd.Functions and plain functions; None for layers, whose backward is plain tensors
    differentiable: Differentiable | None = None


@dataclass
class Target:
    """A target of any kind, ready to be built for a seed with `bind`."""

    name: str  # e.g. "scratch.linear:Linear(784, 512)"
    kind: str  # layer, loss, function, pair, plain or engine
    reference_name: str | None
    bind: Callable[[torch.dtype, list[tuple[int, ...]] | None, list[Tensor] | None, torch.Generator], Bound]
    notes: list[str] = field(default_factory=list)  # what the check cannot do for this target, and why


def make_target(target: object, args: Sequence = (), kwargs: dict | None = None, reference: object = None,
                kind: str | None = None) -> Target:
    """Adapt `target` (an object or a `package.module:Name` string) to a `Target`; see the module docstring."""
    kwargs = dict(kwargs or {})
    obj = resolve(target) if isinstance(target, str) else target
    ref = resolve(reference) if isinstance(reference, str) else reference
    call = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    name = f"{target if isinstance(target, str) else describe(obj)}" + (f"({call})" if call else "")
    if is_optimizer(obj):
        raise TargetError(f"{name} is an optimizer: it has no backward to check; use check_optimizer "
                          "(the `check` command does so by itself)")
    if kind == "engine":
        return _function_target(name, "engine", obj, args, ref)
    if kind is not None:
        raise TargetError(f"kind must be None (told apart by what the target is) or 'engine', got {kind!r}")
    if inspect.isclass(obj) and issubclass(obj, torch.autograd.Function):
        return _function_target(name, "function", obj, args, ref)
    if inspect.isclass(obj) and isinstance(inspect.getattr_static(obj, "forward", None), staticmethod):
        return _function_target(name, "pair", obj, args, ref)
    if inspect.isclass(obj) or (hasattr(obj, "forward") and hasattr(obj, "backward")):
        return _layer_target(name, obj, args, kwargs, ref)
    if callable(obj):
        return _function_target(name, "plain", obj, args, ref)
    raise TargetError(f"{name} is neither a layer (forward/backward), a torch.autograd.Function nor a function")


# ---------------------------------------------------------------------- layers and losses


def layer_parameters(layer: object) -> dict[str, Tensor]:
    if hasattr(layer, "named_parameters"):
        return dict(layer.named_parameters())
    return {n: getattr(layer, n) for n in getattr(layer, "param_names", ())}


def layer_gradients(layer: object) -> dict[str, Tensor]:
    if hasattr(layer, "named_gradients"):
        return dict(layer.named_gradients())
    return {n: getattr(layer, "d" + n) for n in getattr(layer, "param_names", ())}


def _cast(layer: object, dtype: torch.dtype) -> None:
    if hasattr(layer, "to"):
        layer.to(dtype=dtype)
        return
    for n in getattr(layer, "param_names", ()):  # a plain class: its parameters and gradient buffers
        setattr(layer, n, getattr(layer, n).to(dtype))
        if isinstance(getattr(layer, "d" + n, None), Tensor):
            setattr(layer, "d" + n, getattr(layer, "d" + n).to(dtype))


def _default_shape(layer: object, name: str) -> tuple[int, ...]:
    for attr in ("in_features", "num_features", "input_size", "features"):
        size = getattr(layer, attr, None)
        if isinstance(size, int):
            return (DEFAULT_BATCH, size)
    raise TargetError(f"{name}: cannot tell its input shape; give it (for example --shape 4,8, or shapes=[(4, 8)])")


def _layer_target(name: str, obj: object, args: Sequence, kwargs: dict, ref: object) -> Target:
    is_class = inspect.isclass(obj)
    notes = []
    if ref is None and is_class:
        ref = twin_of(obj)
    elif ref is None and twin_of(type(obj)) is not None:  # its twin's constructor arguments are unknown
        notes.append(f"no reference: {name} was given as an instance, so its torch twin cannot be built with the "
                     f"same arguments; pass one, e.g. reference={describe(twin_of(type(obj)))}(...)")
    ref_name = None if ref is None else describe(ref)

    def build_reference(layer: object, dtype: torch.dtype, extra: tuple) -> Callable | None:
        """The reference's forward, given the layer whose parameter values it must use."""
        if ref is None:
            return None
        if not (isinstance(ref, nn.Module) or (inspect.isclass(ref) and issubclass(ref, nn.Module))):
            def run_function(ins: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:  # ref(x, weight=..., ...)
                leaves = {n: p.detach().clone().requires_grad_(True) for n, p in layer_parameters(layer).items()}
                return ref(*ins, *extra, **leaves), leaves

            return run_function
        try:
            module = ref if isinstance(ref, nn.Module) else ref(*args, **kwargs)
        except TypeError as error:
            raise TargetError(f"reference {ref_name} does not take {name}'s constructor arguments ({error}); "
                              "pass a built module as the reference") from error
        module.to(dtype=dtype).train()
        theirs = dict(module.named_parameters())
        if set(theirs) != set(layer_parameters(layer)):
            raise TargetError(f"{name} has parameters {sorted(layer_parameters(layer))} but its reference {ref_name} "
                              f"has {sorted(theirs)}; give them the same names, or pass a different reference")

        def run_module(ins: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
            ours = layer_parameters(layer)
            with torch.no_grad():
                for n, p in theirs.items():
                    p.copy_(ours[n])  # the values the layer has now (the checker nudged them at random)
            return module(*ins, *extra), theirs

        return run_module

    def bind(dtype: torch.dtype, shapes: list[tuple[int, ...]] | None, given: list[Tensor] | None,
             generator: torch.Generator) -> Bound:
        try:
            layer = obj(*args, **kwargs) if is_class else obj
        except TypeError as error:
            raise TargetError(f"cannot build {name}: {error}; pass its constructor arguments "
                              "(--args/--kwargs, or args=/kwargs=)") from error
        saved = {n: p.clone() for n, p in layer_parameters(layer).items()}
        _cast(layer, dtype)
        if hasattr(layer, "train"):
            layer.train()
        if given is not None:
            inputs = [given[0].detach().clone().to(dtype)]
        else:
            shape = tuple(shapes[0]) if shapes else _default_shape(layer, name)
            inputs = [torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)]
        extra: tuple = ()
        if _is_loss(layer):  # integer class targets, one per row
            if inputs[0].dim() != 2:
                raise TargetError(f"{name} is a loss: give an input of shape [batch, classes], "
                                  f"got {list(inputs[0].shape)}")
            batch, classes = inputs[0].shape
            extra = (given[1] if given is not None and len(given) > 1
                     else torch.randint(classes, (batch,), generator=generator),)

        def run(ins: list[Tensor]) -> Tensor:
            return layer.forward(ins[0], *extra)

        def own(ins: list[Tensor], dout: Tensor) -> tuple[Tensor, list[Tensor], dict[str, Tensor]]:
            out = layer.forward(ins[0], *extra)
            dx = layer.backward(dout)
            if dx is None:
                raise TargetError(f"{name}.backward returned None: it must return the gradient of its input, dL/dx")
            return out, [dx], {n: g.clone() for n, g in layer_gradients(layer).items()}

        def restore() -> None:
            if not is_class:  # a given instance goes back as it came: values and dtype
                with torch.no_grad():
                    for n, p in layer_parameters(layer).items():
                        p.copy_(saved[n].to(p.dtype))
                if saved:
                    _cast(layer, next(iter(saved.values())).dtype)

        return Bound(["input"], inputs, layer_parameters(layer), run, own,
                     build_reference(layer, dtype, extra), restore)

    return Target(name, "loss" if _is_loss(obj) else "layer", ref_name, bind, notes)


def _is_loss(obj: object) -> bool:
    """A loss takes class targets: forward(x, target)."""
    forward = getattr(obj, "forward", None)
    try:
        return forward is not None and "target" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------- functions


def _argument_names(fn: Callable, skip: int = 0) -> list[str]:
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _function_target(name: str, kind: str, obj: object, constants: Sequence, ref: object) -> Target:
    """function, pair, plain and engine targets: every tensor argument is an input (no parameters)."""
    if kind == "function":
        names = _argument_names(obj.forward, skip=1)  # forward(ctx, ...)
    elif kind == "pair":
        names = _argument_names(obj.forward)
    else:
        names = _argument_names(obj)
    if inspect.isclass(ref) and issubclass(ref, nn.Module):
        ref = ref()  # e.g. nn.SiLU: called with the same tensors
    if kind == "engine" and ref is None:
        ref = obj  # the same expression on torch tensors
    ref_name = None if ref is None else ("the same function on torch tensors" if ref is obj else describe(ref))
    constants = tuple(constants)

    def forward(ins: list[Tensor]) -> Tensor:
        if kind == "function":
            return obj.apply(*ins, *constants)
        if kind == "pair":
            return obj.forward(*ins, *constants)[0]
        if kind == "engine":
            return obj(*(engine.Value(t) for t in ins), *constants).data
        return obj(*ins, *constants)

    def own(ins: list[Tensor], dout: Tensor) -> tuple[Tensor, list[Tensor], dict[str, Tensor]]:
        if kind == "pair":
            out, cache = obj.forward(*ins, *constants)
            grads = obj.backward(dout, cache)
            grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
            if len(grads) != len(ins):
                raise TargetError(f"{name}.backward returned {len(grads)} gradients for {len(ins)} tensor inputs")
            return out, grads, {}
        if kind == "engine":
            values = [engine.Value(t, requires_grad=True) for t in ins]
            out = obj(*values, *constants)
            out.backward(dout)
            return out.data, [v.grad for v in values], {}
        leaves = [t.detach().clone().requires_grad_(True) for t in ins]
        out = obj.apply(*leaves, *constants) if kind == "function" else obj(*leaves, *constants)
        grads = torch.autograd.grad(out, leaves, dout, allow_unused=True)
        return out.detach(), [torch.zeros_like(t) if g is None else g for t, g in zip(ins, grads, strict=True)], {}

    def reference(ins: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        return ref(*ins, *constants), {}

    differentiable = None if kind == "pair" else Differentiable(
        (lambda *xs: obj.apply(*xs, *constants)) if kind == "function" else (lambda *xs: obj(*xs, *constants)),
        engine=kind == "engine")

    def bind(dtype: torch.dtype, shapes: list[tuple[int, ...]] | None, given: list[Tensor] | None,
             generator: torch.Generator) -> Bound:
        if given is not None:
            inputs = [t.detach().clone().to(dtype) for t in given]
        elif shapes:
            inputs = [torch.randn(tuple(s), generator=generator, dtype=torch.float64).to(dtype) for s in shapes]
        else:
            raise TargetError(f"{name}: give the shape of each tensor argument ({', '.join(names) or 'its inputs'}), "
                              "for example --shape 4,8 --shape 8")
        arg_names = names[:len(inputs)] if len(names) >= len(inputs) else [f"input{i}" for i in range(len(inputs))]
        return Bound(arg_names, inputs, {}, forward, own, reference if ref is not None else None,
                     differentiable=differentiable)

    return Target(name, kind, ref_name, bind)
