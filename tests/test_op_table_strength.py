"""The op table's tests are measured, not assumed: each bug of the checker's mutants (compare/checking/mutants/,
realistic mistakes in a backward pass) fails the tests generated from tests/ops.py.

For a mutant of a layer or loss, every entry that builds that class is run with the mutant in its place; for a
mutant of the engine (a replaced method), the engine entries that use the method run with it patched in. At least
one of them must fail the comparison with the torch twin or with finite differences, and the correct entries pass
(tests/test_ops.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import pytest
import test_ops
import torch
from op_kinds import Case, OpInfo, assert_finite_differences, assert_matches_twin, qualified_name
from ops import OPS

from compare.checking.mutants import MUTANTS
from compare.checking.mutants.subjects import Patch
from scratch import engine


def built_class(op: OpInfo) -> type:
    return next(c for c in type(op.ours()).__mro__ if c.__module__.startswith("scratch."))


def with_bug(op: OpInfo, bug: type) -> OpInfo:
    """The entry building the mutant instead: the table's own subclass (dropout with a fixed mask) stays in front."""
    def build():
        thing = op.ours()
        cls = type(thing)
        thing.__class__ = bug if cls is bug.__mro__[1] else type(f"{cls.__name__}With{bug.__name__}", (cls, bug), {})
        return thing
    return dataclasses.replace(op, ours=build)


def entries_for(bug: type | Patch) -> list[OpInfo]:
    if isinstance(bug, Patch):
        patched = getattr(bug.owner, bug.attr)
        named = [op for op in OPS if op.is_engine and qualified_name(patched) in map(qualified_name, op.covers)]
        return named or [op for op in OPS if op.is_engine]  # backward and broadcasting: every engine entry
    base = bug.__mro__[1]  # the correct scratch class the mutant overrides
    return [with_bug(op, bug) for op in OPS if op.kind in ("layer", "loss") and built_class(op) is base]


def generated_checks(op: OpInfo) -> list[Callable[[], object]]:
    """Every float64 test tests/test_ops.py generates for this entry: the backward against the twin and finite
    differences, then the forward mode and the double backward where the entry claims them."""
    checks = []
    for sample in op.samples:
        checks.append(lambda sample=sample: assert_matches_twin(Case(op, sample, torch.float64)))
        if sample.checks_finite_differences:
            checks.append(lambda sample=sample: assert_finite_differences(Case(op, sample, torch.float64)))
            if op.forward_ad:
                checks.append(lambda sample=sample: test_ops.test_forward_mode_matches_finite_differences(op, sample))
            if op.double_backward:
                checks.append(lambda sample=sample:
                              test_ops.test_double_backward_matches_finite_differences_of_the_gradient(op, sample))
    if op.forward_ad:
        checks.append(lambda: test_ops.test_forward_mode_matches_torch_func_jvp(op, torch.float64))
    if op.double_backward:
        checks.append(lambda: test_ops.test_double_backward_matches_torch(op, torch.float64))
    return checks


def fails(op: OpInfo) -> bool:
    for check in generated_checks(op):
        try:
            check()
        except Exception:  # a mismatch, or a wrong gradient that breaks the run itself (a wrong shape)
            return True
    return False


OP_MUTANTS = [m for m in MUTANTS if isinstance(m.bug, Patch) or entries_for(m.bug)]


def test_every_mutant_of_a_layer_loss_or_engine_op_has_entries() -> None:
    """Only the optimizer mutants (optimizers are not ops: tests/test_optim.py) are left out."""
    left_out = [m.name for m in MUTANTS if m not in OP_MUTANTS]
    assert left_out and all(m.split("-")[0] in ("adam", "adamw", "sgd") for m in left_out), left_out


@pytest.mark.parametrize("mutant", OP_MUTANTS, ids=lambda m: m.name)
def test_the_generated_tests_catch_the_mutant(mutant) -> None:
    entries = entries_for(mutant.bug)
    patch = mutant.bug.applied() if isinstance(mutant.bug, Patch) else contextlib.nullcontext()
    with patch:
        caught = [op.name for op in entries if fails(op)]
    assert caught, f"{mutant.name} ({mutant.description}) passes every entry it touches: {[op.name for op in entries]}"


def test_the_patches_reach_the_engine() -> None:
    """Guard for the test above: a patch replaces the engine's own method while it runs, and restores it."""
    original = engine.Value.__sub__
    patch = next(m.bug for m in MUTANTS if isinstance(m.bug, Patch) and m.bug.attr == "__sub__")
    with patch.applied():
        assert engine.Value.__sub__ is patch.replacement
    assert engine.Value.__sub__ is original
