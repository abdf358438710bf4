"""docs/cnn.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

import math
import re

from figures import Fields, Run, count, load, load_all, pct, sci, seconds

RUNS: dict[str, Run] = {
    # "Speed": scripts/time_cnn.py's per-layer and per-step tables, and the loops of tests/conv_reference.py
    "cnn-time": Run("scripts/time_cnn.py"),
    "cnn-time-bn": Run("scripts/time_cnn.py --batch-norm"),
    "cnn-time-avg": Run("scripts/time_cnn.py --pool avg"),
    "cnn-loops": Run("tests/conv_reference.py", fast=True),
    # "Step times": bench's grid of the family's two bench models
    "cnn-bench": Run("bench --models cnn cnn:batch-norm=true --no-compile --no-typical"),
}

NUMBER = r"([\d.]+)"
LAYER = re.compile(rf"^\| (conv [^|]+?) \| 32 \| {NUMBER} \| {NUMBER} \| {NUMBER} \|$", re.M)  # time_cnn.py
STEP = re.compile(rf"^\| \| (\d+) \| {NUMBER} \| {NUMBER} \| {NUMBER} \|$", re.M)  # time_cnn.py
LOOPS = re.compile(r"^conv [^:]+: loops ([\d.]+) s, im2col ([\d.]+) ms, speed-up ([\d,]+)x$", re.M)  # conv_reference
STEP_RUNS = {"LeNet-5": "cnn-time", "with batch norm": "cnn-time-bn", "with average pooling": "cnn-time-avg"}


def loops(name: str = "cnn-loops") -> list[tuple[str, str, str]]:
    """tests/conv_reference.py's rows: seconds of the loops, milliseconds of im2col, the speed-up."""
    return LOOPS.findall(load(name)["output"])


def layers_table(name: str) -> str:
    """LeNet's two convolutions at batch 32: nn.Conv2d vs scratch.Conv2d, and the loops."""
    rows = ["| layer | `nn.Conv2d` | scratch `Conv2d` (im2col) | ratio | loop reference (with dx) |",
            "|---|---|---|---|---|"]
    for (label, theirs, ours, ratio), (seconds_of_loops, _, _) in zip(LAYER.findall(load("cnn-time")["output"]),
                                                                     loops(), strict=True):
        rows.append(f"| {label} | {float(theirs):.2f} ms | {float(ours):.2f} ms | {ratio} | {seconds_of_loops} s |")
    return "\n".join(rows)


def steps_table(name: str) -> str:
    """One training step of the CNN, scratch over torch, three variants by batch size."""
    steps = {label: STEP.findall(record["output"])
             for label, record in zip(STEP_RUNS, load_all(STEP_RUNS.values()).values(), strict=True)}
    rows = [f"| batch | {' | '.join(STEP_RUNS)} |", "|---|" + "---|" * len(STEP_RUNS)]
    for k, (batch, theirs, ours, ratio) in enumerate(steps["LeNet-5"]):
        others = " | ".join(steps[label][k][3] for label in list(STEP_RUNS)[1:])
        rows.append(f"| {batch} | {ratio} ({float(ours):.1f} vs {float(theirs):.1f} ms) | {others} |")
    return "\n".join(rows)


def speedups(name: str = "cnn-loops") -> str:
    """'1,331x to 3,141x': how much faster im2col is than the loops, over the two layers."""
    values = sorted(int(s.replace(",", "")) for _, _, s in loops(name))
    return f"{count(values[0])}x to {count(values[-1])}x"


def verdict(r: Fields) -> str:
    return "passed" if r.agreement.passed else "FAILED"


def grads_row(r: Fields, run: Fields) -> str:
    a = r.agreement
    coords = sum(p["finite_diff_coordinates"] for p in r.parameters)
    total = sum(math.prod(p["shape"]) for p in r.parameters)
    kinks = sum(p["finite_diff_kinks"] for p in r.parameters)
    each = ", ".join(f"{p['finite_diff_coordinates']}/{math.prod(p['shape'])}" for p in r.parameters)
    sample = f"all {count(total)} coordinates" if coords == total else \
        f"a seeded sample of {count(coords)} of the {count(total)} coordinates ({each})"
    return (f"{verdict(r)}; scratch vs autograd ≤ {sci(a.max_rel_error)} relative (tolerance "
            f"{a.autograd_tolerance:g}) in all {len(r.parameters)} tensors; finite differences ≤ "
            f"{sci(a.max_finite_diff_rel_error)} (tolerance {a.finite_diff_tolerance:g}) on {sample}, "
            f"{f'{count(kinks)} more left out at kinks' if kinks else 'no coordinate at a kink'}; {seconds(run)}")


def worst_check(r: Fields) -> str:
    """The worst re-synchronized check: its error, the tensor and the step."""
    impl = r.agreement.implementation
    worst = max(impl.checks, key=lambda c: c["worst_rel_error"])
    return (f"worst {sci(impl.worst_rel_error)} (`{worst['worst_name']}`, step {count(worst['step'])} of "
            f"{count(r.agreement.trajectory.steps)})")


def train_row(r: Fields, run: Fields) -> str:
    a, t = r.agreement, r.agreement.trajectory
    path = (f"per-step losses within {sci(t.max_step_loss_rel_diff)} relative over {count(t.steps)} steps, final "
            f"parameters within {sci(a.final_max_parameter_diff)}" if t.separated_at is None else
            f"trajectories identical for {count(t.identical_steps)} steps, then apart ({t.training})")
    scratch, torch = r.scratch.test_accuracy, r.torch.test_accuracy
    accuracies = f"both {pct(scratch)}" if pct(scratch) == pct(torch) else f"scratch {pct(scratch)}, torch {pct(torch)}"
    return (f"{verdict(r)}; {accuracies}; {path}; {pct(t.prediction_agreement)} identical predictions; "
            f"{count(a.implementation.count)} re-synchronized checks, {worst_check(r)}; {seconds(run)}")


def autograd_row(r: Fields, run: Fields) -> str:
    pairs = ", ".join(f"{k.replace('_', ' ')} {sci(v)}" for k, v in r.agreement.max_rel_error.items())
    return f"{verdict(r)}; {pairs}; the engine's graph of the loss has {r.graph.nodes} nodes; {seconds(run)}"


MEASURED = {"grads-cnn-float64": grads_row, "train-cnn-float64-1": train_row, "train-cnn-10": train_row,
            "train-cnn-bn-fashion-10": train_row, "autograd-cnn-float64": autograd_row}


def measured_table(name: str) -> str:
    """"Measured: --model cnn on the real datasets": one row per run (README.md's runs)."""
    records = load_all(MEASURED)
    rows = ["| command | result |", "|---|---|"]
    for run, row in MEASURED.items():
        record = records[run]
        rows.append(f"| `{record['command'].removeprefix('python -m compare ')}` | "
                    f"{row(Fields(record['report']), Fields(record))} |")
    return "\n".join(rows)


def step_ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def bench_table(name: str) -> str:
    """bench's grid: one row per model and batch size."""
    rows = ["| model | batch | scratch | torch | ratio | scratch % peak | torch % peak |", "|---" * 7 + "|"]
    for p in Fields(load("cnn-bench")["report"]).results:
        rows.append(f"| {p['model']} | {p['batch_size']} | {step_ms(p['scratch_step_s'])} | "
                    f"{step_ms(p['torch_step_s'])} | {p['ratio']:.2f} | {pct(p['scratch_peak_fraction'], 0)} | "
                    f"{pct(p['torch_peak_fraction'], 0)} |")
    return "\n".join(rows)


def worst_ratio(r: Fields, goal: float = 1.5) -> str:
    """Whether scratch stayed within the goal at every grid point, and the worst point."""
    worst = max(r.results, key=lambda p: p["ratio"])
    where = f"worst {worst['ratio']:.2f}, {worst['model']} at batch {worst['batch_size']}"
    return (f"stays within the goal of {goal:g}x torch at every point of this run ({where})" if worst["ratio"] <= goal
            else f"goes beyond the goal of {goal:g}x torch in this run ({where})")


def loads(names) -> str:
    """The range of the load average (1 minute) before these runs."""
    values = [record["machine"]["load_average"][0] for record in load_all(names).values()]
    return f"{min(values):g} to {max(values):g}"


TABLES = {"cnn-layers": layers_table, "cnn-steps": steps_table, "cnn-measured": measured_table,
          "cnn-bench": bench_table}
NAMES = {"worst_ratio": worst_ratio, "loops": loops, "speedups": speedups,
         "worst_check": worst_check, "cnn_loads": loads, "CNN_MEASURED": tuple(MEASURED),
         "CNN_TIMES": ("cnn-time", "cnn-time-bn", "cnn-time-avg", "cnn-loops")}
