"""What an entry of the op table (tests/ops.py) is, and how each kind of entry is run on both sides.

An entry (`OpInfo`) names one scratch layer, loss or engine op, its torch twin, a few sample inputs
(`Sample`) and what it claims (dtypes, CUDA, a kink, train/eval behaviour, second derivatives, the
errors it documents). tests/test_ops.py generates every test from those claims, as PyTorch's OpInfo
database does for its operators (torch/testing/_internal/opinfo/core.py).

Four kinds, one way to run them (`Case`): for one entry, one sample, one dtype and one device, our side
and the torch twin from the same values, both driven by the same random upstream gradients `dout`
through the fake loss L = sum_k sum(out_k * dout_k), so every output element matters (STYLE.md, 6):

    layer         a scratch.Module: out = layer.forward(x); dx = layer.backward(dout), d<param> filled
    loss          a scratch loss: L = loss.forward(z, y); dz = loss.backward(dL)
    engine op     a function on engine Values (scratch/engine.py), the same expression on torch tensors
    engine layer  a block of scratch/engine_nn.py, its twin a torch.nn module whose weights it loads
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from compare.base.agreement import AUTOGRAD_FLOAT32, AUTOGRAD_FLOAT64, FINITE_DIFF_FLOAT64, Tolerance, assert_agree
from compare.checking.finite_diff import FD_STEP, ROUNDING, finite_difference, finite_difference_error
from scratch import engine
from scratch.engine import Value, no_grad

KINDS = ("layer", "loss", "engine op", "engine layer")
CLASSES = 10  # the class count of loss samples' targets (their last input dim)


# ---------------------------------------------------------------------- samples


def _away(x: Tensor) -> Tensor:
    return x + 0.05 * torch.sign(x)


# How a sample's values are drawn: name -> (standard normal draw, dtype) -> values.
VALUES: dict[str, Callable[[Tensor], Tensor]] = {
    "normal": lambda z: z,
    "away": _away,  # |x| >= 0.05: a finite-difference nudge never crosses a kink at 0
    "positive": lambda z: 0.5 + 1.5 * torch.special.ndtr(z),  # in (0.5, 2): log, sqrt, division, fractional powers
    "shifted": lambda z: 2 * _away(z) + 0.5,  # a mean and a scale for normalisation layers to remove
    "small-integers": lambda z: torch.clamp(torch.round(z), -1, 1),  # exact zeros and ties: kinks on purpose
    "large": lambda z: 30 * z,  # saturating sigmoid and tanh, a softmax with one winner
    "huge": lambda z: 1e4 * z,  # logits whose exp overflows: log-sum-exp must be stable
}


@dataclass(frozen=True)
class Sample:
    """One set of inputs: a shape per input (drawn from the named VALUES), or integer class targets.

    kink:  sits on a kink on purpose (exact zeros of a ReLU, ties of a max): compared with torch, whose
           convention there it must follow, not with finite differences, which are meaningless there.
    finite_differences:  False where the gradient is below what a finite difference can resolve
           (saturated sigmoid, batch norm of two examples); the reason goes in `why`.
    """

    name: str
    shapes: tuple[tuple[int, ...], ...]
    values: str = "normal"
    kink: bool = False
    finite_differences: bool = True
    why: str = ""

    def draw(self, dtype: torch.dtype, device: str, seed: int) -> list[Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [VALUES[self.values](torch.randn(s, generator=g, dtype=torch.float64)).to(device, dtype)
                for s in self.shapes]

    @property
    def checks_finite_differences(self) -> bool:
        return self.finite_differences and not self.kink


def sample(name: str, *shapes: tuple[int, ...], **kwargs: Any) -> Sample:
    return Sample(name, tuple(shapes), **kwargs)


@dataclass(frozen=True)
class ErrorCase:
    """A documented refusal: `call()` raises `error` with a message matching `match` (a regex)."""

    name: str
    call: Callable[[], object]
    error: type[BaseException]
    match: str


# ---------------------------------------------------------------------- the entry


@dataclass(frozen=True)
class OpInfo:
    """One row of the table. `ours` and `twin` mean, by kind:

    layer:         ours() -> scratch.Module;   twin(our layer) -> nn.Module holding its values
    loss:          ours() -> scratch loss;     twin() -> the torch loss module
    engine op:     ours(*Values) -> Value(s);  twin(*tensors) -> tensor(s)  (default: ours itself)
    engine layer:  ours() -> engine_nn block;  twin() -> nn.Module, whose values the block loads
    """

    name: str
    kind: str
    covers: tuple[Any, ...]  # the classes, functions and Value methods this entry exercises
    samples: tuple[Sample, ...]
    ours: Callable
    twin: Callable | None = None
    call: Callable | None = None  # engine layers: (block, x) -> list of outputs (LSTM has three); default [block(x)]
    twin_call: Callable | None = None  # the same for the twin (attention takes x three times); default `call`
    training: bool = True  # layers: run in training mode (False: evaluation)
    modes_differ: bool = False  # layers: training and evaluation compute different functions (dropout, batch norm)
    kinked: bool = False  # not differentiable somewhere (ReLU at 0, ties of a max): needs a kink sample
    perturb: float = 0.0  # move the parameters off their initial values by N(0, perturb^2) (unit norms, zero biases)
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    cuda: bool = True
    double_backward: bool = False  # engine: second derivatives, engine.grad(create_graph=True), against torch
    forward_ad: bool = False  # engine: forward mode, engine.jvp, against torch.func.jvp
    errors: tuple[ErrorCase, ...] = ()
    float64_tolerance: Tolerance = AUTOGRAD_FLOAT64

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")

    def tolerance(self, dtype: torch.dtype) -> Tolerance:
        return self.float64_tolerance if dtype == torch.float64 else AUTOGRAD_FLOAT32

    @property
    def is_engine(self) -> bool:
        return self.kind.startswith("engine")


def qualified_name(thing: Any) -> str:
    """'scratch.linear.Linear', 'scratch.engine.Value.__add__', 'scratch.engine.Value.T' (a property)."""
    if isinstance(thing, property):
        thing = thing.fget
    return f"{thing.__module__}.{thing.__qualname__}"


# ---------------------------------------------------------------------- running an entry


class Run(NamedTuple):
    outputs: list[Tensor]
    grads: dict[str, Tensor]  # d(sum_k out_k * dout_k) / d(each input and parameter), by name
    buffers: dict[str, Tensor]  # running statistics after the forward pass (batch norm)


def non_contiguous(x: Tensor) -> Tensor:
    """The same values in a strided view with NaN in the gaps: a layer that reads past the view shows NaN."""
    return torch.stack([x, torch.full_like(x, float("nan"))], dim=-1)[..., 0]


@dataclass
class Case:
    """One entry on one sample, dtype and device, both sides built from one seed with the same values."""

    op: OpInfo
    sample: Sample
    dtype: torch.dtype
    device: str = "cpu"
    seed: int = 0
    layout: Callable[[Tensor], Tensor] = lambda x: x  # applied to every floating input (non_contiguous)
    inputs: list[Tensor] = field(init=False)
    douts: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        drawn = self.sample.draw(self.dtype, self.device, self.seed)
        if self.op.kind == "loss":  # logits, then integer class targets
            g = torch.Generator().manual_seed(self.seed + 1)
            targets = torch.randint(0, drawn[0].shape[-1], drawn[0].shape[:1], generator=g).to(self.device)
            drawn = [*drawn, targets]
        self.inputs = [self.layout(t) if t.is_floating_point() else t for t in drawn]
        torch.manual_seed(self.seed)
        if self.op.kind == "layer":
            self.model = self.op.ours()
            for p in self.model.parameters():  # in float32, before the twin copies them: both cast the same values
                p.add_(self.op.perturb * torch.randn_like(p))
            self.module = self.op.twin(self.model)
            self.model.to(self.device, self.dtype).train(self.op.training)
            self.module.to(self.device, self.dtype).train(self.op.training)
        elif self.op.kind == "loss":
            self.model, self.module = self.op.ours(), self.op.twin()
        elif self.op.kind == "engine layer":
            self.module = self.op.twin().to(self.device, torch.float64)
            g = torch.Generator().manual_seed(self.seed)
            with torch.no_grad():  # random weights: layer norm and attention biases start at exactly 1 or 0
                for p in self.module.parameters():
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
            self.module.to(self.dtype)
            self.model = self.op.ours().to(device=self.device, dtype=self.dtype)
            self.model.load_state_dict({n: p.detach() for n, p in self.module.named_parameters()})
        shapes = [o.shape for o in self._reference_outputs()]
        g = torch.Generator().manual_seed(self.seed + 2)
        self.douts = [torch.randn(s, generator=g, dtype=torch.float64).to(self.device, self.dtype) for s in shapes]

    # ------------------------------------------------------------------ the two sides

    def _reference_outputs(self) -> list[Tensor]:
        """The twin's outputs on a copy of it (a training batch norm moves its running statistics)."""
        with torch.no_grad():
            if self.op.kind in ("layer", "engine layer"):
                module = copy.deepcopy(self.module) if any(True for _ in self.module.buffers()) else self.module
                return self._call_twin(module, self.inputs[0])
            if self.op.kind == "loss":
                return [self.module(*self.inputs)]
            return _as_list(self._engine_reference()(*self.inputs))

    def _engine_reference(self) -> Callable:
        return self.op.twin or self.op.ours

    def _call_twin(self, module: nn.Module, x: Tensor) -> list[Tensor]:
        call = self.op.twin_call or self.op.call
        return call(module, x) if call else [module(x)]

    def floating_inputs(self) -> list[tuple[str, Tensor]]:
        names = ["x"] if self.op.kind in ("layer", "engine layer") else (
            ["logits"] if self.op.kind == "loss" else [f"input {i}" for i in range(len(self.inputs))])
        return [(n, t) for n, t in zip(names, self.inputs, strict=False) if t.is_floating_point()]

    def ours(self, create_graph: bool = False) -> Run:
        """Our forward and backward, from zero gradients."""
        kind = self.op.kind
        if kind == "layer":
            x = self.inputs[0]
            out = self.model.forward(x)
            dx = self.model.backward(self.douts[0])
            grads = {"x": dx, **{n: g.clone() for n, g in self.model.named_gradients()}}
            return Run([out], grads, {n: b.clone() for n, b in self.model.named_buffers()})
        if kind == "loss":
            loss = self.model.forward(*self.inputs)
            return Run([loss], {"logits": self.model.backward(self.douts[0])}, {})
        if kind == "engine op":
            values = [Value(t, requires_grad=True) for t in self.inputs]
            outs = _as_list(self.op.ours(*values))
            _engine_backward(outs, self.douts, create_graph)
            return Run([o.data for o in outs], {f"input {i}": v.grad for i, v in enumerate(values)}, {})
        self.model.zero_grad()
        x = Value(self.inputs[0], requires_grad=True)
        outs = self.op.call(self.model, x) if self.op.call else [self.model(x)]
        _engine_backward(outs, self.douts, create_graph)
        grads = {"x": x.grad, **{n: p.grad.clone() for n, p in self.model.named_parameters()}}
        return Run([o.data for o in outs], grads, {})

    def theirs(self) -> Run:
        """The twin's forward, and torch.autograd's gradients of the same fake loss."""
        leaves = [t.detach().clone().requires_grad_(True) if t.is_floating_point() else t for t in self.inputs]
        if self.op.kind in ("layer", "engine layer"):
            outs = self._call_twin(self.module, leaves[0])
        elif self.op.kind == "loss":
            outs = [self.module(*leaves)]
        else:
            outs = _as_list(self._engine_reference()(*leaves))
        sum((o * d).sum() for o, d in zip(outs, self.douts, strict=True)).backward()
        names = [n for n, _ in self.floating_inputs()]
        floating = [t for t in leaves if t.is_floating_point()]
        # an input that does not reach the output: torch leaves None, our side a zero gradient
        grads = {n: t.grad if t.grad is not None else torch.zeros_like(t) for n, t in zip(names, floating, strict=True)}
        if self.op.kind in ("layer", "engine layer"):
            grads.update({n: p.grad for n, p in self.module.named_parameters()})
        buffers = ({n: b.detach().clone() for n, b in self.module.named_buffers()} if self.op.kind == "layer"
                   else {})
        return Run([o.detach() for o in outs], grads, buffers)

    # ------------------------------------------------------------------ for finite differences

    def leaves(self) -> dict[str, Tensor]:
        """Every tensor our gradients are taken with respect to, by name, to be nudged in place."""
        tensors = dict(self.floating_inputs())
        if self.op.kind == "layer":
            tensors.update(dict(self.model.named_parameters()))
        elif self.op.kind == "engine layer":
            tensors.update({n: p.data for n, p in self.model.named_parameters()})
        return tensors

    def forward(self) -> list[Tensor]:
        """Our outputs at the current values, recording nothing."""
        kind = self.op.kind
        with no_grad():
            if kind == "layer":
                return [self.model.forward(self.inputs[0])]
            if kind == "loss":
                return [self.model.forward(*self.inputs)]
            if kind == "engine op":
                return [o.data for o in _as_list(self.op.ours(*[Value(t) for t in self.inputs]))]
            return [o.data for o in self._engine_layer_outputs(Value(self.inputs[0]))]

    def fake_loss(self) -> float:
        """L = sum_k sum(out_k * dout_k) of our forward pass at the current values."""
        return sum((o * d).sum() for o, d in zip(self.forward(), self.douts, strict=True)).item()

    def _engine_layer_outputs(self, x: Value) -> list[Value]:
        return self.op.call(self.model, x) if self.op.call else [self.model(x)]

    # ------------------------------------------------------------------ forward mode

    def tangents(self) -> dict[str, Tensor]:
        """A random direction for every input and parameter (the leaves), seeded like the rest."""
        g = torch.Generator().manual_seed(self.seed + 3)
        return {n: torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.device, t.dtype)
                for n, t in self.leaves().items()}

    def ours_jvp(self, tangents: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """engine.jvp: our outputs and their tangents, every leaf moving along its tangent."""
        names = [n for n, _ in self.floating_inputs()]
        if self.op.kind == "engine op":
            outs, pushed = engine.jvp(self.op.ours, self.inputs, [tangents[n] for n in names])
            return _as_list(outs), _as_list(pushed)
        params = dict(self.model.named_parameters())
        for name, p in params.items():
            p.tangent = tangents[name]
        try:
            outs, pushed = engine.jvp(lambda x: tuple(self._engine_layer_outputs(x)), self.inputs, [tangents["x"]])
        finally:
            for p in params.values():
                p.tangent = None
        return list(outs), list(pushed)

    # ------------------------------------------------------------------ second order

    def _engine_graph(self) -> tuple[list[Value], dict[str, Value]]:
        """Our outputs, recorded, and the Values of every leaf (inputs and parameters), by name."""
        if self.op.kind == "engine op":
            values = [Value(t, requires_grad=True) for t in self.inputs]
            return _as_list(self.op.ours(*values)), {f"input {i}": v for i, v in enumerate(values)}
        self.model.zero_grad()
        x = Value(self.inputs[0], requires_grad=True)
        return self._engine_layer_outputs(x), {"x": x, **dict(self.model.named_parameters())}

    def ours_gradient(self) -> dict[str, Tensor]:
        """The plain first-order gradient of L = sum_k <out_k, dout_k>, by engine.grad."""
        outs, leaves = self._engine_graph()
        grads = engine.grad(_fake_loss(outs, self.douts), list(leaves.values()), allow_unused=True)
        pairs = zip(leaves.items(), grads, strict=True)
        return {n: torch.zeros_like(v.data) if g is None else g for (n, v), g in pairs}

    def ours_second(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        """d/d(leaves) of P = sum_n <dL/d(leaf n), w_n>: the gradient of a gradient (H w, for the Hessian H of L),
        by engine.grad twice, the first with create_graph=True; and d/d(dout_k) of P too (J w, as torch's
        gradgradcheck differentiates in the upstream gradient): the douts enter the graph as Values."""
        outs, leaves = self._engine_graph()
        douts = {f"dout {k}": Value(d, requires_grad=True) for k, d in enumerate(self.douts)}
        grads = engine.grad(outs, list(leaves.values()), list(douts.values()), create_graph=True,
                            allow_unused=True)  # the douts as grad_outputs: the recorded pass starts from them
        penalty = None
        for (name, _), g in zip(leaves.items(), grads, strict=True):
            if g is not None and g.requires_grad:
                term = (g * weights[name]).sum()
                penalty = term if penalty is None else penalty + term
        everything = leaves | douts
        if penalty is None:  # no leaf has a gradient at all
            return {n: torch.zeros_like(v.data) for n, v in everything.items()}
        second = engine.grad(penalty, list(everything.values()), allow_unused=True)
        pairs = zip(everything.items(), second, strict=True)
        return {n: torch.zeros_like(v.data) if h is None else h for (n, v), h in pairs}

    def ours_hvp(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        """engine.hvp (forward over reverse) of L along the inputs' weights, parameters held still: H w's rows of
        the inputs. Equal to ours_second with the parameters' weights at zero."""
        names = [n for n, _ in self.floating_inputs()]

        def loss(*values: Value) -> Value:
            outs = _as_list(self.op.ours(*values)) if self.op.kind == "engine op" else \
                self._engine_layer_outputs(values[0])
            return _fake_loss(outs, self.douts)

        _, rows = engine.hvp(loss, self.inputs, [weights[n] for n in names])
        return dict(zip(names, rows, strict=True))

    def theirs_second(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        """The same with torch.autograd.grad(create_graph=True) on the twin."""
        names = [n for n, _ in self.floating_inputs()]
        leaves = {n: t.detach().clone().requires_grad_(True) for n, t in zip(names, self.inputs, strict=False)}
        with torch_forward_mode_kernels():
            if self.op.kind == "engine op":
                outs = _as_list(self._engine_reference()(*leaves.values()))
            else:
                self.module.zero_grad()
                outs = self._call_twin(self.module, leaves["x"])
                leaves.update(dict(self.module.named_parameters()))
            tensors = list(leaves.values())
            douts = {f"dout {k}": d.detach().clone().requires_grad_(True) for k, d in enumerate(self.douts)}
            grads = torch.autograd.grad(_fake_loss(outs, list(douts.values())), tensors, create_graph=True,
                                        allow_unused=True)
            terms = [(g * weights[n]).sum() for n, g in zip(leaves, grads, strict=True)
                     if g is not None and g.requires_grad]
            everything = leaves | douts
            if not terms:
                return {n: torch.zeros_like(t) for n, t in everything.items()}
            second = torch.autograd.grad(sum(terms[1:], terms[0]), list(everything.values()), allow_unused=True)
        return {n: torch.zeros_like(t) if h is None else h
                for (n, t), h in zip(everything.items(), second, strict=True)}

    def theirs_jvp(self, tangents: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """torch.func.jvp on the twin, with the same directions."""
        names = [n for n, _ in self.floating_inputs()]
        if self.op.kind == "engine op":
            directions = tuple(tangents[n] for n in names)
            outs, pushed = torch.func.jvp(self._engine_reference(), tuple(self.inputs), directions)
            return _as_list(outs), _as_list(pushed)
        params = dict(self.module.named_parameters())
        param_names = list(params)
        called = _Called(self.module, self._call_twin)

        def twin(x: Tensor, *values: Tensor) -> tuple[Tensor, ...]:
            state = {f"module.{n}": v for n, v in zip(param_names, values, strict=True)}
            return torch.func.functional_call(called, state, (x,))

        primals = (self.inputs[0], *(params[n].detach() for n in param_names))
        directions = (tangents["x"], *(tangents[n] for n in param_names))
        with torch_forward_mode_kernels():
            outs, pushed = torch.func.jvp(twin, primals, directions)
        return list(outs), list(pushed)


@contextlib.contextmanager
def torch_forward_mode_kernels() -> Iterator[None]:
    """Torch's composite kernels, which have forward-mode and double-backward formulas: its fused CPU attention
    (flash) and oneDNN's RNN kernels have none ("Trying to use forward AD with ... that does not support it").
    Same functions."""
    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mkldnn.enabled = onednn


class _Called(nn.Module):
    """The twin called as the entry calls it (attention takes x three times), for torch.func.functional_call."""

    def __init__(self, module: nn.Module, call: Callable[[nn.Module, Tensor], list[Tensor]]) -> None:
        super().__init__()
        self.module, self.call = module, call

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.call(self.module, x))


def _fake_loss(outs: list, douts: list[Tensor]):
    """L = sum_k <out_k, dout_k>, on Values or on tensors."""
    terms = [(o * d).sum() for o, d in zip(outs, douts, strict=True)]
    return sum(terms[1:], terms[0])


def _as_list(out: Any) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _engine_backward(outs: list[Value], douts: list[Tensor], create_graph: bool) -> None:
    asked = {"create_graph": True} if create_graph else {}
    if len(outs) == 1:
        outs[0].backward(douts[0], **asked)
    else:
        total = (outs[0] * douts[0]).sum()
        for o, d in zip(outs[1:], douts[1:], strict=True):
            total = total + (o * d).sum()
        total.backward(**asked)


def own_methods(cls: type) -> list[str]:
    """The methods and properties a class defines itself (the engine ops of Value)."""
    return [name for name, member in vars(cls).items()
            if inspect.isfunction(member) or isinstance(member, property)]


# ---------------------------------------------------------------------- the two checks every test builds on


def assert_matches_twin(case: Case) -> Run:
    """Forward equal to the twin, and every gradient (inputs, parameters) and buffer equal to torch's.
    Returns our side's run."""
    ours, theirs = case.ours(), case.theirs()
    tol = case.op.tolerance(case.dtype)
    where = f"{case.op.name} [{case.sample.name}, {str(case.dtype).removeprefix('torch.')}]"
    count, twin_count = len(ours.outputs), len(theirs.outputs)
    assert count == twin_count, f"{where}: {count} outputs, torch's {twin_count}"
    for k, (a, e) in enumerate(zip(ours.outputs, theirs.outputs, strict=True)):
        assert_agree(f"{where} output {k}", a, e, tol)
    assert set(ours.grads) == set(theirs.grads), \
        f"{where}: gradients of {sorted(ours.grads)}, torch's of {sorted(theirs.grads)}"
    for name, e in theirs.grads.items():
        assert_agree(f"{where} d{name}", ours.grads[name], e, tol)
    assert set(ours.buffers) == set(theirs.buffers), \
        f"{where}: buffers {sorted(ours.buffers)}, torch's {sorted(theirs.buffers)}"
    for name, e in theirs.buffers.items():
        assert_agree(f"{where} {name} after the forward pass", ours.buffers[name], e, tol)
    return ours


def assert_finite_differences(case: Case) -> None:
    """Our gradient of every coordinate of every input and parameter against central differences (float64)."""
    assert case.dtype == torch.float64, "finite differences are judged in float64"
    grads = case.ours().grads
    leaves = case.leaves()
    assert set(grads) == set(leaves), f"{case.op.name}: gradients of {sorted(grads)}, but inputs {sorted(leaves)}"
    # The rounding of a difference quotient itself: L's terms out * dout are each rounded (~eps of their size), and
    # dividing by 2h magnifies it. Where L is large beside a gradient (a batch norm's weight of one feature: L is
    # linear in it, so the quotient is exact but for that rounding), it is what is left, and it is allowed for.
    terms = sum((o.double() * d.double()).abs().sum().item() for o, d in zip(case.forward(), case.douts, strict=True))
    rounding = ROUNDING * torch.finfo(torch.float64).eps * terms / FD_STEP
    for name, tensor in leaves.items():
        coords = torch.arange(tensor.numel())
        numeric = finite_difference(case.fake_loss, tensor, coords)
        error = finite_difference_error(numeric, grads[name], coords)
        largest = max(grads[name].abs().max().item(), 1e-300) if grads[name].numel() else 1.0
        allowed = FINITE_DIFF_FLOAT64.rtol + rounding / largest
        assert error <= allowed, (
            f"{case.op.name} [{case.sample.name}] d{name}: finite-difference relative error {error:.3e} > "
            f"{allowed:.3e} ({FINITE_DIFF_FLOAT64.describe()}, plus the quotient's rounding {rounding:.1e})")
