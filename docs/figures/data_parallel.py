"""docs/data-parallel.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

import figures
from figures import Fields, Run, count, load, load_all, pct, sci, seconds

RUNS: dict[str, Run] = {
    # "Measured": more processes (a global batch that 3 and 4 divide), float32
    "data-parallel-nproc3": Run("ddp --nproc 3 --dtype float64 --epochs 1 --batch-size 48"),
    "data-parallel-nproc4": Run("ddp --nproc 4 --dtype float64 --epochs 1 --batch-size 48"),
    "data-parallel-float32-3": Run("ddp --nproc 2 --epochs 3"),
    # the time spent in training steps, without the one-process reference
    "data-parallel-steps-1": Run("ddp --nproc 1 --no-reference --epochs 2", fast=True),
    "data-parallel-steps-2": Run("ddp --nproc 2 --no-reference --epochs 2"),
}
STAGES = {"optimizer": 1, "gradients": 2, "parameters": 3}  # --shard's stages and their ZeRO numbers
ZERO_GRID = tuple(f"zero-{stage}-{n}" for stage in STAGES for n in (2, 3, 4))
for _stage in STAGES:
    for _n in (2, 3, 4):
        RUNS[f"zero-{_stage}-{_n}"] = Run(f"ddp --nproc {_n} --shard {_stage} --dtype float64 --epochs 1 "
                                          "--batch-size 48 --optimizer adam")
RUNS.update({
    # the same training as ddp-float64, ZeRO-3, started by torchrun
    "zero-torchrun": Run("torchrun --nproc-per-node 2 -m compare ddp --shard parameters --dtype float64 --epochs 1",
                         excerpt=((0, 10), ("Bytes held", None))),
    # the whole model as one unit: gathered all at once
    "zero-whole-model": Run("ddp --nproc 2 --shard parameters --wrap model --dtype float64 --epochs 1 --batch-size 48 "
                            "--optimizer adam"),
    "tp-mlp": Run("tp --nproc 2 --dtype float64 --epochs 1", excerpt=((0, 8), ("Bytes held", 13), ("Verdict", None))),
    "tp-vit": Run("tp --nproc 2 --model vit --depth 1 --dim 32 --heads 2 --mlp-dim 64 --optimizer momentum "
                  "--dtype float64 --epochs 1"),
})
ZERO_RUNS = ("zero-torchrun", *ZERO_GRID, "zero-whole-model")
TP_RUNS = ("tp-mlp", "tp-vit")
MEASURED = ("ddp-float64", "data-parallel-nproc3", "data-parallel-nproc4", "data-parallel-float32-3")
RINGS = ("ddp-float64", "data-parallel-nproc3", "data-parallel-nproc4")  # 2, 3 and 4 processes, float64
STEPS = ("data-parallel-steps-1", "data-parallel-steps-2")  # 1 and 2 processes
PAIRS = {"scratch_vs_single": "scratch-DDP vs one process", "scratch_vs_torch": "scratch-DDP vs torch-DDP",
         "torch_vs_single": "torch-DDP vs one process"}


def relative(x: float) -> str:
    return f"{sci(x)} relative" if x else "equal"


def within(x: float) -> str:
    return f"within {sci(x)}" if x else "equal"


def accuracies(r: Fields) -> str:
    names = [n for n in ("scratch", "torch", "single") if n in r]
    values = {pct(r[n]["test_accuracy"]) for n in names}
    return f"all {len(names)} {values.pop()}" if len(values) == 1 else \
        ", ".join(f"{n} {pct(r[n]['test_accuracy'])}" for n in names)


def ddp_row(r: Fields, run: Fields) -> str:
    a = r.agreement
    pairs = [key for key in PAIRS if key in a]
    params = ", ".join(f"{PAIRS[k]} {sci(a[k]['max_param_rel_diff'])}" for k in pairs)
    steps = max(a[k]["max_step_loss_rel_diff"] for k in pairs)
    first = max(a[k]["first_step_loss_rel_diff"] for k in pairs)
    replicas = next(ok for check, ok in a.checks.items() if check.startswith("every process holds"))
    return (f"{'passed' if a.passed else 'FAILED'}; largest parameter difference relative to the tensor: {params}; "
            f"first step's losses {within(first)}, every step's {within(steps)}; {accuracies(r)}; "
            f"replicas {'bit-identical' if replicas else 'DIFFERENT'} across the {r.world_size} processes; "
            f"{seconds(run)} wall")


def measured_table(name: str) -> str:
    """"Measured": one row per ddp run."""
    records = load_all(MEASURED)
    rows = ["| command | result |", "|---|---|"]
    for run in MEASURED:
        record = records[run]
        rows.append(f"| `{figures.RUNS[run].command}` | {ddp_row(Fields(record['report']), Fields(record))} |")
    return "\n".join(rows)


def ring_table(name: str) -> str:
    """What the hand ring sent, each run's check of it against all_reduce at its start."""
    rows = ["| processes N | bytes sent per process (rank 0) | 2(N−1)/N × tensor bytes | hand ring vs `all_reduce` |",
            "|---|---|---|---|"]
    for record in load_all(RINGS).values():
        ring = Fields(record["report"]).ring
        rows.append(f"| {ring.world_size} | {count(ring.bytes_sent)} | {count(round(ring.formula_bytes))} | "
                    f"{relative(ring.max_rel_diff)} |")
    return "\n".join(rows)


def steps_table(name: str) -> str:
    """Seconds in training steps per epoch, the second epoch given, the first in brackets."""
    rows = ["| processes | scratch (hand all-reduce) | torch (DDP) |", "|---|---|---|"]
    for record in load_all(STEPS).values():
        r = Fields(record["report"])
        cells = [f"{s[-1]:.2f} s ({s[0]:.2f} s)" for s in (r.scratch.epoch_seconds, r.torch.epoch_seconds)]
        rows.append(f"| {r.world_size} | {' | '.join(cells)} |")
    return "\n".join(rows)


def ms_per_step(seconds_in_steps: float, steps: str) -> str:
    """Milliseconds per training step, from an epoch's seconds and its steps (as the output prints them)."""
    return f"{1e3 * seconds_in_steps / int(steps):.2g} ms"


def slower(seconds: float, alone: float) -> str:
    """'12 times *slower*' (the runs' times on this machine), or how much faster."""
    ratio = seconds / alone
    times = f"{ratio:.0f}" if ratio >= 2 else f"{ratio:.1f}"
    return f"{times} times *slower*" if ratio >= 1 else f"only {1 / ratio:.1f} times faster"


def loads(names: tuple[str, ...]) -> str:
    """The range of the load average (1 minute) before these runs."""
    values = [record["machine"]["load_average"][0] for record in load_all(names).values()]
    return f"{min(values):g} to {max(values):g}"


def pair_diffs(a: Fields) -> str:
    """'vs one process 3.0e-15, vs torch 8.0e-15, torch vs one process 5.2e-15' (largest parameter differences)."""
    names = {"scratch_vs_single": "vs one process", "scratch_vs_torch": "vs torch",
             "torch_vs_single": "torch vs one process"}
    return ", ".join(f"{names[k]} {sci(a[k]['max_param_rel_diff'])}" for k in names if k in a)


def stage_of(r: Fields) -> str:
    wrap = "" if r.sharding.wrap == "layer" else f", {r.sharding.wrap} as one unit"
    return f"ZeRO-{r.sharding.zero_stage} ({r.shard}{wrap})"


def zero_table(name: str) -> str:
    """One row per sharded run: its verdict and largest differences against one process and torch's own."""
    rows = ["| command | by hand | torch | result |", "|---|---|---|---|"]
    for run in ZERO_RUNS:
        record = load(run)
        r, a = Fields(record["report"]), Fields(record["report"]).agreement
        steps = max(a[k]["max_step_loss_rel_diff"] for k in ("scratch_vs_single", "scratch_vs_torch"))
        torch_side = r.torch.implementation.removeprefix("torch, ")
        rows.append(f"| `{figures.RUNS[run].command}` | {stage_of(r)} | {torch_side} | "
                    f"{'passed' if a.passed else 'FAILED'}; parameters {pair_diffs(a)}; every step's loss "
                    f"{within(steps)}; {accuracies(r)}; {seconds(record)} wall |")
    return "\n".join(rows)


def times(x: int, one: int) -> str:
    return f"{x / one:.2f}×" if one else "–"


def held(m: Fields, kind: str) -> str:
    """'152,488 / 52,008 (1.47× / 0.50×)': the largest rank's peak in a step and between steps, against one process."""
    peak = max(r["peak"][kind] for r in m.ranks)
    rest = max(r["at_rest"][kind] for r in m.ranks)
    one = m.one_process[kind]
    return f"{count(peak)} / {count(rest)} ({times(peak, one)} / {times(rest, one)})"


def memory_table(name: str) -> str:
    """Bytes held per rank, peak in a step / between steps, against one process (float64, Adam)."""
    rows = ["| stage | N | parameters | gradients | optimizer state | torch's optimizer state, rank 0, 1, ... |",
            "|---|---|---|---|---|---|"]
    first = Fields(load(ZERO_GRID[0])["report"]).sharding.memory.one_process
    rows.append(f"| one process | 1 | {count(first.parameters)} | {count(first.gradients)} | "
                f"{count(first.optimizer_state)} | |")
    for run in (*ZERO_GRID, "zero-whole-model"):
        r = Fields(load(run)["report"])
        m = r.sharding.memory
        torch_state = ", ".join(count(rank["torch"]["at_rest"]["optimizer_state"]) for rank in m.ranks)
        rows.append(f"| {stage_of(r)} | {r.world_size} | {held(m, 'parameters')} | {held(m, 'gradients')} | "
                    f"{held(m, 'optimizer_state')} | {torch_state} |")
    return "\n".join(rows)


def bytes_table(name: str) -> str:
    """Bytes each rank sent per training step (the hand ring), against (phases)(N-1)/N x F x 8."""
    rows = ["| stage | N | F (values) | sent per step, every rank, every step | formula |", "|---|---|---|---|---|"]
    for run in ZERO_GRID:
        r = Fields(load(run)["report"])
        sent, layout = r.sharding.bytes, r.sharding.memory.layout
        measured = sorted({(rank["min"], rank["max"]) for rank in sent.ranks})
        shown = ", ".join(count(lo) if lo == hi else f"{count(lo)} to {count(hi)}" for lo, hi in measured)
        n = r.world_size
        rows.append(f"| {stage_of(r)} | {n} | {count(layout.flat_size)} | {shown} | {sent.phases} × {n - 1}/{n} × "
                    f"{count(layout.flat_size)} × 8 = {count(round(sent.formula_bytes))} |")
    return "\n".join(rows)


def tp_table(name: str) -> str:
    """One row per tp run: verdict, differences, parameters held per rank, bytes."""
    rows = ["| command | result | parameters per rank (one process) | all-reduced per step; bytes sent, whole run |",
            "|---|---|---|---|"]
    for run in TP_RUNS:
        record = load(run)
        r = Fields(record["report"])
        a, t = r.agreement, r.tensor_parallel
        steps = max(a[k]["max_step_loss_rel_diff"] for k in ("scratch_vs_single", "scratch_vs_torch"))
        calls = ", ".join(f"{what} {count(n)} values" for what, n in t.calls)
        sent = " / ".join(f"{count(s['bytes'])}" for s in t.sent)
        formula = " / ".join(f"{count(s['formula'])}" for s in t.sent)
        rows.append(f"| `{figures.RUNS[run].command}` | {'passed' if a.passed else 'FAILED'}; parameters "
                    f"{pair_diffs(a)}; every step's loss {within(steps)}; {accuracies(r)}; {seconds(record)} wall | "
                    f"{' / '.join(count(h['parameters']) for h in t.held)} ({count(t.one_process.parameters)}) | "
                    f"{calls}; rank 0 / 1: {sent} (ring formula {formula}) |")
    return "\n".join(rows)


TABLES = {"data-parallel-measured": measured_table, "data-parallel-ring": ring_table,
          "data-parallel-steps": steps_table, "zero-measured": zero_table, "zero-memory": memory_table,
          "zero-bytes": bytes_table, "tp-measured": tp_table}
NAMES = {"ms_per_step": ms_per_step, "slower": slower, "loads": loads, "DP_RUNS": MEASURED + STEPS,
         "ZERO_RUNS": ZERO_RUNS + TP_RUNS, "times": times,
         "as_count": lambda text: count(int(text))}
