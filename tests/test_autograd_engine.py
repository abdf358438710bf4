"""Tests for the scratch autograd engine (scratch/engine.py) and the MLP built on it.

Every op is an entry of the op table (tests/ops.py): the tests generated from it check each one two
independent ways, against torch.autograd and against central finite differences, always with a random
upstream gradient (not `.sum()`), and on its kinks, layouts and dtypes. Here hypothesis builds random
expressions of the ops over random, broadcasting shapes; then the graph itself (reuse, accumulation,
no_grad, freed graphs, errors) and the MLP on the engine. Run:

    .venv/bin/python -m pytest tests/test_autograd_engine.py -q
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn import functional

from compare.base.agreement import (
    AUTOGRAD_EXPRESSIONS_FLOAT64,
    AUTOGRAD_FLOAT64,
    ENGINE_VS_HAND_FLOAT64,
    SECOND_ORDER_FD_FLOAT64,
    Tolerance,
    assert_agree,
)
from compare.models import make_spec
from compare.training.config import Config
from compare.training.learners import build_engine, build_scratch, build_torch, parameter_mismatches
from scratch import engine as engine_module
from scratch import engine_nn
from scratch.engine import (
    GraphError,
    Value,
    cat,
    cross_entropy,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jvp,
    mse_loss,
    no_grad,
    stack,
    vjp,
)

F64 = torch.float64


# ---------------------------------------------------------------------- both sides of one expression


def run_both(fn: Callable, inputs: list[torch.Tensor], seed: int = 1, reference: Callable | None = None):
    """fn on engine Values and `reference` (default: fn) on torch leaves; backward from one random dout on both."""
    values = [Value(t.clone(), requires_grad=True) for t in inputs]
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    out_e, out_t = fn(*values), (reference or fn)(*leaves)
    dout = torch.randn(out_t.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    out_e.backward(dout)
    out_t.backward(dout)
    return out_e, out_t, values, leaves, dout


def assert_matches_torch(name: str, fn: Callable, inputs: list[torch.Tensor],
                         tol: Tolerance = AUTOGRAD_FLOAT64, reference: Callable | None = None) -> None:
    out_e, out_t, values, leaves, _ = run_both(fn, inputs, reference=reference)
    assert out_e.shape == out_t.shape, f"{name}: shape {list(out_e.shape)}, torch's {list(out_t.shape)}"
    assert_agree(f"{name} forward", out_e.data, out_t.detach(), tol)
    for i, (v, leaf) in enumerate(zip(values, leaves, strict=True)):
        if leaf.grad is None:  # torch: this input does not reach the output; the engine: a zero buffer
            assert torch.count_nonzero(v.grad) == 0, f"{name}: input {i} is unused, but its gradient is not zero"
        else:
            assert_agree(f"{name} d(input {i})", v.grad, leaf.grad, tol)


def test_engine_index_and_permute_errors_say_what_to_do() -> None:
    v = Value(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="basic indices"):
        _ = v[torch.tensor([0, 1])]
    with pytest.raises(ValueError, match="name every dim once"):
        v.permute(0, 0)


def test_loss_inputs_are_checked() -> None:
    z = Value(torch.zeros(4, 3, dtype=F64), requires_grad=True)
    with pytest.raises(ValueError, match="integer targets"):
        cross_entropy(z, torch.zeros(5, dtype=torch.int64))
    with pytest.raises(TypeError, match="int64"):
        mse_loss(z, torch.zeros(4))


# ---------------------------------------------------------------------- random expressions (hypothesis)

# Ops that keep a shape broadcastable against the others; k picks a dim (a 0-dim value has one: 0 or -1).
# exp, log, pow and div get inputs that keep them finite however they are chained.
UNARY = {
    "neg": lambda a, k: -a,
    "exp": lambda a, k: a.tanh().exp(),
    "log": lambda a, k: (a * a + 1).log(),
    "relu": lambda a, k: a.relu(),
    "sigmoid": lambda a, k: a.sigmoid(),
    "tanh": lambda a, k: a.tanh(),
    "square": lambda a, k: a ** 2,
    "sqrt": lambda a, k: (a * a + 1) ** 0.5,
    "sum-keepdim": lambda a, k: a.sum(dim=-1 - k % max(a.dim(), 1), keepdim=True),
    "mean-keepdim": lambda a, k: a.mean(dim=-1 - k % max(a.dim(), 1), keepdim=True),
    "log_softmax": lambda a, k: a.log_softmax(dim=-1 - k % max(a.dim(), 1)),
    "reshape": lambda a, k: a.reshape(-1).reshape(a.shape),
    "transpose": lambda a, k: (a.transpose(0, -1) * 1.5).transpose(0, -1),
    "permute": lambda a, k: (a.permute(tuple(reversed(range(a.dim())))) * 1.5).permute(tuple(reversed(range(a.dim())))),
    "rsqrt": lambda a, k: (a * a + 1).rsqrt(),
    "gelu": lambda a, k: a.gelu() if isinstance(a, Value) else functional.gelu(a),
    "softmax": lambda a, k: a.softmax(dim=-1 - k % max(a.dim(), 1)),
    "max-keepdim": lambda a, k: a.max(dim=-1 - k % max(a.dim(), 1), keepdim=True).values,  # ties after relu
    "cat-halves": lambda a, k: a if a.dim() == 0 else join(cat, torch.cat, [a[..., :k % 2], a[..., k % 2:]], -1),
    "stack-then-index": lambda a, k: join(stack, torch.stack, [a, a * 2.0], 0)[k % 2],
}


def join(engine_fn: Callable, torch_fn: Callable, parts: list, dim: int):
    """cat or stack, the engine's on Values and torch's on tensors (the expressions run on both)."""
    return engine_fn(parts, dim=dim) if isinstance(parts[0], Value) else torch_fn(parts, dim=dim)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "pow": lambda a, b: (a * a + 1) ** b.tanh(),
}
FINAL = {
    "none": lambda a, k: a,
    "sum": lambda a, k: a.sum(),
    "mean": lambda a, k: a.mean(),
    "sum-dim": lambda a, k: a.sum(dim=k % max(a.dim(), 1)),
    "mean-dim": lambda a, k: a.mean(dim=k % max(a.dim(), 1)),
}


@st.composite
def expressions(draw):
    """Leaves whose shapes broadcast against one base shape, and a random program over them."""
    base = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        dropped = draw(st.integers(0, len(base)))  # broadcasting may add leading dims (all: a 0-dim leaf) ...
        shape = [1 if draw(st.booleans()) else n for n in base[dropped:]]  # ... and stretch size-1 dims
        shapes.append(tuple(shape))
    steps = draw(st.lists(
        st.one_of(
            st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY)), st.integers(0, 10), st.integers(0, 3)),
            st.tuples(st.just("binary"), st.sampled_from(sorted(BINARY)), st.integers(0, 10), st.integers(0, 10)),
        ), min_size=1, max_size=7))
    final = draw(st.tuples(st.sampled_from(sorted(FINAL)), st.integers(0, 3)))
    return shapes, steps, final, draw(st.integers(0, 2**31 - 1))


def evaluate(shapes, steps, final, leaves):
    """Run the program: each step appends one result; operands are picked among all results so far,
    so a value is often used more than once (and then must accumulate its gradients)."""
    values = list(leaves)
    for kind, name, i, j in steps:
        a = values[i % len(values)]
        values.append(UNARY[name](a, j) if kind == "unary" else BINARY[name](a, values[j % len(values)]))
    name, k = final
    return FINAL[name](values[-1], k)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions())
def test_random_expressions_match_torch(expression) -> None:
    shapes, steps, final, seed = expression
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(s, generator=g, dtype=F64) for s in shapes]
    assert_matches_torch(f"{steps} then {final}", lambda *xs: evaluate(shapes, steps, final, xs), inputs,
                         AUTOGRAD_EXPRESSIONS_FLOAT64)


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(st.integers(1, 3), max_size=2), n=st.integers(1, 4), k=st.integers(1, 4),
       m=st.integers(1, 4), drop=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_random_matmul_shapes_match_torch(batch, n, k, m, drop, seed) -> None:
    """Matrix products with batch dims that broadcast (b may have fewer or size-1 batch dims)."""
    g = torch.Generator().manual_seed(seed)
    b_batch = [] if drop else [1] * len(batch)
    a = torch.randn(*batch, n, k, generator=g, dtype=F64)
    b = torch.randn(*b_batch, k, m, generator=g, dtype=F64)
    assert_matches_torch("matmul", lambda x, w: (x @ w).tanh(), [a, b])


# ---------------------------------------------------------------------- the graph machinery


def test_reused_node_accumulates_every_path() -> None:
    x = Value(torch.tensor([1.5, -2.0], dtype=F64), requires_grad=True)
    y = x * x + x  # x reaches y three times: dy/dx = 2x + 1
    y.backward(torch.ones(2, dtype=F64))
    assert torch.equal(x.grad, 2 * x.data + 1)

    h = x.tanh()  # an intermediate result used by two ops
    z = (h * 3.0 + h.exp()).sum()
    x.zero_grad()
    z.backward()
    expected = (3.0 + torch.exp(torch.tanh(x.data))) * (1 - torch.tanh(x.data) ** 2)
    assert_agree("diamond", x.grad, expected, AUTOGRAD_FLOAT64)
    assert_agree("h.grad", h.grad, 3.0 + torch.exp(h.data), AUTOGRAD_FLOAT64)


def test_leaf_gradients_add_up_across_backward_calls_until_zero_grad() -> None:
    w = Value(torch.tensor([2.0], dtype=F64), requires_grad=True)
    buffer = w.grad  # an optimizer holds this very tensor
    (w * 3.0).sum().backward()
    (w * 4.0).sum().backward()
    assert w.grad is buffer and w.grad.item() == 7.0
    w.zero_grad()
    assert w.grad is buffer and w.grad.item() == 0.0


def test_intermediate_gradients_stay_separate_across_passes() -> None:
    """add hands one tensor to both of its inputs; their recorded .grad must not change each other."""
    w = Value(torch.ones(3, dtype=F64), requires_grad=True)
    h1, h2 = w * 2.0, w * 3.0
    y = (h1 + h2).sum()
    y.backward(retain_graph=True)
    h1.zero_grad()  # after one pass, h1.grad and h2.grad may be one tensor
    assert h1.grad.tolist() == [0.0] * 3 and h2.grad.tolist() == [1.0] * 3
    y.backward()  # the second pass adds to each
    assert h1.grad.tolist() == [1.0] * 3 and h2.grad.tolist() == [2.0] * 3 and w.grad.tolist() == [10.0] * 3


def test_no_grad_records_nothing() -> None:
    w = Value(torch.randn(3, dtype=F64), requires_grad=True)
    with no_grad():
        y = (w * 2.0).exp().sum()
        assert not y.requires_grad and y._parents == () and y._backward is None
    with pytest.raises(GraphError, match="no parameter influences"):
        y.backward()
    assert torch.count_nonzero(w.grad) == 0
    # recording resumes afterwards, also after an exception inside the block
    with pytest.raises(ZeroDivisionError), no_grad():
        _ = 1 / 0
    z = (w * 2.0).sum()
    assert z.requires_grad and len(z._parents) == 1

    @no_grad()
    def evaluate_once(v: Value) -> Value:
        return v * v

    assert evaluate_once(w)._parents == ()


def test_constants_get_no_gradient() -> None:
    w = Value(torch.randn(2, 3, dtype=F64), requires_grad=True)
    x = Value(torch.randn(4, 3, dtype=F64))  # data: no gradient wanted
    out = (x @ w.T).sum()
    out.backward()
    assert x.grad is None and w.grad is not None


def test_second_backward_on_a_freed_graph_is_a_clear_error() -> None:
    w = Value(torch.randn(3, dtype=F64), requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    with pytest.raises(GraphError, match="already freed.*retain_graph=True"):
        loss.backward()
    # with retain_graph the graph can be walked twice, and the gradients add up
    w.zero_grad()
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert_agree("twice", w.grad, 4 * w.data, AUTOGRAD_FLOAT64)


def test_non_scalar_backward_needs_an_upstream_gradient() -> None:
    w = Value(torch.randn(2, 3, dtype=F64), requires_grad=True)
    out = w.tanh()
    with pytest.raises(GraphError, match=r"non-scalar Value of shape \[2, 3\] needs an upstream gradient"):
        out.backward()
    with pytest.raises(GraphError, match=r"dout has shape \[3\]"):
        out.backward(torch.ones(3, dtype=F64))
    out.backward(torch.ones(2, 3, dtype=F64))  # a correctly shaped upstream gradient works


def test_shape_errors_say_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"reshape a vector"):
        Value(torch.ones(3)) @ Value(torch.ones(3))
    with pytest.raises(ValueError, match="inner sizes 3 and 4"):
        Value(torch.ones(2, 3)) @ Value(torch.ones(4, 2))
    with pytest.raises(ValueError, match="use .transpose"):
        _ = Value(torch.ones(2, 3, 4)).T


def test_topological_order_lists_each_value_after_its_parents() -> None:
    x = Value(torch.ones(2, dtype=F64), name="x")  # data
    w = Value(torch.ones(2, dtype=F64), requires_grad=True, name="w")
    h = x * w
    y = (h + h.exp()).sum()  # h is used twice, and listed once
    assert [v._op or v.name for v in y.topological_order()] == ["w", "mul", "exp", "add", "sum"]
    assert [v._op or v.name for v in y.topological_order(constants=True)] == ["x", "w", "mul", "exp", "add", "sum"]


def test_deep_graph_does_not_hit_the_recursion_limit() -> None:
    x = Value(torch.tensor(0.5, dtype=F64), requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() + 500):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_neuron_of_the_lesson() -> None:
    """2*3 + 5*6 - 2 = 34, then a ReLU, then the squared error to a target 40 (docs/autograd.md)."""
    x = Value(torch.tensor([[2.0, 5.0]], dtype=F64))
    w = Value(torch.tensor([[3.0, 6.0]], dtype=F64), requires_grad=True)
    b = Value(torch.tensor([-2.0], dtype=F64), requires_grad=True)
    z = x @ w.T + b
    a = z.relu()
    loss = 0.5 * (a - 40.0) ** 2
    assert z.item() == 34.0 and a.item() == 34.0 and loss.item() == 18.0
    loss.backward()
    assert a.grad.item() == -6.0 and z.grad.item() == -6.0
    assert w.grad.tolist() == [[-12.0, -30.0]] and b.grad.tolist() == [-6.0]


# ---------------------------------------------------------------------- forward mode


def test_neuron_of_the_lesson_in_forward_mode() -> None:
    """The same neuron with a tangent: nudging w_0 by t moves z by x_0 t = 2t, and the loss by (a - 40) 2t = -12t,
    the reverse-mode gradient dL/dw_0 above (docs/autograd.md works it by hand)."""
    x, w, b = (torch.tensor(v, dtype=F64) for v in ([[2.0, 5.0]], [[3.0, 6.0]], [-2.0]))

    def neuron(x, w, b):
        z = x @ w.T + b
        return z, z.relu(), 0.5 * (z.relu() - 40.0) ** 2

    outs, tangents = jvp(neuron, (x, w, b), (torch.zeros(1, 2, dtype=F64), torch.tensor([[1.0, 0.0]], dtype=F64),
                                             torch.zeros(1, dtype=F64)))
    assert [o.item() for o in outs] == [34.0, 34.0, 18.0]
    assert [t.item() for t in tangents] == [2.0, 2.0, -12.0]
    # along b: dz/db = 1; along x_1 (the input itself): dz/dx_1 = w_1 = 6
    _, (tz, _, _) = jvp(neuron, (x, w, b), (torch.zeros(1, 2, dtype=F64), torch.zeros(1, 2, dtype=F64),
                                           torch.ones(1, dtype=F64)))
    _, (tx, _, _) = jvp(neuron, (x, w, b), (torch.tensor([[0.0, 1.0]], dtype=F64), torch.zeros(1, 2, dtype=F64),
                                           torch.zeros(1, dtype=F64)))
    assert tz.item() == 1.0 and tx.item() == 6.0


def test_jacfwd_matches_torch_func_and_the_rows_of_reverse_mode() -> None:
    """The Jacobian of a small MLP's logits with respect to its input, three ways: engine.jacfwd (a column per
    jvp), torch.func.jacfwd on the torch twin, and the engine's reverse mode (a row per backward)."""
    torch.manual_seed(0)
    model = engine_nn.MLP(input_size=5, hidden_sizes=(4,), activation="tanh", num_classes=3).to(dtype=F64)
    twin = build_torch(Config(dtype="float64", model=make_spec(hidden=(4,), activation="tanh")), input_size=5,
                       num_classes=3).model
    twin.load_state_dict({n: p.data for n, p in model.named_parameters()})
    x = torch.randn(2, 5, dtype=F64)
    jacobian = jacfwd(model, x)
    assert jacobian.shape == (2, 3, 2, 5)
    assert_agree("jacfwd vs torch.func.jacfwd", jacobian, torch.func.jacfwd(twin)(x), AUTOGRAD_EXPRESSIONS_FLOAT64)
    rows = torch.empty(2, 3, 2, 5, dtype=F64)
    for b in range(2):
        for k in range(3):
            value = Value(x.clone(), requires_grad=True)
            model(value)[b, k].backward()
            rows[b, k] = value.grad
    assert_agree("jacfwd vs reverse mode", jacobian, rows, AUTOGRAD_EXPRESSIONS_FLOAT64)


def test_jvp_says_what_it_expects() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        jvp(lambda a, b: a + b, (x, x), (x,))
    with pytest.raises(ValueError, match=r"tangent 0 has shape \[3\], its primal \[2, 3\]"):
        jvp(lambda a: a.exp(), (x,), (torch.zeros(3),))


def test_jvp_records_nothing_and_gives_a_constant_output_a_zero_tangent() -> None:
    weight = Value(torch.ones(3, 3), requires_grad=True)
    out, tangent = jvp(lambda a: a @ weight, (torch.ones(2, 3),), (torch.ones(2, 3),))
    assert torch.equal(tangent, torch.full((2, 3), 3.0)) and torch.equal(out, torch.full((2, 3), 3.0))
    _, tangent = jvp(lambda a: a.detach() * 2.0, (torch.ones(2),), (torch.ones(2),))
    assert torch.equal(tangent, torch.zeros(2))  # detach cuts the tangent too, as in torch.func


def test_an_op_without_a_tangent_rule_is_refused_in_forward_mode() -> None:
    def mystery(a: Value) -> Value:
        return engine_module._result(a.data * 2, (a,), "mystery", lambda dout, out, x: (2 * dout,))

    with pytest.raises(NotImplementedError, match="'mystery' op has no tangent rule"):
        jvp(mystery, (torch.ones(2),), (torch.ones(2),))
    a = Value(torch.ones(2))
    a.tangent = torch.ones(2)
    assert (a * 3.0).tangent is None  # outside jvp, ops do not look at tangents


# ---------------------------------------------------------------------- second order


def neuron_loss(w: Value) -> Value:
    x, b = torch.tensor([[2.0, 5.0]], dtype=F64), torch.tensor([-2.0], dtype=F64)
    return 0.5 * ((x @ w.T + b).relu() - 40.0) ** 2


def test_neuron_of_the_lesson_second_derivatives() -> None:
    """dL/dw = (a - 40) x = [-12, -30]; d2L/dw2 = x x^T (the ReLU passes, its own second derivative is 0):
    [[4, 10], [10, 25]], by grad of a recorded gradient, by hvp and by hessian."""
    w = Value(torch.tensor([[3.0, 6.0]], dtype=F64), requires_grad=True)
    (g,) = grad(neuron_loss(w), w, create_graph=True)
    assert isinstance(g, Value) and g.data.tolist() == [[-12.0, -30.0]]
    assert grad(g[0, 0], w)[0].tolist() == [[4.0, 10.0]]
    loss, (row,) = hvp(neuron_loss, (w.data,), (torch.tensor([[0.0, 1.0]], dtype=F64),))
    assert loss.item() == 18.0 and row.tolist() == [[10.0, 25.0]]
    assert hessian(neuron_loss, w.data).reshape(2, 2).tolist() == [[4.0, 10.0], [10.0, 25.0]]


def small_mlp_pair():
    torch.manual_seed(0)
    model = engine_nn.MLP(input_size=5, hidden_sizes=(4,), activation="tanh", num_classes=3).to(dtype=F64)
    twin = build_torch(Config(dtype="float64", model=make_spec(hidden=(4,), activation="tanh")), input_size=5,
                       num_classes=3).model
    twin.load_state_dict({n: p.data for n, p in model.named_parameters()})
    return model, twin


def test_gradient_penalty_matches_torch() -> None:
    """backward(create_graph=True), then the gradient of sum_p |dL/dp|^2 (a gradient penalty), against torch's
    autograd.grad(create_graph=True) and a second grad; every .grad is then a Value."""
    model, twin = small_mlp_pair()
    x, y = torch.randn(6, 5, dtype=F64), torch.tensor([0, 1, 2, 0, 1, 2])
    cross_entropy(model(Value(x)), y).backward(create_graph=True)
    params = [p for _, p in model.named_parameters()]
    assert all(isinstance(p.grad, Value) for p in params)
    penalty = sum(((p.grad ** 2).sum() for p in params[1:]), (params[0].grad ** 2).sum())
    ours = grad(penalty, params)
    torch_params = list(twin.parameters())
    first = torch.autograd.grad(torch.nn.functional.cross_entropy(twin(x), y), torch_params, create_graph=True)
    theirs = torch.autograd.grad(sum((g ** 2).sum() for g in first), torch_params)
    for (name, _), a, e in zip(model.named_parameters(), ours, theirs, strict=True):
        assert_agree(f"d(penalty)/d{name}", a, e, AUTOGRAD_EXPRESSIONS_FLOAT64)


def tanh_energy(x):
    return ((x @ x.transpose(0, 1)).tanh() * x.sum(dim=1, keepdim=True)).sum()


def test_hvp_matches_torch_func_and_finite_differences_of_the_gradient() -> None:
    g = torch.Generator().manual_seed(2)
    x, v = torch.randn(3, 4, generator=g, dtype=F64), torch.randn(3, 4, generator=g, dtype=F64)
    value, (ours,) = hvp(tanh_energy, (x,), (v,))
    _, theirs = torch.func.jvp(torch.func.grad(tanh_energy), (x,), (v,))
    assert_agree("hvp vs torch.func", ours, theirs, AUTOGRAD_EXPRESSIONS_FLOAT64)
    assert value.item() == pytest.approx(tanh_energy(x).item(), rel=1e-15)

    def gradient_at(point):
        leaf = Value(point, requires_grad=True)
        return grad(tanh_energy(leaf), leaf)[0]

    h = 1e-6
    numeric = (gradient_at(x + h * v) - gradient_at(x - h * v)) / (2 * h)
    assert_agree("hvp vs finite differences of the gradient", ours, numeric, SECOND_ORDER_FD_FLOAT64)


def test_vjp_jacrev_and_hessian_match_torch_func() -> None:
    model, twin = small_mlp_pair()
    x, v = torch.randn(2, 5, dtype=F64), torch.randn(2, 3, dtype=F64)
    out, vjp_fn = vjp(model, x)
    out_t, vjp_t = torch.func.vjp(twin, x)
    assert_agree("vjp output", out, out_t, AUTOGRAD_EXPRESSIONS_FLOAT64)
    assert_agree("v^T J", vjp_fn(v)[0], vjp_t(v)[0], AUTOGRAD_EXPRESSIONS_FLOAT64)
    assert_agree("v^T J, again (the graph is kept)", vjp_fn(2 * v)[0], 2 * vjp_t(v)[0], AUTOGRAD_EXPRESSIONS_FLOAT64)
    assert_agree("jacrev", jacrev(model, x), torch.func.jacrev(twin)(x), AUTOGRAD_EXPRESSIONS_FLOAT64)
    assert_agree("jacrev vs jacfwd", jacrev(model, x), jacfwd(model, x), AUTOGRAD_EXPRESSIONS_FLOAT64)
    y = torch.tensor([0, 2])
    h = hessian(lambda a: cross_entropy(model(a), y), x)
    h_t = torch.func.hessian(lambda a: torch.nn.functional.cross_entropy(twin(a), y))(x)
    assert h.shape == (2, 5, 2, 5)
    assert_agree("hessian", h, h_t, AUTOGRAD_EXPRESSIONS_FLOAT64)


def test_grad_returns_gradients_and_leaves_dot_grad_alone() -> None:
    w = Value(torch.tensor([1.0, 2.0], dtype=F64), requires_grad=True)
    unused = Value(torch.ones(3, dtype=F64), requires_grad=True)
    (dw,) = grad((w * w).sum(), w)
    assert dw.tolist() == [2.0, 4.0] and not w.grad.any()  # the buffer is untouched
    assert grad((w * w).sum(), [w, unused], allow_unused=True)[1] is None
    with pytest.raises(GraphError, match="input 1 is not used.*allow_unused=True"):
        grad((w * w).sum(), [w, unused])
    # several outputs, weighted: d(<w^2, [1, 1]> + <3w, [2, 0]>)/dw = 2w + [6, 0]
    assert grad([w * w, w * 3.0], w, [torch.ones(2, dtype=F64), torch.tensor([2.0, 0.0], dtype=F64)])[0].tolist() \
        == [8.0, 4.0]
    with pytest.raises(ValueError, match="2 outputs but 1 grad_outputs"):
        grad([w * w, w * 3.0], w, [torch.ones(2)])
    with pytest.raises(GraphError, match="non-scalar"):
        grad(w * w, w)


def test_plain_backward_still_gives_tensors() -> None:
    w = Value(torch.tensor([1.0, 2.0], dtype=F64), requires_grad=True)
    (w * w).sum().backward()
    assert type(w.grad) is torch.Tensor and w.grad.tolist() == [2.0, 4.0]


# ---------------------------------------------------------------------- the MLP on the engine


@pytest.mark.parametrize("activation,loss", [("relu", "cross-entropy"), ("sigmoid", "mse"), ("tanh", "cross-entropy")])
def test_engine_mlp_matches_hand_derived_backprop(activation: str, loss: str) -> None:
    config = Config(dtype="float64", loss=loss, model=make_spec(activation=activation, hidden=(16, 16)))
    hand, engine = build_scratch(config), build_engine(config)
    assert parameter_mismatches(hand, engine) == [], "both should start bit-identical from one seed"
    g = torch.Generator().manual_seed(3)
    x = torch.randn(32, 784, generator=g, dtype=F64)
    y = torch.randint(0, 10, (32,), generator=g)
    loss_h, loss_e = hand.forward_backward(x, y), engine.forward_backward(x, y)
    assert_agree("loss", loss_e, loss_h, ENGINE_VS_HAND_FLOAT64)
    grads_h = hand.named_gradients()
    for name, g in engine.named_gradients().items():
        assert_agree(name, g, grads_h[name], ENGINE_VS_HAND_FLOAT64)


def test_engine_mlp_matches_hand_derived_backprop_on_mnist(mnist64) -> None:
    data = mnist64  # real MNIST in float64 (skips without $MNIST_DATA_ROOT; see tests/conftest.py)
    config = Config(dtype="float64")
    hand, engine = build_scratch(config), build_engine(config)
    x, y = data.x_train[:64], data.y_train[:64]
    hand.forward_backward(x, y)
    engine.forward_backward(x, y)
    grads_h = hand.named_gradients()
    for name, g in engine.named_gradients().items():
        assert_agree(name, g, grads_h[name], ENGINE_VS_HAND_FLOAT64)


def test_engine_learner_trains_in_lockstep_with_torch() -> None:
    """Ten SGD steps from the same start: parameters stay equal to float64 rounding."""
    config = Config(dtype="float64", lr=0.1, model=make_spec(hidden=(8,)))
    engine, reference = build_engine(config, input_size=20, num_classes=4), build_torch(config, input_size=20,
                                                                                       num_classes=4)
    assert parameter_mismatches(engine, reference) == []
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        x, y = torch.randn(16, 20, generator=g, dtype=F64), torch.randint(0, 4, (16,), generator=g)
        loss_e, loss_t = engine.train_step(x, y), reference.train_step(x, y)
        assert abs(loss_e - loss_t) <= 1e-12 * abs(loss_t)
    params_t = reference.named_parameters()
    for name, p in engine.named_parameters().items():
        assert_agree(name, p, params_t[name], ENGINE_VS_HAND_FLOAT64)


def test_engine_learner_evaluation_records_nothing() -> None:
    """logits() runs the model inside no_grad: its output has no graph, though the parameters require
    gradients. (loss_value() gets logits as a constant Value, so it records nothing with or without no_grad.)"""
    engine = build_engine(Config(dtype="float64", model=make_spec(hidden=(8,))), input_size=20, num_classes=4)
    model = engine.model
    outputs: list[Value] = []

    def model_spy(x: Value) -> Value:
        outputs.append(model(x))
        return outputs[-1]

    engine.model = model_spy
    logits = engine.logits(torch.randn(5, 20, dtype=F64))
    engine.model = model
    assert isinstance(logits, torch.Tensor) and logits.shape == (5, 4)
    assert len(outputs) == 1 and outputs[0].data is logits
    assert not outputs[0].requires_grad and outputs[0]._parents == (), "logits() recorded a graph for backward"
    assert engine.loss_value(logits, torch.tensor([0, 1, 2, 3, 0])).shape == ()
    assert all(torch.count_nonzero(g) == 0 for g in engine.named_gradients().values())


def test_engine_mlp_checks_its_spec() -> None:
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        engine_nn.MLP(activation="gelu")
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 784\]"):
        engine_nn.MLP()(Value(torch.zeros(2, 28, 28)))


def test_docs_point_at_the_right_lines() -> None:
    """docs/autograd.md links code lines as [`fragment`](../path.py#Ln): each line must hold its fragment."""
    root = Path(__file__).resolve().parent.parent
    links = re.findall(r"\[`([^`]+)`\]\(\.\./([\w/]+\.py)#L(\d+)\)", (root / "docs" / "autograd.md").read_text())
    assert len(links) >= 10
    for text, path, line in links:
        source_line = (root / path).read_text().splitlines()[int(line) - 1]
        assert link_target_matches(text, source_line), \
            f"docs/autograd.md: {path} line {line} is {source_line.strip()!r}, not {text!r}; update the link"


def link_target_matches(text: str, line: str) -> bool:
    """A code fragment appears on the line; `Value.exp` is the method's def (indented once, taking self),
    `no_grad` a top-level def (so a link cannot land on one of the nested `def backward(dout)` rules)."""
    if "(" in text or " " in text:
        return text in line
    if "." in text:
        return line.startswith(f"    def {text.rsplit('.', 1)[-1]}(self")
    return line.startswith(f"def {text}(") or line.startswith(f"class {text}")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_engine_mlp_on_cuda_matches_cpu() -> None:
    cpu, gpu = build_engine(Config(dtype="float64")), build_engine(Config(dtype="float64", device="cuda"))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 784, generator=g, dtype=F64), torch.randint(0, 10, (32,), generator=g)
    cpu.forward_backward(x, y)
    gpu.forward_backward(x.cuda(), y.cuda())
    grads_cpu = cpu.named_gradients()
    for name, g in gpu.named_gradients().items():
        assert g.is_cuda
        assert_agree(name, g.cpu(), grads_cpu[name], AUTOGRAD_FLOAT64)
