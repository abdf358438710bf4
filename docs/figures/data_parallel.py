"""docs/data-parallel.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

import figures
from figures import Fields, Run, count, load_all, pct, sci, seconds

RUNS: dict[str, Run] = {
    # "Measured": more processes (a global batch that 3 and 4 divide), float32
    "data-parallel-nproc3": Run("ddp --nproc 3 --dtype float64 --epochs 1 --batch-size 48"),
    "data-parallel-nproc4": Run("ddp --nproc 4 --dtype float64 --epochs 1 --batch-size 48"),
    "data-parallel-float32-3": Run("ddp --nproc 2 --epochs 3"),
    # the time spent in training steps, without the one-process reference
    "data-parallel-steps-1": Run("ddp --nproc 1 --no-reference --epochs 2", fast=True),
    "data-parallel-steps-2": Run("ddp --nproc 2 --no-reference --epochs 2"),
}
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


TABLES = {"data-parallel-measured": measured_table, "data-parallel-ring": ring_table,
          "data-parallel-steps": steps_table}
NAMES = {"ms_per_step": ms_per_step, "slower": slower, "loads": loads, "DP_RUNS": MEASURED + STEPS,
         "as_count": lambda text: count(int(text))}
