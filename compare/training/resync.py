"""Re-synchronized checks: do the two implementations agree at this point of training, wherever the runs went?

Two correct implementations, trained in lockstep, still drift apart: they add the same numbers
in different orders, and training amplifies those last-bit differences (slowly when it is
stable, explosively when it is not). So comparing the two runs says little about the
implementations once they have separated. A re-synchronized check does, at any point:

    1. copy both learners (so the runs themselves go on undisturbed);
    2. give the torch copy the scratch copy's whole state: parameters, buffers (batch norm's
       running statistics), optimizer state (momentum, Adam's moments and step), learning rate,
       and the random stream of the dropout masks (compare/training/state.py);
    3. run one forward and backward pass of each on the same batch and compare the loss and every
       gradient; then give the torch copy the scratch copy's gradients too, update both, and
       compare every parameter and buffer: so the backward passes are judged by their gradients
       and the optimizers by their update rules alone (Adam's first step, about lr * sign(g), would
       otherwise turn a rounding-level difference in a gradient near 0 into a difference of order lr).
       All at the dtype's tolerance (RESYNC_FLOAT64 / RESYNC_FLOAT32, compare/base/agreement.py).
    4. in float32, where the loss or a gradient differs beyond that, ask a referee: the reference
       learner's float64 twin (`Learner.float64_twin`), run from the same state on the same batch.
       Torch rounds too: where a gradient is a sum of many products that cancel (the first
       convolution's weight gradient behind batch norm sums 25,088 of them per weight), torch's
       float32 value was measured 2.6e-5 from the float64 one and scratch's 5.1e-7. The comparison
       then passes when scratch is within the tolerance of the float64 value, and says so.

`ResyncMonitor` runs one at the first step of the first epoch, of every `every`-th epoch after it
(every epoch for runs up to MAX_REGULAR_CHECKS epochs, about that many checks for longer ones) and
of the last epoch, and one at the step after the per-step losses first differ beyond the
trajectory threshold.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import Tensor

from compare.base import agreement
from compare.training.learners import Learner
from compare.training.loop import RunRecord


@dataclass
class ResyncCheck:
    step: int  # the global step (1-based) whose batch and starting state were used
    epoch: int
    reason: str
    passed: bool
    worst_rel_error: float  # over the loss, the gradients and the updated state
    worst_name: str
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check_one_step(a: Learner, b: Learner, x: Tensor, y: Tensor, tol: agreement.Tolerance,
                   scales: dict[str, float] | None = None) -> tuple[bool, float, str, list[str], dict[str, float]]:
    """One step of copies of `a` and `b` from `a`'s state, compared; the learners themselves are untouched.

    `scales`: the size (max|e|) of the loss and of each gradient at the run's first check, where the loss is
    of order one. The loss and the gradients are then also allowed tol.rtol times that size (an absolute
    floor). Late in a well-trained run the loss is ~1e-4: log-softmax and softmax - onehot then subtract
    numbers near 1, and float32 rounding alone is ~1e-3 of the tiny results (measured on the LSTM: 1.2e-4
    relative at loss 1.2e-4), while a bug shows at the first check. Returns (passed, worst relative error,
    where, failure messages, this check's scales).
    """
    pa, pb = copy.deepcopy(a), copy.deepcopy(b)
    state = pa.export_state()
    pb.import_state(state)

    def floored(name: str) -> agreement.Tolerance:
        floor = tol.rtol * (scales or {}).get(name, 0.0)
        return replace(tol, atol=max(tol.atol, floor)) if floor else tol

    loss_a, loss_b = pa.forward_backward(x, y), pb.forward_backward(x, y)
    results = [agreement.compare("loss", loss_a, loss_b, floored("loss"))]
    grads_a, grads_b = pa.named_gradients(), pb.named_gradients()
    sizes = {"loss": loss_b.abs().max().item(), **{f"d{n}": g.abs().max().item() for n, g in grads_b.items()}}
    results += [agreement.compare(f"d{name}", g, grads_b[name], floored(f"d{name}")) for name, g in grads_a.items()]
    if x.dtype == torch.float32 and not all(r.passed for r in results):
        results = refereed(results, b, state, x, y, {"loss": loss_a, **{f"d{n}": g for n, g in grads_a.items()}}, tol)
    for name, g in grads_b.items():  # the gradient buffers themselves: the update starts from equal gradients
        g.copy_(grads_a[name])
    pa.step()
    pb.step()
    after_b = {**pb.named_parameters(), **pb.named_buffers()}
    results += [agreement.compare(f"{name} after the update", t, after_b[name], tol)
                for name, t in {**pa.named_parameters(), **pa.named_buffers()}.items() if t.is_floating_point()]
    worst = max(results, key=lambda r: r.max_rel_error)
    failures = [r.message for r in results if not r.passed]
    return not failures, worst.max_rel_error, worst.name, failures, sizes


def refereed(results: list[agreement.Comparison], reference: Learner, state, x: Tensor, y: Tensor,
             values_a: dict[str, Tensor], tol: agreement.Tolerance) -> list[agreement.Comparison]:
    """The float32 comparisons, each failing one replaced by the comparison of `a`'s value with the float64
    referee's: passed when `a` is within `tol` of it. Unchanged where the reference has no float64 twin."""
    twin = reference.float64_twin()
    if twin is None:
        return results
    twin.load_state({**state.parameters, **state.buffers})
    twin.random_state = None if state.random_state is None else state.random_state.clone()
    truth = {"loss": twin.forward_backward(x.double(), y), **{f"d{n}": g for n, g in twin.named_gradients().items()}}
    out = []
    for r in results:
        if r.passed:
            out.append(r)
            continue
        judged = agreement.compare(f"{r.name} (against {reference.name} in float64)", values_a[r.name].double(),
                                   truth[r.name], tol)
        out.append(judged if judged.passed else r)
    return out


def relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


MAX_REGULAR_CHECKS = 20


class ResyncMonitor:
    """A `before_step` hook for compare.training.loop.train_lockstep that runs the re-synchronized checks."""

    def __init__(self, a: Learner, b: Learner, tol: agreement.Tolerance, separation: float, epochs: int) -> None:
        self.a, self.b, self.tol, self.separation, self.epochs = a, b, tol, separation, epochs
        self.every = math.ceil(epochs / MAX_REGULAR_CHECKS)
        self.checks: list[ResyncCheck] = []
        self.separated = False
        self.scales: dict[str, float] | None = None  # loss and gradient sizes at the first check (see check_one_step)

    def __call__(self, epoch: int, step_in_epoch: int, step: int, x: Tensor, y: Tensor,
                 records: dict[str, RunRecord]) -> None:
        reason = None
        la, lb = records[self.a.name].step_losses, records[self.b.name].step_losses
        if not self.separated and la and lb and relative_difference(la[-1], lb[-1]) > self.separation:
            self.separated = True
            reason = f"the step after the losses first differed by more than {self.separation:g} (step {len(la)})"
        elif step_in_epoch == 1 and ((epoch - 1) % self.every == 0 or epoch == self.epochs):
            reason = f"first step of epoch {epoch}"
        if reason is None:
            return
        passed, worst, name, failures, sizes = check_one_step(self.a, self.b, x, y, self.tol, self.scales)
        if self.scales is None and passed:
            self.scales = sizes
        self.checks.append(ResyncCheck(step, epoch, reason, passed, worst, name, failures))

    def summary(self) -> dict:
        worst = max(self.checks, key=lambda c: c.worst_rel_error) if self.checks else None
        return dict(passed=bool(self.checks) and all(c.passed for c in self.checks), count=len(self.checks),
                    worst_rel_error=worst.worst_rel_error if worst else None,
                    worst_at_step=worst.step if worst else None, tolerance=self.tol.describe(),
                    checks=[c.to_dict() for c in self.checks])
