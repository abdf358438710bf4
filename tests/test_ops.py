"""Tests generated from the op table (tests/ops.py): every scratch layer, loss and engine op, every sample.

For each entry and each of its samples:
- float64 gradients against central finite differences (every coordinate) and against torch.autograd;
- the forward pass equal to the torch twin's, in every dtype it claims (float32 to float32's tolerance),
  outputs and gradients in the input's dtype and on its device;
- backward run twice gives bit-identical gradients (no state kept between calls);
- a non-contiguous input (a strided view, NaN in its gaps) gives the answer of its contiguous copy, up to the
  rounding of another loop order (LAYOUT_FLOAT64);
- training and evaluation mode differ exactly where the entry says so;
- forward mode (engine.jvp) against torch.func.jvp on the twin and against finite differences of the forward
  pass along the same direction, for every entry that claims it (the engine's ops and blocks);
- second derivatives (engine.grad with create_graph=True, then engine.grad of <gradient, w>: H w) against
  torch.autograd.grad the same two ways, against finite differences of the gradient along w, and against
  engine.hvp (forward over reverse: the backward pass's own ops carrying tangents);
- each documented refusal raises its error;
- on CUDA (skipped without a GPU), ours against the twin there, forward mode too.
And a test that fails when scratch/ holds a layer, loss or engine op the table does not list.

    pytest tests/test_ops.py -q
"""

from __future__ import annotations

import inspect
import pkgutil
from importlib import import_module

import pytest
import torch
from conftest import requires_cuda
from op_kinds import (
    Case,
    OpInfo,
    assert_finite_differences,
    assert_matches_twin,
    non_contiguous,
    own_methods,
    qualified_name,
)
from ops import OPS

import scratch
from compare.base.agreement import (
    AUTOGRAD_EXPRESSIONS_FLOAT64,
    FINITE_DIFF_FLOAT64,
    LAYOUT_FLOAT64,
    SECOND_ORDER_FD_FLOAT64,
    SECOND_ORDER_FLOAT32,
    assert_agree,
)
from compare.checking.finite_diff import FD_STEP
from scratch import engine, engine_nn
from scratch.module import Module

F64 = torch.float64


def cases(select=lambda op, s: True):
    return [pytest.param(op, s, id=f"{op.name}/{s.name}") for op in OPS for s in op.samples if select(op, s)]


DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]


@pytest.mark.parametrize("op,sample", cases(lambda op, s: s.checks_finite_differences))
def test_gradients_match_finite_differences(op: OpInfo, sample) -> None:
    assert_finite_differences(Case(op, sample, F64))


# The cheap checks run every sample of an entry in one test (a failure names the sample); finite differences, the
# costly one, one test per sample, so that the workers share them out.
ENTRIES = [pytest.param(op, id=op.name) for op in OPS]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ENTRIES)
def test_matches_the_torch_twin_in_the_inputs_dtype_and_device(op: OpInfo, dtype) -> None:
    if dtype not in op.dtypes:
        pytest.skip(f"{op.name} does not claim {dtype}")
    for sample in op.samples:
        case = Case(op, sample, dtype)
        ours = assert_matches_twin(case)
        where = f"{op.name} [{sample.name}]"
        for k, out in enumerate(ours.outputs):
            assert (out.dtype, out.device) == (dtype, case.inputs[0].device), f"{where} output {k}: {out.dtype}"
        for name, leaf in case.leaves().items():
            grad = ours.grads[name]
            assert (grad.dtype, grad.device, grad.shape) == (leaf.dtype, leaf.device, leaf.shape), \
                f"{where} d{name}: {grad.dtype} {list(grad.shape)} for {leaf.dtype} {list(leaf.shape)}"


@pytest.mark.parametrize("op", ENTRIES)
def test_backward_twice_gives_bit_identical_gradients(op: OpInfo) -> None:
    for sample in op.samples:
        where = f"{op.name} [{sample.name}]"
        case = Case(op, sample, F64)
        first, second = case.ours(), case.ours()
        for k, (a, b) in enumerate(zip(first.outputs, second.outputs, strict=True)):
            assert torch.equal(a, b), f"{where}: output {k} changed between two forward passes"
        for name, g in first.grads.items():
            assert torch.equal(g, second.grads[name]), f"{where}: d{name} changed between two passes"
        if op.kind == "layer":  # and backward alone again, from the same cache
            dx = case.model.backward(case.douts[0])
            assert torch.equal(dx, second.grads["x"]), f"{where}: dx changed on a second backward"
            for name, g in case.model.named_gradients():
                assert torch.equal(g, second.grads[name]), f"{where}: d{name} changed on a second backward"
        if op.kind == "loss":
            assert torch.equal(case.model.backward(case.douts[0]), second.grads["logits"]), where


@pytest.mark.parametrize("op", [pytest.param(op, id=op.name) for op in OPS
                                if any(all(len(shape) > 0 for shape in s.shapes) for s in op.samples)])
def test_non_contiguous_input_gives_the_same_answer(op: OpInfo) -> None:
    for sample in op.samples:
        if not all(len(shape) > 0 for shape in sample.shapes):  # a 0-dim tensor has no layout to choose
            continue
        where = f"{op.name} [{sample.name}]"
        contiguous, strided = Case(op, sample, F64), Case(op, sample, F64, layout=non_contiguous)
        assert not any(t.is_contiguous() for _, t in strided.floating_inputs() if t.numel() > 1)
        a, b = contiguous.ours(), strided.ours()
        for k, (out_a, out_b) in enumerate(zip(a.outputs, b.outputs, strict=True)):
            assert_agree(f"{where} output {k}, strided input", out_b, out_a, LAYOUT_FLOAT64)
        for name, g in a.grads.items():
            assert_agree(f"{where} d{name}, strided input", b.grads[name], g, LAYOUT_FLOAT64)


FORWARD = [pytest.param(op, id=op.name) for op in OPS if op.forward_ad]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", FORWARD)
def test_forward_mode_matches_torch_func_jvp(op: OpInfo, dtype) -> None:
    """engine.jvp against torch.func.jvp on the twin: every input and parameter moving along a random direction."""
    for sample in op.samples:
        case = Case(op, sample, dtype)
        tangents = case.tangents()
        (outs, pushed), (outs_t, pushed_t) = case.ours_jvp(tangents), case.theirs_jvp(tangents)
        where, tol = f"{op.name} [{sample.name}, {dtype}]", op.tolerance(dtype)
        for k, (a, e) in enumerate(zip(outs, outs_t, strict=True)):
            assert_agree(f"{where} jvp output {k}", a, e, tol)
        for k, (a, e) in enumerate(zip(pushed, pushed_t, strict=True)):
            assert_agree(f"{where} jvp tangent {k}", a, e, tol)


@pytest.mark.parametrize("op,sample", cases(lambda op, s: op.forward_ad and s.checks_finite_differences))
def test_forward_mode_matches_finite_differences(op: OpInfo, sample) -> None:
    """J t against (f(x + h t) - f(x - h t)) / 2h, every input and parameter moved along its tangent (float64)."""
    case = Case(op, sample, F64)
    tangents = case.tangents()
    _, pushed = case.ours_jvp(tangents)
    leaves, h = case.leaves(), FD_STEP

    def moved(sign: float) -> list[torch.Tensor]:
        for name, leaf in leaves.items():
            leaf.add_(sign * h * tangents[name])
        try:
            return [out.clone() for out in case.forward()]  # a view of a leaf would move back with it
        finally:
            for name, leaf in leaves.items():
                leaf.sub_(sign * h * tangents[name])

    numeric = [(plus - minus) / (2 * h) for plus, minus in zip(moved(1.0), moved(-1.0), strict=True)]
    for k, (a, e) in enumerate(zip(pushed, numeric, strict=True)):
        assert_agree(f"{op.name} [{sample.name}] jvp tangent {k} vs finite differences", a, e, FINITE_DIFF_FLOAT64)


@pytest.mark.parametrize("op", [op for op in OPS if op.kind == "layer"], ids=lambda op: op.name)
def test_training_and_evaluation_differ_only_where_claimed(op: OpInfo) -> None:
    case = Case(op, op.samples[0], F64)
    x = case.inputs[0]
    outputs = [case.model.train(mode).forward(x).clone() for mode in (True, False)]
    same = torch.equal(*outputs)
    assert same != op.modes_differ, (
        f"{op.name} claims modes_differ={op.modes_differ}, but its training and evaluation outputs are "
        f"{'equal' if same else 'different'}")


@pytest.mark.parametrize("op", [pytest.param(op, id=op.name) for op in OPS if op.errors])
def test_documented_refusals_raise(op: OpInfo) -> None:
    for refusal in op.errors:
        with pytest.raises(refusal.error, match=refusal.match):
            refusal.call()


SECOND = [pytest.param(op, id=op.name) for op in OPS if op.double_backward]


def second_order_weights(case: Case) -> dict[str, torch.Tensor]:
    """A random weight for each leaf's gradient: the second backward is then H w, a Hessian-vector product."""
    g = torch.Generator().manual_seed(case.seed + 4)
    return {n: torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.device, t.dtype)
            for n, t in case.leaves().items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", SECOND)
def test_double_backward_matches_torch(op: OpInfo, dtype) -> None:
    """engine.grad(create_graph=True) then engine.grad again, against torch.autograd.grad the same two ways."""
    for sample in op.samples:
        case = Case(op, sample, dtype)
        weights = second_order_weights(case)
        ours, theirs = case.ours_second(weights), case.theirs_second(weights)
        where = f"{op.name} [{sample.name}, {dtype}]"
        assert set(ours) == set(theirs), f"{where}: second derivatives of {sorted(ours)}, torch's of {sorted(theirs)}"
        tol = op.tolerance(dtype) if dtype == torch.float64 else SECOND_ORDER_FLOAT32
        for name, e in theirs.items():
            assert_agree(f"{where} d/d{name} <dL/d(leaves), w>", ours[name], e, tol)


@pytest.mark.parametrize("op", SECOND)
def test_hvp_forward_over_reverse_matches_double_backward(op: OpInfo) -> None:
    """H w two ways: the tangent of a recorded gradient (engine.hvp: every backward rule's ops carry tangents)
    and the gradient of a gradient; the parameters' weights at zero, as hvp moves the inputs only (float64)."""
    for sample in op.samples:
        case = Case(op, sample, F64)
        weights = second_order_weights(case)
        inputs = {n for n, _ in case.floating_inputs()}
        second = case.ours_second({n: w if n in inputs else torch.zeros_like(w) for n, w in weights.items()})
        for name, row in case.ours_hvp(weights).items():
            assert_agree(f"{op.name} [{sample.name}] hvp vs double backward for {name}", row, second[name],
                         AUTOGRAD_EXPRESSIONS_FLOAT64)  # two routes of ours; a floor for saturated second derivatives


@pytest.mark.parametrize("op,sample", cases(lambda op, s: op.double_backward and s.checks_finite_differences))
def test_double_backward_matches_finite_differences_of_the_gradient(op: OpInfo, sample) -> None:
    """H w from two backward passes against (g(x + h w) - g(x - h w)) / 2h, g the plain gradient (float64)."""
    case = Case(op, sample, F64)
    weights = second_order_weights(case)
    second = case.ours_second(weights)
    leaves, h = case.leaves(), FD_STEP

    def gradient_moved(sign: float) -> dict[str, torch.Tensor]:
        for name, leaf in leaves.items():
            leaf.add_(sign * h * weights[name])
        try:
            return {n: g.clone() for n, g in case.ours_gradient().items()}
        finally:
            for name, leaf in leaves.items():
                leaf.sub_(sign * h * weights[name])

    plus, minus = gradient_moved(1.0), gradient_moved(-1.0)
    for name in leaves:
        numeric = (plus[name] - minus[name]) / (2 * h)
        assert_agree(f"{op.name} [{sample.name}] (H w) for {name} vs finite differences of the gradient",
                     second[name], numeric, SECOND_ORDER_FD_FLOAT64)


# One entry per op on a machine with a GPU; elsewhere one skipped test, not one per op.
CUDA_OPS = ([pytest.param(op, id=op.name) for op in OPS if op.cuda] if torch.cuda.is_available()
            else [pytest.param(None, id="no-gpu", marks=requires_cuda)])


@pytest.mark.cuda
@pytest.mark.parametrize("op", CUDA_OPS)
def test_on_cuda_matches_the_torch_twin(op: OpInfo, monkeypatch) -> None:
    # float32 means float32: cuDNN's convolutions would otherwise run in TF32 (10-bit mantissas), torch's default
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    for sample in op.samples:
        for dtype in op.dtypes:
            case = Case(op, sample, dtype, device="cuda")
            assert all(out.is_cuda for out in case.ours().outputs), f"{op.name}: an output left the GPU"
            assert_matches_twin(case)
            if op.double_backward:
                weights = second_order_weights(case)
                ours, theirs = case.ours_second(weights), case.theirs_second(weights)
                tol = op.tolerance(dtype) if dtype == torch.float64 else SECOND_ORDER_FLOAT32
                for name, e in theirs.items():
                    assert_agree(f"{op.name} [{sample.name}, {dtype}] H w for {name} on CUDA", ours[name], e, tol)
            if op.forward_ad:
                tangents = case.tangents()
                (_, pushed), (_, pushed_t) = case.ours_jvp(tangents), case.theirs_jvp(tangents)
                where = f"{op.name} [{sample.name}, {dtype}]"
                for k, (a, e) in enumerate(zip(pushed, pushed_t, strict=True)):
                    assert_agree(f"{where} jvp tangent {k} on CUDA", a, e, op.tolerance(dtype))


# ---------------------------------------------------------------------- the table itself


def first_scratch_class(thing: object) -> type:
    """The scratch class an entry builds (a test's subclass, such as dropout with a fixed mask, counts as its base)."""
    return next(c for c in type(thing).__mro__ if c.__module__.startswith("scratch."))


def covered() -> set[str]:
    names = set()
    for op in OPS:
        if op.covers:
            names.update(qualified_name(thing) for thing in op.covers)
        else:
            names.add(qualified_name(first_scratch_class(op.ours())))
    return names


# Value's plumbing: what reads or manages a Value without computing a new one from it.
NOT_OPS = {"shape", "dtype", "dim", "numel", "item", "is_leaf", "detach", "zero_grad", "backward", "topological_order",
           "__init__", "__repr__"}
ENGINE_PLUMBING = {"no_grad", "is_recording"}
# Transformations of a function, not ops: every op's tangent rule is checked through jvp above, its second
# derivative through grad; the transformations themselves in tests/test_autograd_engine.py.
ENGINE_TRANSFORMS = {"jvp", "jacfwd", "grad", "vjp", "jacrev", "hvp", "hessian"}


def scratch_ops() -> set[str]:
    """Every layer, loss, engine op and engine layer in scratch/, found by looking, not by a list."""
    found = {qualified_name(vars(engine.Value)[name]) for name in own_methods(engine.Value)
             if name not in NOT_OPS and not (name.startswith("_") and not name.startswith("__"))}
    for module in (engine, engine_nn):
        for name, thing in vars(module).items():
            if (name.startswith("_") or name in ENGINE_PLUMBING | ENGINE_TRANSFORMS
                    or getattr(thing, "__module__", None) != module.__name__):
                continue
            if inspect.isfunction(thing) or (inspect.isclass(thing) and issubclass(thing, engine_nn.Layer)
                                             and thing is not engine_nn.Layer):
                found.add(qualified_name(thing))
    for info in pkgutil.iter_modules(scratch.__path__):
        if info.name in ("engine", "engine_nn"):
            continue
        module = import_module(f"scratch.{info.name}")
        for name, thing in vars(module).items():
            if not inspect.isclass(thing) or thing.__module__ != module.__name__ or name.startswith("_"):
                continue
            is_layer = issubclass(thing, Module) and thing.forward is not Module.forward
            is_loss = not issubclass(thing, Module) and hasattr(thing, "forward") and hasattr(thing, "backward")
            if is_layer or is_loss:
                found.add(qualified_name(thing))
    return found


def test_every_scratch_op_has_an_entry() -> None:
    missing = sorted(scratch_ops() - covered())
    assert missing == [], f"scratch ops without an entry in tests/ops.py: {missing}; add one entry each"


def test_the_finder_sees_the_kinds_of_op() -> None:
    """Guard for the test above: it finds hand-written layers, losses, Value methods, engine functions and blocks."""
    found = scratch_ops()
    for thing in (scratch.Linear, scratch.CrossEntropyLoss, engine.Value.__add__, engine.Value.T, engine.cat,
                  engine_nn.conv2d, engine_nn.LSTM):
        assert qualified_name(thing) in found
    assert qualified_name(scratch.SGD) not in found and qualified_name(engine.Value.backward) not in found


def test_entries_name_what_exists_and_claim_consistently() -> None:
    ops = scratch_ops()
    for op in OPS:
        assert op.samples, f"{op.name}: no samples"
        for thing in op.covers:
            assert qualified_name(thing) in ops, f"{op.name} covers {qualified_name(thing)}, not a scratch op"
        has_kink = any(s.kink for s in op.samples)
        assert has_kink == op.kinked, f"{op.name}: kinked={op.kinked}, but kink samples: {has_kink}"
        for s in op.samples:
            assert s.finite_differences or s.why, f"{op.name}/{s.name}: say why finite differences are off"
