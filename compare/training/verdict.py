"""The verdict of a lockstep run, in two parts: do the implementations agree, and what did the runs do?

- implementation: re-synchronized checks (compare/training/resync.py) put both implementations in the
  same state at several points of the run and compare one step at the dtype's tolerance. The
  verdict, and the exit status, rest on these (and on a bit-identical start): they hold
  wherever the trajectories went.
- trajectory: how long the two runs stayed identical (per-step losses within the separation
  threshold: LOCKSTEP_LOSS_FLOAT64 in float64, FIRST_STEP_LOSS_FLOAT32 in float32), how fast their
  difference grew afterwards (steps per doubling), what the training was doing (loss falling,
  rising, spiking), and the figures of the end: identical predictions, accuracy gap. Reported,
  not judged: unstable training amplifies last-bit differences of two correct implementations
  until the runs have nothing in common (see README "Tolerances").

A comparison ends with three lines a learner reads at a glance (`summary`, `print_summary`), also in the report
as agreement.summary: "Implementations" (agree or disagree, the worst re-synchronized error and the tolerance),
"Training" (converged, unstable or diverged, and whether the runs stayed identical) and "What next".
"""

from __future__ import annotations

import math
import statistics

from compare.base import agreement
from compare.base.report import plural
from compare.training.config import Config
from compare.training.learners import Learner
from compare.training.loop import RunRecord
from compare.training.metrics import accuracy
from compare.training.resync import relative_difference

SATURATED = 0.1  # a relative loss difference this large: the runs no longer share anything


def step_loss_differences(a: RunRecord, b: RunRecord) -> list[float]:
    return [relative_difference(x, y) for x, y in zip(a.step_losses, b.step_losses, strict=True)]


def training_behaviour(losses: list[float]) -> str:
    """What the training was doing, read from one run's per-step losses."""
    finite = [v for v in losses if math.isfinite(v)]
    if len(finite) < len(losses):
        return "diverged (loss became inf or NaN)"
    tenth = max(1, len(finite) // 10)
    first, last = statistics.fmean(finite[:tenth]), statistics.fmean(finite[-tenth:])
    window = 50
    # A spike: a step's loss over 3x the median of the 50 before it and back above the untrained level (the
    # mean of the first 50 steps): noisy small batches alone do not make it.
    start = statistics.fmean(finite[:window])
    spikes = sum(1 for k in range(window, len(finite))
                 if finite[k] > 3 * statistics.median(finite[k - window:k]) and finite[k] > start)
    if last > first:
        return "unstable: loss rising"
    if spikes > len(finite) // 1000:
        return f"unstable: {spikes} loss spikes (a step's loss over 3x the median of the 50 before, above the start)"
    return "loss falling"


def trajectory(diffs: list[float], reference: RunRecord, threshold: float) -> dict:
    beyond = [k for k, d in enumerate(diffs) if not d <= threshold]
    figures = dict(steps=len(diffs), threshold=threshold, identical_steps=beyond[0] if beyond else len(diffs),
                   separated_at=beyond[0] + 1 if beyond else None, steps_per_doubling=None,
                   max_step_loss_rel_diff=max(diffs) if diffs else 0.0,
                   training=training_behaviour(reference.step_losses))
    if beyond:
        first = beyond[0]
        end = next((k for k in range(first, len(diffs)) if not diffs[k] < SATURATED), len(diffs) - 1)
        start_value, end_value = max(diffs[first], 1e-300), diffs[end]
        if math.isfinite(end_value) and end_value > start_value and end > first:
            figures["steps_per_doubling"] = (end - first) / math.log2(end_value / start_value)
    return figures


def verdict(config: Config, records: dict[str, RunRecord], identical_start: bool, implementation: dict, *,
            fail_on_divergence: bool = False, accuracies: str | None = None) -> dict:
    """The figures judged and reported: `passed` rests on the start and the re-synchronized checks (and, with
    `fail_on_divergence`, on a run that did not diverge). `accuracies`: the run's accuracies in words, for the
    Training line (default: the test accuracies)."""
    s, t = records["scratch"], records["torch"]
    diffs = step_loss_differences(s, t)
    threshold = agreement.separation_threshold(config.torch_dtype)
    path = trajectory(diffs, t, threshold)
    acc_s, acc_t = s.history[-1].test_accuracy, t.history[-1].test_accuracy
    path.update(prediction_agreement=accuracy(s.predictions, t.predictions), test_accuracy_gap=abs(acc_s - acc_t),
                diverged_at={"scratch": s.diverged_at, "torch": t.diverged_at})
    same_divergence = s.diverged_at == t.diverged_at
    checks = {
        "bit-identical initial parameters": identical_start,
        f"{implementation['count']} re-synchronized one-step checks within {implementation['tolerance']}":
            implementation["passed"],
    }
    if not same_divergence:
        checks["both diverged at the same step, or neither"] = False
    if fail_on_divergence:
        checks["training did not diverge (--fail-on-divergence)"] = s.diverged_at is None and t.diverged_at is None
    result = dict(passed=all(checks.values()), checks=checks, identical_start=identical_start,
                  implementation=implementation, trajectory=path,
                  # the trajectory's figures at the top level too (reports and plots read them there)
                  steps=len(diffs), max_step_loss_rel_diff=path["max_step_loss_rel_diff"],
                  first_step_loss_rel_diff=diffs[0] if diffs else 0.0,
                  prediction_agreement=path["prediction_agreement"], test_accuracy_gap=path["test_accuracy_gap"])
    result["summary"] = summary(result, config, accuracies or f"test accuracy scratch {acc_s:.2%}, torch {acc_t:.2%}")
    return result


def implementations_agree(result: dict) -> bool:
    """The implementations' part of the verdict: the same start, every re-synchronized check, the same divergence."""
    path = result["trajectory"]
    return (result["identical_start"] and result["implementation"]["passed"]
            and path["diverged_at"]["scratch"] == path["diverged_at"]["torch"])


def diverged_at(result: dict) -> dict[str, int]:
    """The step at which each side's loss became inf or NaN, for the sides that diverged."""
    return {k: v for k, v in result["trajectory"]["diverged_at"].items() if v is not None}


def summary(result: dict, config: Config, accuracies: str) -> dict[str, str]:
    """The three closing lines of a lockstep run, without their labels: {"implementations", "training", "next"}."""
    impl, path = result["implementation"], result["trajectory"]
    failed = [c for c in impl["checks"] if not c["passed"]]
    diverged = diverged_at(result)
    agree = implementations_agree(result)
    if not result["identical_start"]:
        implementations = "disagree: the initial parameters differ (see \"Initial parameters\" above)"
    elif failed or not impl["passed"]:
        implementations = (f"disagree ({len(failed)} of {impl['count']} re-synchronized checks failed"
                           + (f", first at step {failed[0]['step']}" if failed else "")
                           + f"; tolerance {impl['tolerance']})")
    elif not agree:
        implementations = "disagree: " + one_side_diverged(diverged)
    else:
        implementations = (f"agree ({plural(impl['count'], 're-synchronized check')}, "
                           f"worst {impl['worst_rel_error']:.1e}; "
                           f"tolerance {impl['tolerance']})")

    unstable = path["training"].startswith("unstable")
    if diverged and agree:
        training = (f"diverged at step {diverged['scratch']} on both sides (the loss became inf or NaN); "
                    f"{accuracies}: the accuracy of a training that diverged, not a sign of wrong implementations")
    elif diverged:
        training = f"diverged: {one_side_diverged(diverged)} ({accuracies})"
    else:
        training = f"{path['training'] if unstable else 'converged'} ({accuracies})"
        if path["separated_at"] is None:
            training += f"; the runs stayed identical for all {plural(path['steps'], 'step')}"
        elif not agree:
            training += f"; the runs stayed identical for {plural(path['identical_steps'], 'step')}"
        else:
            training += ("; the runs drift apart as float32 rounding does, which is expected"
                         if config.dtype == "float32" else
                         f"; the runs stayed identical for {plural(path['identical_steps'], 'step')}, then drifted "
                         "apart as training amplifies rounding, which is expected")
            if path["test_accuracy_gap"] > 0:
                training += f", and so do their accuracies (a gap of {100 * path['test_accuracy_gap']:.2f} points)"

    if not result["identical_start"]:
        next_step = "build both models from the same seed: their parameters must be copies of each other at the start"
    elif failed:
        next_step = (f"read the first [FAIL] re-synchronized check above (step {failed[0]['step']}): it names the "
                     "tensor, the index and both values; a gradient (d...) points at a backward, \"... after the "
                     "update\" at an optimizer")
    elif not agree:
        next_step = ("rerun with --dtype float64: an inf or NaN on one side only, at the same batch, is a computation "
                     "the other side does not make")
    elif diverged or unstable:
        next_step = f"lower --lr (now {config.lr:g}): the training is at fault, not the implementations"
    elif path["separated_at"] is not None and config.dtype == "float32":
        next_step = "rerun with --dtype float64 to see the runs stay identical far longer"
    elif path["separated_at"] is not None:
        next_step = ("nothing to fix: the re-synchronized checks agree, and long runs amplify last-bit rounding "
                     "(README, \"Tolerances, and why float32 and float64 differ\")")
    else:
        next_step = "nothing to fix: the implementations agree and the runs stayed identical"
    return {"implementations": implementations, "training": training, "next": next_step}


def one_side_diverged(diverged: dict[str, int]) -> str:
    """'scratch diverged at step 12, torch did not' (or both, at different steps)."""
    said = [f"{side} diverged at step {diverged[side]}" if side in diverged else f"{side} did not"
            for side in ("scratch", "torch")]
    return ", ".join(said)


def expected_drift(result: dict, dtype: str) -> str | None:
    """Why a large difference between the runs' figures is expected, or None where it is not (the runs stayed
    identical, or the implementations disagree): printed beside the figure."""
    if not implementations_agree(result):
        return None
    if diverged_at(result):
        return "the runs diverged (the loss became inf or NaN); the re-synchronized checks judge the implementations"
    if result["trajectory"]["separated_at"] is None:
        return None
    runs = "float32 runs have drifted apart" if dtype == "float32" else "the runs have separated"
    return f"expected once {runs}; the re-synchronized checks judge the implementations"


def print_summary(lines: dict[str, str]) -> None:
    """The three closing lines of every comparison command."""
    print(f"\nImplementations: {lines['implementations']}")
    print(f"Training: {lines['training']}")
    print(f"What next: {lines['next']}")


def summary_line(result: dict) -> str:
    """'implementations agree (k re-synchronized checks, worst 3e-16); trajectories identical for 225 steps, ...'"""
    impl, path = result["implementation"], result["trajectory"]
    worst = impl["worst_rel_error"]
    first = (f"implementations agree ({impl['count']} re-synchronized checks, worst {worst:.1e})" if impl["passed"]
             else f"implementations DISAGREE ({sum(not c['passed'] for c in impl['checks'])} of {impl['count']} "
                  f"re-synchronized checks failed, first at step "
                  f"{next(c['step'] for c in impl['checks'] if not c['passed'])})")
    if path["separated_at"] is None:
        second = f"trajectories identical for all {path['steps']} steps (within {path['threshold']:g})"
    else:
        second = f"trajectories identical for {path['identical_steps']} steps, then separated"
        if path["steps_per_doubling"]:
            second += f" (difference doubling every {path['steps_per_doubling']:.0f} steps"
        else:
            second += " ("
        second += ("; " if path["steps_per_doubling"] else "") + path["training"] + ")"
    diverged = {k: v for k, v in path["diverged_at"].items() if v is not None}
    if diverged:
        second += "; diverged at step " + ", ".join(f"{k} {v}" for k, v in diverged.items())
    return f"{first}; {second}"


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


def print_checks(result: dict) -> None:
    """The re-synchronized checks, the "Agreement checks" list, the verdict line and the three closing lines."""
    impl = result["implementation"]
    print(f"\nRe-synchronized checks (both from the scratch state, one step on the same batch; {impl['tolerance']}):")
    for check in impl["checks"]:
        print(f"  [{'pass' if check['passed'] else 'FAIL'}] step {check['step']:>6} ({check['reason']}): worst "
              f"relative error {check['worst_rel_error']:.1e} in {check['worst_name']}")
        for failure in check["failures"][:3]:
            print(f"         {failure}")
    print("\nAgreement checks:")
    for name, ok in result["checks"].items():
        print(f"  [{'pass' if ok else 'FAIL'}] {name}")
    print(f"Verdict: {'PASSED' if result['passed'] else 'FAILED'}: {summary_line(result)}")
    print_summary(result["summary"])
