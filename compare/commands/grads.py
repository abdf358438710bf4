"""`python -m compare grads`: one batch of real data, gradients three ways.

For each parameter tensor: the scratch (hand-derived) gradient against torch.autograd,
and against central finite differences in float64. Then the state after one update: batch
norm's running statistics, and the parameters after one step of each optimizer from the
same (torch's) gradients, and the learning rate after one step of the schedule. Passes when
every comparison is within its named tolerance (compare/base/agreement.py).

With --dropout both networks draw the same masks (see scratch/dropout.py), and the finite
differences replay that mask for every nudged loss, so they differentiate the same function.
"""

from __future__ import annotations

import dataclasses

import torch
from tqdm import tqdm

from compare import models
from compare.base import agreement
from compare.base.report import plural, table
from compare.checking import finite_diff
from compare.options.command import Command
from compare.options.groups import BATCH, DATA, EPOCHS, LOSS, MODEL, OPTIMIZER, PLOTS, RUN
from compare.pictures.canvas import require_matplotlib
from compare.pictures.gradients import gradient_errors
from compare.training.config import Config
from compare.training.learners import Learner, ScratchLearner, build_pair, build_scratch, parameter_mismatches
from compare.training.loop import first_batch
from compare.training.verdict import print_summary


def finite_difference_errors(config: Config, x: torch.Tensor, y: torch.Tensor,
                             num_classes: int) -> dict[str, tuple[float, int, int]]:
    """Per parameter: (relative error, number of coordinates judged, number left out because a kink of the loss
    lies within the nudge there) of a float64 finite-difference check (compare/checking/finite_diff.py)."""
    f64 = dataclasses.replace(config, dtype="float64", device="cpu")
    learner: ScratchLearner = build_scratch(f64, input_size=x.shape[1], num_classes=num_classes)
    x64, y64 = x.to("cpu", torch.float64), y.cpu()
    start_of_stream = learner.random_state
    learner.forward_backward(x64, y64)
    analytic = {n: g.clone() for n, g in learner.named_gradients().items()}
    params = learner.named_parameters()

    def loss_at() -> float:
        learner.random_state = start_of_stream  # the same dropout mask as the analytic gradient's forward
        with learner.own_random_stream():
            return learner.loss_value(learner.training_forward(x64), y64).item()

    learner.model.train()
    errors = {}
    kinked = models.family_of(config.model).kinked(config.model)  # a smooth network has no kink to leave out
    chosen = finite_diff.choose_coordinates(params, seed=config.seed)
    # two losses per coordinate: a minute or more for a large network, so a bar (on a terminal, as the training
    # loop shows, compare/training/loop.py)
    bar = tqdm(total=sum(len(c) for c in chosen.values()), desc="finite differences", unit="coordinate",
               leave=False, disable=None, dynamic_ncols=True)
    for name, coords in chosen.items():
        bar.set_postfix_str(name, refresh=False)
        numeric, disagreement = finite_diff.finite_difference_slopes(loss_at, params[name], coords, h=fd_step(config),
                                                                     progress=bar.update)
        smooth = disagreement <= finite_diff.KINK_RTOL * analytic[name].abs().max().item()
        if not kinked:
            smooth = torch.ones_like(smooth)
        error = finite_diff.finite_difference_error(numeric[smooth], analytic[name], coords[smooth])
        errors[name] = (error, int(smooth.sum()), int((~smooth).sum()))
    bar.close()
    return errors


def fd_step(config: Config) -> float:
    return finite_diff.step_for(models.family_of(config.model).kinked(config.model))


def after_one_update(scratch_l: Learner, torch_l: Learner, tol: agreement.Tolerance) -> list[agreement.Comparison]:
    """Running statistics after the forward pass; parameters after one optimizer step that starts, on
    both sides, from the same parameters and torch's gradients (so the update rules alone are compared);
    the learning rate after one step of the schedule."""
    buffers_t = torch_l.named_buffers()
    results = [agreement.compare(f"{n} (after forward)", b, buffers_t[n], tol)
               for n, b in scratch_l.named_buffers().items()]
    grads_t = torch_l.named_gradients()
    for name, g in scratch_l.named_gradients().items():
        g.copy_(grads_t[name])
    scratch_l.step()
    torch_l.step()
    params_t = torch_l.named_parameters()
    results += [agreement.compare(f"{n} (after one step)", p, params_t[n], tol)
                for n, p in scratch_l.named_parameters().items()]
    scratch_l.end_epoch()
    torch_l.end_epoch()
    lr_s, lr_t = (torch.tensor(learner.learning_rate(), dtype=torch.float64) for learner in (scratch_l, torch_l))
    results.append(agreement.compare("learning rate (after one schedule step)", lr_s, lr_t, tol))
    return results


def run(config: Config, data) -> dict:
    if config.extra["plots"]:
        require_matplotlib()
    x, y = first_batch(data.x_train, data.y_train, config.batch_size, config.seed)
    scratch_l, torch_l = build_pair(config, input_size=x.shape[1], num_classes=len(data.classes))
    mismatched = parameter_mismatches(scratch_l, torch_l)
    print(f"Initial parameters: {'bit-identical' if not mismatched else 'DIFFERENT: ' + ', '.join(mismatched)}")

    loss_s, loss_t = scratch_l.forward_backward(x, y).item(), torch_l.forward_backward(x, y).item()
    print(f"Loss on one batch of {len(x)} {config.dataset} images: scratch {loss_s:.12g}, torch {loss_t:.12g}")
    tol = agreement.gradient_tolerance(config.torch_dtype)
    fd_tol = agreement.FINITE_DIFF_FLOAT64
    fd = finite_difference_errors(config, x, y, len(data.classes))

    grads_t = torch_l.named_gradients()
    rows, parameters, passed = [], [], not mismatched
    for name, g in scratch_l.named_gradients().items():
        result = agreement.compare(name, g, grads_t[name], tol)
        fd_err, fd_count, fd_kinks = fd[name]
        ok = result.passed and fd_err <= fd_tol.rtol
        passed &= ok
        if not result.passed:
            print("  " + result.message)
        rows.append([name, "x".join(map(str, g.shape)), result.max_abs_diff, result.max_rel_error,
                     fd_err, f"{fd_count}/{g.numel()}" + (f" (+{fd_kinks} at kinks)" if fd_kinks else ""), ok])
        parameters.append(dict(name=name, shape=list(g.shape), max_abs_diff=result.max_abs_diff,
                               max_rel_error=result.max_rel_error, finite_diff_rel_error=fd_err,
                               finite_diff_coordinates=fd_count, finite_diff_kinks=fd_kinks, passed=ok))
    print(table(["parameter", "shape", "max |diff|", "max rel err", "finite-diff rel err", "coords checked", "pass"],
                rows))
    updates = after_one_update(scratch_l, torch_l, tol)
    passed &= all(u.passed for u in updates)
    print(f"\nState after one update ({config.optimizer}, lr schedule {config.lr_schedule}), from torch's gradients:")
    print(table(["state", "max |diff|", "max rel err", "pass"],
                [[u.name, u.max_abs_diff, u.max_rel_error, u.passed] for u in updates]))
    for u in updates:
        if not u.passed:
            print("  " + u.message)
    worst_auto = max(p["max_rel_error"] for p in parameters)
    worst_fd = max(p["finite_diff_rel_error"] for p in parameters)
    kinks = sum(p["finite_diff_kinks"] for p in parameters)
    if kinks:
        print(f"(+N at kinks: {plural(kinks, 'coordinate')} where the loss has a kink within the nudge of "
              f"{fd_step(config):g} (one-sided slopes disagree by more than {finite_diff.KINK_RTOL:g} of the "
              "gradient's scale): not differentiable there, so left out of the finite-difference check)")
    print(f"\nTolerances: scratch vs autograd {tol.describe()}; finite differences ({config.dtype} model, "
          f"checked in float64, h={fd_step(config):g}) {fd_tol.describe()}")
    print(f"Verdict: {'PASSED' if passed else 'FAILED'} (worst autograd rel error {worst_auto:.2e}, "
          f"worst finite-difference rel error {worst_fd:.2e})")
    if config.extra["plots"]:
        path = gradient_errors(config.extra["plots"], parameters, tol, fd_tol, config.dtype)
        print(f"Picture written: {path}")
    failed = [p["name"] for p in parameters if not p["passed"]] + [u.name for u in updates if not u.passed]
    lines = dict(
        implementations=(f"agree (worst autograd rel error {worst_auto:.1e}, worst finite-difference rel error "
                         f"{worst_fd:.1e}; tolerances {tol.describe()}, {fd_tol.describe()})") if passed else
        ("disagree: the initial parameters differ" if mismatched else
         f"disagree ({plural(len(failed), 'comparison')} failed: {', '.join(failed)})"),
        training="not trained: one batch, and one update from the same gradients",
        next=("python -m compare train trains both in lockstep, with the same options" if passed else
              "the mismatch lines above name the tensor, the index and both values: that tensor's backward (or, "
              "after one step, its update) is the one to read"))
    print_summary(lines)
    return dict(
        agreement=dict(passed=passed, identical_start=not mismatched, loss_scratch=loss_s, loss_torch=loss_t,
                       max_rel_error=worst_auto, max_finite_diff_rel_error=worst_fd,
                       autograd_tolerance=tol.rtol, finite_diff_tolerance=fd_tol.rtol, tolerance_rule=tol.describe(),
                       summary=lines),
        parameters=parameters,
        after_update=[dict(name=u.name, max_abs_diff=u.max_abs_diff, max_rel_error=u.max_rel_error, passed=u.passed)
                      for u in updates],
    )


COMMAND = Command(
    name="grads",
    help="one batch: scratch gradients vs torch.autograd vs finite differences",
    run=run,
    groups=(DATA, MODEL, LOSS, BATCH, EPOCHS, OPTIMIZER, *RUN, PLOTS),
    config_keys=("plots",),
    defaults={"epochs": 1},
)
