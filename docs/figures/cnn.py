"""docs/cnn.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

import math
import re

from figures import Fields, Run, count, load, load_all, pct, ratio_history, sci, seconds

BEFORE = "348831d1a2cb78c2bc21dc8bd72468d0c85857cc"  # the code before the work on speed (docs/benchmarks.md)
PROFILE = "scripts/profile_step.py --models cnn cnn:batch_norm=true --batch-sizes 128 512 --top 6"
CNN_BENCH = "bench --models cnn cnn:batch_norm=true --no-compile --no-typical --epoch-images 6000"
# Each change of docs/cnn.md's "Speed", the commit that made it (its bench pinned there: Run.commit)
STEPS = {"cnn-bench-conv": ("45132ef364dfe5ac63b5fc29a4c516b49481dbb6",
                            "the batch innermost, chunks of rows, strips from 16 terms, max pooling on views"),
         "cnn-bench-norms": ("079ef6fb40bf021c4d6b843cba49692a94e618ef", "batch norm in fewer passes"),
         "cnn-bench-strips": ("e4faf8e8fce512128b3bf41c036b9268a6ac731c",
                              "strips for every convolution of stride 1, chunks of 1 MB of columns and output"),
         "cnn-bench-workspaces": ("157d811c03743b45a44ec16d6923e149f4bfebe7",
                                  "workspaces for pooling's and batch norm's own tensors, ReLU's backward"),
         "cnn-bench-pool-first": ("c116886ca388dbd0bba2b08806ac79110c0774a5", "ReLU and max pooling, pooling first")}
RUNS: dict[str, Run] = {
    **{name: Run(CNN_BENCH, commit=commit) for name, (commit, _) in STEPS.items()},
    # "Speed": scripts/time_cnn.py's tables (the layers, each choice of scratch/conv.py against its alternative,
    # the whole step), the loops of tests/conv_reference.py, and torch.profiler on today's code and before
    "cnn-time": Run("scripts/time_cnn.py"),
    "cnn-loops": Run("tests/conv_reference.py", fast=True),
    "cnn-profile": Run(PROFILE, excerpt=((0, 1), ("cnn batch 512", 15))),
    "cnn-profile-before": Run(PROFILE, commit=BEFORE, excerpt=((0, 1), ("cnn batch 512", 15))),
}

NUMBER = r"([\d.]+)"
LAYER = re.compile(rf"^\| (conv [^|]+?) \| (\d+) \| {NUMBER} \| {NUMBER} \| {NUMBER} \|$", re.M)  # time_cnn.py
CHOICE = re.compile(rf"^\| (conv [^|]+?) \| (\d+) \| ([^|]+?) \| {NUMBER} \| {NUMBER} \| {NUMBER} \|$", re.M)
STEP = re.compile(rf"^\| \| (\d+) \| {NUMBER} \| {NUMBER} \| {NUMBER} \|$", re.M)  # time_cnn.py
LOOPS = re.compile(r"^conv [^:]+: loops ([\d.]+) s, Conv2d ([\d.]+) ms, speed-up ([\d,]+)x$", re.M)  # conv_reference


def loops(name: str = "cnn-loops") -> list[tuple[str, str, str]]:
    """tests/conv_reference.py's rows: seconds of the loops, milliseconds of scratch.Conv2d, the speed-up."""
    return LOOPS.findall(load(name)["output"])


def layers_table(name: str) -> str:
    """LeNet's two convolutions at each batch size: nn.Conv2d vs scratch.Conv2d; the loops at batch 32."""
    rows = ["| layer | batch | `nn.Conv2d` | scratch `Conv2d` | scratch / torch |", "|---|---|---|---|---|"]
    for label, batch, theirs, ours, ratio in LAYER.findall(load("cnn-time")["output"]):
        rows.append(f"| {label} | {batch} | {float(theirs):.2f} ms | {float(ours):.2f} ms | {ratio} |")
    return "\n".join(rows)


def choices_table(name: str) -> str:
    """Each choice of scratch/conv.py against its alternative: the alternative's time over the choice's."""
    rows = ["| layer | batch | the alternative | chosen | alternative | alternative / chosen |", "|---" * 6 + "|"]
    for label, batch, other, chosen, theirs, ratio in CHOICE.findall(load("cnn-time")["output"]):
        rows.append(f"| {label} | {batch} | {other} | {float(chosen):.2f} ms | {float(theirs):.2f} ms | {ratio} |")
    return "\n".join(rows)


def steps_table(name: str) -> str:
    """One training step of LeNet-5, scratch over torch, by batch size (scripts/time_cnn.py's last table)."""
    rows = ["| batch | torch_impl | scratch | scratch / torch |", "|---|---|---|---|"]
    for batch, theirs, ours, ratio in STEP.findall(load("cnn-time")["output"]):
        rows.append(f"| {batch} | {float(theirs):.1f} ms | {float(ours):.1f} ms | {ratio} |")
    return "\n".join(rows)


PROFILED = re.compile(r"^(\S+) batch (\d+), (scratch|torch): ([\d.]+) ms of operators per step, (\d+) calls per step$",
                      re.M)


def calls(run: str, model: str, batch: int, side: str) -> int:
    """Operator calls per step in a run of scripts/profile_step.py."""
    for m, b, s, _, n in PROFILED.findall(load(run)["output"]):
        if (m, int(b), s) == (model, batch, side):
            return int(n)
    raise ValueError(f"{run} profiled no {side} step of {model} at batch {batch}")


def history(name: str) -> str:
    """scratch/torch of each CNN at each batch size, before the changes, after each one (its commit's bench), now."""
    runs = {"before": "families-bench-before", **{text: run for run, (_, text) in STEPS.items()},
            "now (the whole table above)": "families-bench"}
    return ratio_history(runs, ("LeNet-5", "cnn 6,16 bn"))


def choice(layer: str, batch: int, alternative: str) -> str:
    """One ratio of the choices' table: '1.75'."""
    for label, b, other, _, _, ratio in CHOICE.findall(load("cnn-time")["output"]):
        if label.startswith(layer) and int(b) == batch and other.startswith(alternative):
            return ratio
    raise ValueError(f"scripts/time_cnn.py printed no choice {alternative!r} for {layer} at batch {batch}")


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


def loads(names) -> str:
    """The range of the load average (1 minute) before these runs."""
    values = [record["machine"]["load_average"][0] for record in load_all(names).values()]
    return f"{min(values):g} to {max(values):g}"


TABLES = {"cnn-layers": layers_table, "cnn-choices": choices_table, "cnn-steps": steps_table,
          "cnn-history": history, "cnn-measured": measured_table}
NAMES = {"loops": loops, "speedups": speedups, "choice": choice, "calls": calls, "worst_check": worst_check,
         "cnn_loads": loads, "CNN_MEASURED": tuple(MEASURED), "CNN_TIMES": ("cnn-time", "cnn-loops")}
