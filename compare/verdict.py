"""The verdict of a lockstep run: do the two implementations agree? Shared by `train` and `playground`.

float64: every per-step loss within LOCKSTEP_LOSS_FLOAT64 and identical test predictions.
float32: the first step within rounding, and final test accuracies within ACCURACY_GAP_FLOAT32
(the runs drift apart chaotically afterwards; see README "Tolerances").
"""

from __future__ import annotations

import math

from compare import agreement
from compare.config import Config
from compare.learners import Learner
from compare.loop import RunRecord
from compare.metrics import accuracy


def step_loss_differences(a: RunRecord, b: RunRecord) -> list[float]:
    return [abs(x - y) / max(abs(y), 1e-300) for x, y in zip(a.step_losses, b.step_losses, strict=True)]


def verdict(config: Config, records: dict[str, RunRecord], identical_start: bool) -> dict:
    """The figures judged and the named checks, with `passed` when every check holds."""
    s, t = records["scratch"], records["torch"]
    diffs = step_loss_differences(s, t)
    acc_s, acc_t = s.history[-1].test_accuracy, t.history[-1].test_accuracy
    same_predictions = accuracy(s.predictions, t.predictions)
    figures = dict(identical_start=identical_start, steps=len(diffs),
                   max_step_loss_rel_diff=max(diffs), first_step_loss_rel_diff=diffs[0],
                   prediction_agreement=same_predictions, test_accuracy_gap=abs(acc_s - acc_t))
    if config.dtype == "float64":
        checks = {
            f"every per-step loss within {agreement.LOCKSTEP_LOSS_FLOAT64:g} relative":
                figures["max_step_loss_rel_diff"] <= agreement.LOCKSTEP_LOSS_FLOAT64,
            f"identical test predictions on at least {agreement.PREDICTION_MATCH_FLOAT64:.1%} of images":
                same_predictions >= agreement.PREDICTION_MATCH_FLOAT64,
        }
    else:
        checks = {
            f"first step's loss within {agreement.FIRST_STEP_LOSS_FLOAT32:g} relative (rounding only)":
                diffs[0] <= agreement.FIRST_STEP_LOSS_FLOAT32,
            f"test accuracies within {agreement.ACCURACY_GAP_FLOAT32:.1%} of each other":
                abs(acc_s - acc_t) <= agreement.ACCURACY_GAP_FLOAT32,
        }
    checks = {"bit-identical initial parameters": identical_start, **checks}
    figures["checks"] = checks
    figures["passed"] = all(checks.values()) and all(math.isfinite(v) for v in diffs)
    return figures


def max_parameter_difference(a: Learner, b: Learner) -> tuple[str, float]:
    pb = b.named_parameters()
    diffs = {n: (p - pb[n]).abs().max().item() for n, p in a.named_parameters().items()}
    worst = max(diffs, key=diffs.get)
    return worst, diffs[worst]


def max_buffer_difference(a: Learner, b: Learner) -> tuple[str | None, float]:
    """The largest difference between the two models' buffers (batch norm's running statistics)."""
    ba, bb = a.named_buffers(), b.named_buffers()
    diffs = {n: (v.double() - bb[n].double()).abs().max().item() for n, v in ba.items() if n in bb}
    if not diffs:
        return None, 0.0
    worst = max(diffs, key=diffs.get)
    return worst, diffs[worst]


def print_checks(result: dict, summary: str) -> None:
    """The "Agreement checks" list and the verdict line."""
    print("\nAgreement checks:")
    for name, ok in result["checks"].items():
        print(f"  [{'pass' if ok else 'FAIL'}] {name}")
    print(f"Verdict: {'PASSED' if result['passed'] else 'FAILED'} ({summary})")
