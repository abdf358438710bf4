"""The verdict of a distributed run (`ddp`, `tp`): the runs' parameters and losses compared pair by pair.

    result = judge(config, records, parameters, checks, pairs=[("scratch", "torch"), ("scratch", "single")],
                   blame="...")

Each pair's largest parameter difference (relative to the largest entry of the tensor) and its
first-step and every-step loss differences; in float64 they must be rounding (the parameters within
TRAINED_PARAMETERS_FLOAT64, the losses within the dtype's separation threshold). `checks` come in
already holding the command's own (a bit-identical start, the hand collectives against the library's,
the bytes against their formula, ...); every one of them decides the verdict, and rank 0's verdict is
every process's exit status.
"""

from __future__ import annotations

import torch
from torch import Tensor

from compare.base import agreement
from compare.base.report import plural, table
from compare.training.config import Config
from compare.training.learners import Learner
from compare.training.loop import EpochStats, RunRecord
from compare.training.resync import relative_difference
from compare.training.verdict import print_summary, training_behaviour


def print_epoch(epoch: int, stats: dict[str, EpochStats], learners: list[Learner]) -> None:
    rows = [[what, *[getattr(stats[le.name], key) for le in learners]]
            for what, key in [("train loss", "train_loss"), ("test loss", "test_loss"),
                              ("test accuracy", "test_accuracy")]]
    seconds = [getattr(le, "epoch_seconds", None) for le in learners]
    if any(seconds):
        rows.append(["seconds in steps (rank 0)", *[s[-1] if s else "" for s in seconds]])
    print(f"\nEpoch {epoch}")
    print(table(["", *[le.name for le in learners]], rows))


def largest_difference(a: dict[str, Tensor], b: dict[str, Tensor]) -> tuple[float, str]:
    """The largest parameter difference relative to max|b| of the same tensor, and where."""
    return max((agreement.max_rel_error(p, b[name]), name) for name, p in a.items())


def largest_step_loss_difference(a: RunRecord, b: RunRecord) -> float:
    return max((relative_difference(x, y) for x, y in zip(a.step_losses, b.step_losses, strict=True)), default=0.0)


def judge(config: Config, records: dict[str, RunRecord], parameters: dict[str, dict[str, Tensor]],
          checks: dict[str, bool], pairs: list[tuple[str, str]], blame: str, drift: str) -> dict:
    """Rank 0's agreement checks and verdict, printed; `blame`: what a failed check points at; `drift`: why
    float32 runs part."""
    float64 = config.torch_dtype == torch.float64
    tol = agreement.TRAINED_PARAMETERS_FLOAT64
    loss_threshold = agreement.separation_threshold(config.torch_dtype)
    figures: dict = {}
    checks = dict(checks)
    for a, b in pairs:
        param, where = largest_difference(parameters[a], parameters[b])
        first = relative_difference(records[a].step_losses[0], records[b].step_losses[0])
        every = largest_step_loss_difference(records[a], records[b])
        figures[f"{a}_vs_{b}"] = dict(max_param_rel_diff=param, max_param_rel_diff_name=where,
                                      first_step_loss_rel_diff=first, max_step_loss_rel_diff=every)
        checks[f"{a} vs {b}: first step's loss within {loss_threshold:g} relative"] = first <= loss_threshold
        if float64:
            checks[f"{a} vs {b}: trained parameters within {tol.describe()}"] = param <= tol.rtol
            checks[f"{a} vs {b}: every step's loss within {loss_threshold:g} relative"] = every <= loss_threshold
    print("\nAfter training (largest differences, relative to the largest entry of the tensor):")
    print(table(["", "parameters", "in", "first step's loss", "any step's loss"],
                [[k.replace("_vs_", " vs "), f["max_param_rel_diff"], f["max_param_rel_diff_name"],
                  f["first_step_loss_rel_diff"], f["max_step_loss_rel_diff"]] for k, f in figures.items()]))
    if not float64:
        print(f"(float32: {drift}, and training amplifies those rounding differences; --dtype float64 keeps the runs "
              "equal to the end.)")
    implementations_agree = all(checks.values())
    diverged = {name: r.diverged_at for name, r in records.items() if r.diverged_at is not None}
    if config.extra["fail_on_divergence"]:
        checks["training did not diverge (--fail-on-divergence)"] = not diverged
    passed = all(checks.values())
    print("\nAgreement checks:")
    for name, ok in checks.items():
        print(f"  [{'pass' if ok else 'FAIL'}] {name}")
    accuracies = ", ".join(f"{name} {r.history[-1].test_accuracy:.2%}" for name, r in records.items())
    print(f"Verdict: {'PASSED' if passed else 'FAILED'} (test accuracy {accuracies})")
    lines = summary(config, implementations_agree, checks, diverged,
                    training_behaviour(records["scratch"].step_losses), f"test accuracy {accuracies}", blame, drift)
    print_summary(lines)
    return dict(passed=passed, checks=checks, summary=lines, **figures)


def summary(config: Config, agree: bool, checks: dict[str, bool], diverged: dict[str, int], behaviour: str,
            accuracies: str, blame: str, drift: str) -> dict[str, str]:
    """The three closing lines (compare/training/verdict.py) of a distributed run."""
    failed = [name for name, ok in checks.items() if not ok and "--fail-on-divergence" not in name]
    if diverged:
        training = ("diverged at step " + ", ".join(f"{name} {step}" for name, step in diverged.items())
                    + f" (the loss became inf or NaN); {accuracies}: the accuracy of a training that diverged")
    else:
        training = f"{behaviour if behaviour.startswith('unstable') else 'converged'} ({accuracies})"
        if config.dtype == "float32":
            training += f"; the runs drift apart as float32 rounding does ({drift}), which is expected"
    if not agree:
        next_step = f"the [FAIL] lines above say which pair differs: {blame}"
    elif diverged or behaviour.startswith("unstable"):
        next_step = f"lower --lr (now {config.lr:g}): the training is at fault, not the implementations"
    elif config.dtype == "float32":
        next_step = "rerun with --dtype float64 to see the runs end equal to rounding"
    else:
        next_step = "nothing to fix"
    return dict(implementations="agree (every check above passed)" if agree else
                f"disagree ({plural(len(failed), 'check')} failed: {'; '.join(failed)})",
                training=training, next=next_step)
