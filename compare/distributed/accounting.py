"""What a sharded run measured, gathered from every process: bytes held per kind, bytes sent per step.

    baseline = one_process_bytes(build_scratch(config), x, y)      # a replica's bytes after one step
    memory = memory_figures(learner, baseline)                     # every rank's peak and at-rest bytes
    sent = bytes_figures(learner)                                  # every rank's bytes per step, the formula

Both gather from all processes (all_gather_object): call them in every process. The expected figures
come from the layout, not from the measurement: F is the padded flat size, F/N a rank's shard, U what
is gathered at once (the largest unit, and the root's own unit around it when the root holds parameters),
k the optimizer's state tensors per parameter value (0 plain SGD, 1 momentum, 2 Adam):

    stage        parameters (peak / at rest)     gradients (peak / at rest)     optimizer state
    optimizer    F / F                           F / F                           k F/N
    gradients    F / F                           F/N + U / F/N                   k F/N
    parameters   F/N + U / F/N                   F/N + U / F/N                   k F/N

(one process: P, P and k P, P the unpadded parameter count; times the bytes of one value).
"""

from __future__ import annotations

from torch import Tensor

from compare.base.report import table
from compare.distributed.memory import KINDS, MemoryLedger
from compare.distributed.sharding import ShardedLearner, gather_to_all
from compare.training.learners import ScratchLearner

NAMES = {"parameters": "parameters", "gradients": "gradients", "optimizer_state": "optimizer state"}


def one_process_bytes(learner: ScratchLearner, x: Tensor, y: Tensor) -> dict[str, int]:
    """What one process's network holds after a training step on (x, y) (its optimizer state exists from then)."""
    learner.train_step(x, y)
    model, optimizer = learner.model, learner.optimizer
    return MemoryLedger(parameters=model.parameters, gradients=model.gradients,
                        optimizer_state=optimizer.state_tensors).now()


def expected_bytes(learner: ShardedLearner, baseline: dict[str, int]) -> dict[str, dict[str, int]]:
    """Each kind's peak and at-rest bytes as the layout predicts them (the module docstring's table)."""
    layout = learner.shard_bytes()
    e = layout["element_size"]
    full, shard = layout["flat_size"] * e, layout["shard_size"] * e
    # held at once: a unit below the root, inside the root's own forward and backward when it has parameters
    root = sum(u["size"] for u in layout["units"] if u["path"] == "(root)")
    unit = (root + max((u["size"] for u in layout["units"] if u["path"] != "(root)"), default=0)) * e
    k = baseline["optimizer_state"] / (layout["numel"] * e)  # state tensors per value
    sharded = {"parameters": learner.level >= 3, "gradients": learner.level >= 2, "optimizer_state": True}
    expected = {}
    for kind in KINDS:
        if kind == "optimizer_state":
            expected[kind] = dict(peak=round(k * shard), at_rest=round(k * shard))
        elif sharded[kind]:
            expected[kind] = dict(peak=shard + unit, at_rest=shard)
        else:
            expected[kind] = dict(peak=full, at_rest=full)
    return expected


def memory_figures(learner: ShardedLearner, torch_ledger: MemoryLedger, baseline: dict[str, int]) -> dict:
    """Every rank's measured bytes (this side's and torch's), the one-process baseline and the prediction."""
    mine = dict(learner.ledger.to_dict(), torch=torch_ledger.to_dict())
    ranks = gather_to_all(mine)
    return dict(one_process=baseline, expected=expected_bytes(learner, baseline), layout=learner.shard_bytes(),
                ranks=ranks)


def bytes_figures(learner: ShardedLearner) -> dict:
    """Every rank's bytes sent per training step (the hand ring; None with library collectives), the formula."""
    steps = learner.step_bytes
    mine = dict(min=min(steps), max=max(steps), steps=len(steps)) if steps else None
    return dict(collectives=learner.comm.how, formula_bytes=learner.expected_step_bytes(),
                phases=3 if learner.level >= 3 else 2, ranks=gather_to_all(mine))


def memory_checks(memory: dict) -> dict[str, bool]:
    """Every rank's measured peak and at-rest bytes equal the layout's prediction, kind by kind."""
    checks = {}
    for kind in KINDS:
        expected = memory["expected"][kind]
        checks[f"every rank's {NAMES[kind]}: {expected['peak']:,} bytes at the peak, {expected['at_rest']:,} between "
               "steps, as the layout predicts"] = all(
            r["peak"][kind] == expected["peak"] and r["at_rest"][kind] == expected["at_rest"] for r in memory["ranks"])
    return checks


def bytes_check(sent: dict) -> dict[str, bool]:
    """Every rank sent exactly the formula's bytes in every step (with the hand ring; nothing to check otherwise)."""
    if sent["collectives"] != "ring":
        return {}
    formula = sent["formula_bytes"]
    return {f"every rank sent {sent['phases']}(N-1)/N x the flat bytes = {formula:,.0f} bytes in every step (hand "
            "ring)": all(r is not None and r["min"] == r["max"] == formula for r in sent["ranks"])}


def ratio(x: int, one: int) -> str:
    return f"{x / one:.3f}" if one else "-"


def print_memory(memory: dict, world_size: int) -> None:
    one, ranks = memory["one_process"], memory["ranks"]
    print(f"\nBytes held per process (measured on the tensors; the largest of the {world_size} ranks), against one "
          f"process:")
    rows = []
    for kind in KINDS:
        peak = max(r["peak"][kind] for r in ranks)
        rest = max(r["at_rest"][kind] for r in ranks)
        torch_rest = [r["torch"]["at_rest"][kind] for r in ranks]
        rows.append([NAMES[kind], f"{one[kind]:,}", f"{peak:,}", ratio(peak, one[kind]), f"{rest:,}",
                     ratio(rest, one[kind]), " / ".join(f"{t:,}" for t in torch_rest)])
    print(table(["", "one process", "peak in a step", "x one", "between steps", "x one",
                 "torch's side, after a step (rank 0 / 1 / ...)"], rows))
    if not one["optimizer_state"]:
        print("(plain SGD keeps no optimizer state; --optimizer momentum or adam shows it sharded.)")


def print_bytes(sent: dict, flat_bytes: int, world_size: int) -> None:
    if sent["collectives"] != "ring":
        print(f"\nBytes sent per step: not counted (--collectives library: torch.distributed's own algorithms); "
              f"the formula says {sent['formula_bytes']:,.0f} for a ring")
        return
    measured = sorted({(r["min"], r["max"]) for r in sent["ranks"]})
    shown = ", ".join(f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,}" for lo, hi in measured)
    print(f"\nBytes sent per process per step (hand ring, every rank, every step): {shown}; formula "
          f"{sent['phases']} x (N-1)/N x {flat_bytes:,} = {sent['formula_bytes']:,.0f}")
