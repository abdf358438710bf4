"""`bench --autograd-modes`: what forward mode and second order cost, measured against a forward pass and a gradient.

    python -m compare bench --autograd-modes                 # each family's default network, one batch of 32
    python -m compare bench --autograd-modes --models mlp --batch-sizes 128

For each network, the loss of one batch as a function of its parameters, L(theta), timed four ways on
each side, engine (scratch/engine.py on the family's engine variant) and torch.func (on the torch twin):

    forward    L(theta)                     gradient   dL/dtheta                  (reverse mode)
    jvp        L and dL/dtheta . v          hvp        dL/dtheta and H v          (forward over reverse)

with v one random direction over all parameters. The ratios jvp/forward and hvp/gradient are the
figures: a jvp carries one tangent beside every value, at most about 3 times the work of the
forward pass, and an hvp is a gradient with a tangent beside every value of the backward pass too,
at most about 3 times a gradient (the textbook bounds). Each side's jvp and hvp are also compared
with the other side's: the timed functions compute the same numbers.

torch runs its composite kernels here (math attention, no oneDNN RNN; tests/op_kinds.py says why: the
fused ones have no forward-mode or double-backward formula), for all four of its timings alike. The loss as a
function of the parameters, on both sides, and those kernels are compare/checking/derivatives.py's, which
`autograd --mode` checks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

import torch_impl
from compare.base import agreement
from compare.base.report import table
from compare.checking import derivatives
from compare.commands.bench.timing import median_and_spread, timed
from compare.training.config import Config
from compare.training.learners import build_engine, build_torch
from scratch import engine
from scratch.engine import Value

MODES = ("forward", "jvp", "gradient", "hvp")


def engine_contenders(model: object, loss_fn: Callable, x: Tensor, y: Tensor,
                      v: list[Tensor]) -> tuple[dict[str, Callable[[], object]], list[Tensor]]:
    """The engine's four timed functions of the parameters, and the parameter tensors."""
    names = [n for n, _ in model.named_parameters()]
    params = [p.data for _, p in model.named_parameters()]
    of_parameters = derivatives.engine_loss(model, loss_fn, x, y)  # the model with these Values as its parameters

    def loss(*values: Value) -> Value:
        return of_parameters(dict(zip(names, values, strict=True)))

    def forward() -> Tensor:
        with engine.no_grad():
            return loss(*[Value(p) for p in params]).data

    def gradient() -> tuple:
        values = [Value(p, requires_grad=True) for p in params]
        return engine.grad(loss(*values), values)

    return dict(forward=forward, jvp=lambda: engine.jvp(loss, params, v), gradient=gradient,
                hvp=lambda: engine.hvp(loss, params, v)), params


def torch_contenders(model: torch.nn.Module, loss_fn: torch.nn.Module, x: Tensor, y: Tensor,
                     v: list[Tensor]) -> dict[str, Callable[[], object]]:
    """torch.func's four timed functions of the same parameters."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    tangents = dict(zip(params, v, strict=True))
    loss = derivatives.torch_loss(model, loss_fn, x, y)  # torch.func.functional_call

    def forward() -> Tensor:
        with torch.no_grad():
            return loss(params)

    return dict(forward=forward, jvp=lambda: torch.func.jvp(loss, (params,), (tangents,)),
                gradient=lambda: torch.func.grad(loss)(params),
                hvp=lambda: torch.func.jvp(torch.func.grad(loss), (params,), (tangents,)))


def agree(config: Config, ours: dict[str, Callable], theirs: dict[str, Callable], names: list[str]) -> dict:
    """The engine's jvp and hvp against torch.func's, from the very functions that are timed."""
    tol32 = config.torch_dtype == torch.float32
    first = agreement.gradient_tolerance(config.torch_dtype)
    second = agreement.SECOND_ORDER_FLOAT32 if tol32 else agreement.AUTOGRAD_FLOAT64
    (_, jvp_e), (_, jvp_t) = ours["jvp"](), theirs["jvp"]()
    results = [agreement.compare("jvp: dL/dtheta . v", jvp_e, jvp_t, first)]
    (_, hvp_e), (_, hvp_t) = ours["hvp"](), theirs["hvp"]()
    results += [agreement.compare(f"hvp: (H v) for {n}", hvp_e[i], hvp_t[n], second) for i, n in enumerate(names)]
    return dict(passed=all(r.passed for r in results), max_rel_error=max(r.max_rel_error for r in results),
                failures=[r.message for r in results if not r.passed])


def measure_model(config: Config, x: Tensor, y: Tensor, repeats: int, block_seconds: float) -> dict:
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    engine_model = build_engine(config, input_size=x.shape[1], num_classes=10).model
    torch_model = build_torch(config, input_size=x.shape[1], num_classes=10).model
    torch_model.load_state_dict({n: p.data for n, p in engine_model.named_parameters()})
    g = torch.Generator().manual_seed(config.seed + 1)
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.data.device, p.dtype)
         for _, p in engine_model.named_parameters()]
    ours, params = engine_contenders(engine_model, engine.LOSSES[config.loss], x, y, v)
    theirs = torch_contenders(torch_model, torch_impl.LOSSES[config.loss](), x, y, v)
    names = [n for n, _ in engine_model.named_parameters()]
    with derivatives.torch_derivative_kernels():
        check = agree(config, ours, theirs, names)
        contenders = {("engine", m): ours[m] for m in MODES} | {("torch.func", m): theirs[m] for m in MODES}
        steps = {key: max(1, round(block_seconds / max(timed(device, work), 1e-6))) for key, work in contenders.items()}
        seconds: dict[tuple[str, str], list[float]] = {key: [] for key in contenders}
        for _ in range(repeats):  # interleaved: a slow moment of the machine hits every contender alike
            for key, work in contenders.items():
                seconds[key].append(timed(device, lambda w=work, k=key: [w() for _ in range(steps[k])]) / steps[key])
    result = dict(parameters=sum(p.numel() for p in params), agreement=check)
    for side in ("engine", "torch.func"):
        med = {m: median_and_spread(seconds[(side, m)]) for m in MODES}
        result[side] = dict(**{f"{m}_seconds": med[m][0] for m in MODES}, **{f"{m}_spread": med[m][1] for m in MODES},
                            jvp_over_forward=med["jvp"][0] / med["forward"][0],
                            hvp_over_gradient=med["hvp"][0] / med["gradient"][0])
    return result


def print_table(results: list[dict]) -> None:
    rows = []
    for r in results:
        for side in ("engine", "torch.func"):
            s = r[side]
            rows.append([r["model"] if side == "engine" else "", side, f"{s['forward_seconds'] * 1e3:.2f}",
                         f"{s['jvp_seconds'] * 1e3:.2f}", f"{s['jvp_over_forward']:.2f}",
                         f"{s['gradient_seconds'] * 1e3:.2f}", f"{s['hvp_seconds'] * 1e3:.2f}",
                         f"{s['hvp_over_gradient']:.2f}"])
    print("\nMedian milliseconds per call, and the two ratios (the textbook bounds: about 3):")
    print(table(["model", "side", "forward", "jvp", "jvp/forward", "gradient", "hvp", "hvp/gradient"], rows))
    for r in results:
        a = r["agreement"]
        print(f"{r['model']}: engine's jvp and hvp vs torch.func's: {'agree' if a['passed'] else 'DISAGREE'} "
              f"(worst relative error {a['max_rel_error']:.1e})")
        for message in a["failures"]:
            print("  " + message)
