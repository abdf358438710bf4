"""`python -m compare autograd --mode forward|hvp|double-backward`: the engine's other derivatives against torch's.

The engine variant and the torch variant of the network, from one seed (bit-identical), on the first batch;
for each parameter tensor one derivative of the loss from each side (compare/checking/derivatives.py):

    forward          dL/dp . v_p, a random unit direction v_p of p alone: engine.jvp vs torch.func.jvp
    hvp              H v, one random unit direction v of all parameters: engine.hvp vs torch.func.jvp(grad),
                     and, in float64, a central difference of the engine's gradient along v as a third witness
    double-backward  dP/dp of the gradient penalty P = sum_p |dL/dp|^2: engine.grad twice (create_graph=True
                     first) vs torch.autograd.grad twice

judged with the named tolerance of the dtype (compare/base/agreement.py: modes_tolerance).
"""

from __future__ import annotations

import torch

from compare import models
from compare.base import agreement
from compare.base.report import plural, table
from compare.checking import derivatives, finite_diff
from compare.training.config import Config
from compare.training.learners import build_engine, build_torch, parameter_mismatches
from compare.training.loop import first_batch
from compare.training.verdict import print_summary
from scratch import engine

# How each side computes the mode's quantity, for the line under the table's title.
HOW = {
    "forward": "engine: scratch/engine.py's jvp (a tangent on p, one forward pass); torch: torch.func.jvp",
    "hvp": "engine: scratch/engine.py's hvp (forward over reverse); torch: torch.func.jvp of torch.func.grad",
    "double-backward": "engine: grad(L, create_graph=True), then grad(P); torch: torch.autograd.grad the same way",
}
# The column of values each mode's table shows (torch's).
SHOWN = {"forward": "dL/dp . v_p", "hvp": "max |(H v)_p|", "double-backward": "max |dP/dp|"}
# The rules of the ops a mode runs through, for a failure's `What next`.
RULES = {"forward": "forward mode runs each op's tangent rule",
         "hvp": "H v runs each op's backward rule on Values (create_graph=True), with its tangent rule",
         "double-backward": "double backward runs each op's backward rule on Values (create_graph=True)"}
ORDER = ("reverse", "forward", "hvp", "double-backward")  # `What next` points to the mode after this one


def compute(mode: str, config: Config, e_loss: derivatives.EngineLoss, t_loss: derivatives.TorchLoss,
            params: dict[str, torch.Tensor]) -> derivatives.Derivatives:
    if mode == "forward":
        return derivatives.forward_mode(e_loss, t_loss, params, derivatives.unit_directions(params, config.seed, True))
    if mode == "double-backward":
        return derivatives.gradient_penalty(e_loss, t_loss, params)
    # finite differences only in float64: a difference quotient of float32 gradients is rounding (~1e-3 of it)
    h = finite_diff.step_for(models.family_of(config.model).kinked(config.model)) \
        if config.torch_dtype == torch.float64 else None
    return derivatives.hessian_vector_product(e_loss, t_loss, params,
                                              derivatives.unit_directions(params, config.seed, False), h)


def run(config: Config, data) -> dict:
    mode = config.extra["mode"]
    x, y = first_batch(data.x_train, data.y_train, config.batch_size, config.seed)
    shape = dict(input_size=x.shape[1], num_classes=len(data.classes))
    ours, theirs = build_engine(config, **shape), build_torch(config, **shape)
    mismatched = parameter_mismatches(ours, theirs)
    print(f"Initial parameters of engine and torch: "
          f"{'bit-identical' if not mismatched else 'DIFFERENT in ' + ', '.join(mismatched)}")
    e_loss = derivatives.engine_loss(ours.model, ours.loss_fn, ours.shaped(x), y)
    t_loss = derivatives.torch_loss(theirs.model, theirs.loss_fn, theirs.shaped(x), y)
    params = theirs.named_parameters()
    with engine.no_grad(), torch.no_grad():
        losses = {"engine": e_loss({}).data.item(), "torch": t_loss(params).item()}
    print(f"Loss on one batch of {len(x)} {config.dataset} images: "
          + ", ".join(f"{k} {v:.15g}" for k, v in losses.items()))

    result = compute(mode, config, e_loss, t_loss, params)
    tol, fd_tol = agreement.modes_tolerance(config.torch_dtype), agreement.HVP_FINITE_DIFF_FLOAT64
    parameters, rows, failures = judge(mode, result, params, tol, fd_tol)
    fd = result.finite_difference
    fd_error = derivatives.finite_difference_rel_error(result.engine, fd) if fd else None
    print(f"\nMode {mode}: {derivatives.QUANTITIES[mode]}\n  {HOW[mode]}")
    if mode != "double-backward":
        print(f"  directions: normal draws from --seed {config.seed}, scaled to unit length")
    print(table(["parameter", "shape", f"{SHOWN[mode]} (torch)", "engine vs torch",
                 *(["engine vs finite diff"] if fd else []), "pass"], rows))
    for message in failures:
        print("  " + message)
    print(f"Tolerance: {tol.describe()}")
    if fd:
        print("Finite differences of the engine's gradient, (g(theta + h v) - g(theta - h v)) / 2h, "
              f"h={result.step:g}:\n  max|H v - FD| / max|FD| over all parameters {fd_error:.2e} ({fd_tol.describe()})")
    elif mode == "hvp":
        print("Finite differences: float64 only (a difference quotient of float32 gradients is mostly rounding)")

    worst = max(p["max_rel_error"] for p in parameters)
    agree = not failures  # engine vs torch, every tensor
    passed = not mismatched and agree and (fd_error is None or fd_error <= fd_tol.rtol)
    print(f"\nVerdict: {'PASSED' if passed else 'FAILED'} (engine vs torch {worst:.2e}"
          + (f", engine vs finite differences {fd_error:.2e}" if fd_error is not None else "") + ")")
    lines = summary(mode, mismatched, [p["name"] for p in parameters if not p["passed"]], len(parameters),
                    worst, fd_error, tol, fd_tol, agree)
    print_summary(lines)
    return dict(
        quantity=derivatives.QUANTITIES[mode],
        agreement=dict(passed=passed, identical_start=not mismatched, max_rel_error=worst, tolerance=tol.rtol,
                       tolerance_rule=tol.describe(), finite_difference_rel_error=fd_error,
                       finite_difference_tolerance=fd_tol.rtol if fd else None, loss=losses, summary=lines),
        parameters=parameters,
        finite_difference_rel_error=fd_error,
        finite_difference_step=result.step,
    )


def judge(mode: str, result: derivatives.Derivatives, params: dict[str, torch.Tensor], tol: agreement.Tolerance,
          fd_tol: agreement.Tolerance) -> tuple[list[dict], list[list], list[str]]:
    """Each parameter's entry of the report, its row of the table, and the mismatch messages."""
    fd = result.finite_difference
    fd_scale = max(max(t.abs().max().item() for t in fd.values()), agreement.TINY) if fd else None
    parameters, rows, failures = [], [], []
    for name, expected in result.torch.items():
        comparison = agreement.compare(f"{name} ({mode}, engine vs torch)", result.engine[name], expected, tol)
        entry = dict(name=name, shape=list(params[name].shape), max_rel_error=comparison.max_rel_error,
                     max_abs_diff=comparison.max_abs_diff, torch_max_abs=expected.abs().max().item())
        row = [name, "x".join(map(str, params[name].shape)),
               expected.item() if mode == "forward" else entry["torch_max_abs"], comparison.max_rel_error]
        if not comparison.passed:
            failures.append(comparison.message)
        entry["passed"] = comparison.passed
        if fd:  # against the largest entry over all parameters, as finite_difference_rel_error
            entry["finite_difference_rel_error"] = (result.engine[name] - fd[name]).abs().max().item() / fd_scale
            entry["passed"] &= entry["finite_difference_rel_error"] <= fd_tol.rtol
            row.append(entry["finite_difference_rel_error"])
        parameters.append(entry)
        rows.append([*row, entry["passed"]])
    return parameters, rows, failures


def summary(mode: str, mismatched: list[str], failed: list[str], count: int, worst: float, fd_error: float | None,
            tol: agreement.Tolerance, fd_tol: agreement.Tolerance, agree: bool) -> dict[str, str]:
    """The three closing lines."""
    witness = (f"; finite differences {fd_error:.1e}, tolerance {fd_tol.describe()}" if fd_error is not None else "")
    if mismatched:
        implementations = "disagree: the initial parameters differ"
    elif not agree:
        implementations = (f"disagree ({mode}: {plural(len(failed), 'parameter tensor')} of {count}: "
                           f"{', '.join(failed)})")
    elif failed:
        implementations = (f"engine and torch agree ({worst:.1e}), but the finite differences do not "
                           f"({fd_error:.1e}; {fd_tol.describe()})")
    else:
        implementations = (f"agree ({mode}: worst relative error {worst:.1e} over {count} parameter tensors; "
                           f"tolerance {tol.describe()}{witness})")
    after = ORDER[ORDER.index(mode) + 1] if mode != ORDER[-1] else None
    if mismatched:
        following = ("the engine and torch variants were built from one seed but differ: the family's builders "
                     "(compare/models/) must draw the same numbers in the same order")
    elif not failed:
        following = (f"python -m compare autograd --mode {after} checks {derivatives.QUANTITIES[after]}" if after else
                     "python -m compare train --engine autograd trains the engine's network against torch's")
    elif not agree:
        following = (f"the mismatch lines above name the tensor, the index and both values; {RULES[mode]} "
                     "(scratch/engine.py): python -m pytest tests/test_ops.py finds the op whose rule is wrong")
    else:
        following = ("engine and torch agree on H v, the finite differences of the gradient do not: a kink of the loss "
                     "(a ReLU's 0, a tie in a max) within h of theta along v does that; try another --seed")
    return dict(implementations=implementations, training="not trained: one batch", next=following)
