"""Run the mutant suite: every mutant must be caught, and no correct subject may fail over many seeds.

    >>> from compare.checking.suite import run_mutants, false_positive_sweep
    >>> all(m["caught"] for m in run_mutants())
    True
    >>> false_positive_sweep(seeds=200)["false_positives"]
    0
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from compare.checking.mutants import MUTANTS
from compare.checking.mutants.subjects import SUBJECTS, Mutant, Subject
from compare.checking.results import CheckResult

MUTANT_SEEDS = 3  # seeds per mutant: caught when the check fails on any of them
SWEEP_SEEDS = 200  # seeds per correct subject in the false-positive sweep


def caught_by(result: CheckResult) -> list[str]:
    """Which checks saw the bug: the backward's against the "reference" (torch.autograd / torch.optim), "finite
    differences" or a "directional derivative"; or the "forward mode", or the "second order" (either method)."""
    found = set()
    for c in result.failures():
        if c.against.startswith(("forward mode", "second order")):
            found.add(c.against.split(":")[0])
        elif c.against.startswith("finite"):
            found.add("finite differences")
        elif c.against.startswith("directional"):
            found.add("directional derivative")
        else:
            found.add("reference")
    return sorted(found)


def run_mutant(mutant: Mutant, seeds: Sequence[int]) -> dict:
    start = time.perf_counter()
    try:
        result = mutant.check(list(seeds))
    except Exception as error:  # a crash is reported as such: a mutant must be caught by the comparison
        return dict(name=mutant.name, subject=mutant.subject.name, bug=mutant.description, caught=False,
                    caught_by=[], failed_seeds=[], tensors=[], error=f"{type(error).__name__}: {error}",
                    seconds=time.perf_counter() - start)
    return dict(name=mutant.name, subject=mutant.subject.name, bug=mutant.description, caught=not result.passed,
                caught_by=caught_by(result), failed_seeds=result.failed_seeds(),
                tensors=sorted({c.tensor for c in result.failures()}), error=None,
                seconds=time.perf_counter() - start,
                first_failure=result.failures()[0].message if result.failures() else None)


def run_mutants(seed: int = 0, seeds: int = MUTANT_SEEDS, mutants: Sequence[Mutant] = MUTANTS) -> list[dict]:
    return [run_mutant(m, range(seed, seed + seeds)) for m in mutants]


def check_subject(subject: Subject, seeds: Sequence[int]) -> dict:
    start = time.perf_counter()
    result = subject.check(list(seeds))
    return dict(subject=subject.name, seeds=len(seeds), failed_seeds=result.failed_seeds(),
                non_differentiable=result.non_differentiable(),
                failures=[c.message for c in result.failures()[:3]], seconds=time.perf_counter() - start)


def false_positive_sweep(seed: int = 0, seeds: int = SWEEP_SEEDS, subjects: Sequence[Subject] = SUBJECTS) -> dict:
    """Every correct subject over `seeds` seeds; a false positive is one (subject, seed) that failed."""
    checked = [check_subject(s, range(seed, seed + seeds)) for s in subjects]
    return dict(false_positives=sum(len(c["failed_seeds"]) for c in checked), seeds=seeds,
                checks=seeds * len(subjects), subjects=checked)
