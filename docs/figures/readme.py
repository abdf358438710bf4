"""README.md's runs: what it shows, the measured table, the pictures, the examples, the test suite's times."""

from __future__ import annotations

import math
from collections.abc import Callable

from figures import Fields, Run, count, load_all, pct, sci, seconds

RUNS: dict[str, Run] = {
    # README: what it shows, and "Measured on this machine"
    "grads-float64": Run("grads --dtype float64", fast=True, excerpt=((0, 11), (-1, None))),
    "train-float64-3": Run("train --dtype float64 --epochs 3", fast=True, excerpt=(("Epoch 3", 8), ("Largest", None))),
    "train-10": Run("train --epochs 10"),
    "train-10-seed1": Run("train --epochs 10 --seed 1"),
    "train-10-seed2": Run("train --epochs 10 --seed 2"),
    "train-10-seed3": Run("train --epochs 10 --seed 3"),
    "autograd-float64": Run("autograd --dtype float64", fast=True),
    "engine-float64-3": Run("train --engine autograd --epochs 3 --dtype float64", fast=True),
    "bn-adam-10": Run("train --hidden 256,128 --batch-norm --dropout 0.2 --optimizer adam --lr 1e-3 --epochs 10"),
    "bn-adam-float64-1": Run("train --hidden 256,128 --batch-norm --dropout 0.2 --optimizer adam --lr 1e-3 "
                             "--dtype float64 --epochs 1"),
    "grads-bn-dropout": Run("grads --dtype float64 --hidden 64,32 --batch-norm --dropout 0.5", fast=True),
    "unstable-momentum": Run("train --optimizer momentum --lr 0.1 --lr-schedule none --dtype float64 --epochs 1",
                             fast=True, excerpt=(("Verdict:", None),)),
    "nesterov": Run("train --optimizer nesterov --momentum 0.9 --weight-decay 5e-4 --lr-schedule cosine"),
    "batch-1": Run("train --batch-size 1 --epochs 1"),
    "bn-save": Run("train --batch-norm --epochs 1 --save runs/docs-bn"),
    "bn-evaluate": Run("evaluate --checkpoint runs/docs-bn", after="bn-save"),
    "ddp-float64": Run("ddp --nproc 2 --dtype float64 --epochs 1"),
    "grads-cnn-float64": Run("grads --model cnn --dtype float64"),
    "train-cnn-float64-1": Run("train --model cnn --dtype float64 --epochs 1"),
    "train-cnn-10": Run("train --model cnn --epochs 10"),
    "train-vit-10": Run("train --model vit --epochs 10"),
    "train-lstm-10": Run("train --model lstm --epochs 10"),
    "train-cnn-bn-fashion-10": Run("train --model cnn --batch-norm --dataset fashion-mnist --epochs 10"),
    "autograd-cnn-float64": Run("autograd --model cnn --dtype float64", fast=True),
    # README: pictures
    "pictures-train": Run("train --epochs 2 --plots docs/pictures/train", fast=True),
    "pictures-train-float64": Run("train --epochs 1 --dtype float64 --plots docs/pictures/train-float64", fast=True),
    "pictures-grads": Run("grads --dtype float64 --plots docs/pictures/grads", fast=True),
    "playground": Run("playground --dataset spiral --hidden 16,16 --activation tanh --plots docs/pictures/playground",
                      fast=True),
    "playground-sgd": Run("playground --optimizer sgd --lr 0.2 --lr-schedule none --batch-size 16 --epochs 200 "
                          "--plots docs/pictures/playground-sgd"),
    "page-screenshot": Run("make screenshot", draws=("docs/pictures/serve",)),
    "playground-rate": Run("scripts/playground_rate.py"),
    "playground-checks": Run("make playground-checks"),
    # the test suite's times (run by hand: they take the whole machine for minutes)
    "make-test": Run("make test"),
    "make-test-fast": Run("make test-fast"),
    "make-test-slow": Run("make test-slow"),
    # README: the examples
    "side-by-side-float64": Run("examples/side_by_side.py --dtype float64", fast=False),
}


def measured(run: str, result: Callable[[Fields, Fields], str]) -> tuple[str, Callable[[Fields, Fields], str]]:
    return run, result


def checks(r: Fields) -> str:
    impl = r.agreement.implementation
    checks = "re-synchronized check" + ("" if impl.count == 1 else "s")
    return f"{count(impl.count)} {checks}, worst {sci(impl.worst_rel_error)}"


def accuracies(r: Fields) -> str:
    a, b = r.scratch.test_accuracy, r.torch.test_accuracy
    return f"both {pct(a)}" if a == b else f"scratch {pct(a)}, torch {pct(b)}"


def verdict_word(r: Fields) -> str:
    return "passed" if r.agreement.passed else "FAILED"


def trained(r: Fields, run: Fields) -> str:
    t = r.agreement.trajectory
    path = (f"per-step losses within {sci(t.max_step_loss_rel_diff)} relative over {count(t.steps)} steps"
            if t.separated_at is None else
            f"trajectories identical for {count(t.identical_steps)} steps, then separated ({t.training})")
    return (f"{verdict_word(r)}; {accuracies(r)}; {path}; {pct(t.prediction_agreement)} identical predictions; "
            f"{checks(r)}; {seconds(run)}")


def grads_result(r: Fields, run: Fields) -> str:
    a = r.agreement
    coords = sum(p["finite_diff_coordinates"] for p in r.parameters)
    total = sum(math.prod(p["shape"]) for p in r.parameters)
    where = f" on all {count(coords)} coordinates" if coords == total else \
        f" on a sample of {count(coords)} of {count(total)} coordinates"
    return (f"{verdict_word(r)}; scratch vs autograd <= {sci(a.max_rel_error)} relative (tolerance "
            f"{a.autograd_tolerance:g}), finite differences <= {sci(a.max_finite_diff_rel_error)}{where} "
            f"(tolerance {a.finite_diff_tolerance:g}); {seconds(run)}")


def autograd_result(r: Fields, run: Fields) -> str:
    e = r.agreement.max_rel_error
    return (f"{verdict_word(r)}; largest relative error hand vs engine {sci(e['hand_vs_engine'])}, hand vs torch "
            f"{sci(e['hand_vs_torch'])}, engine vs torch {sci(e['engine_vs_torch'])}; {seconds(run)}")


def evaluate_result(r: Fields, run: Fields) -> str:
    same = ", ".join(f"{name} {pct(v)}" for name, v in r.agreement.same_weights.items())
    return (f"{verdict_word(r)}; {accuracies(r)}, each as at the end of training "
            f"({pct(r.trained_test_accuracy.scratch)}, {pct(r.trained_test_accuracy.torch)}); each file's weights give "
            f"the same predictions in both implementations ({same}); the two float32 runs agree on "
            f"{pct(r.agreement.trained_models_prediction_agreement)}; {seconds(run)}")


def ddp_result(r: Fields, run: Fields) -> str:
    a = r.agreement
    return (f"{verdict_word(r)}; scratch by hand vs one process {sci(a.scratch_vs_single.max_param_rel_diff)}, vs "
            f"torch DDP {sci(a.scratch_vs_torch.max_param_rel_diff)} relative (tolerance 1e-12); test accuracy "
            f"{pct(r.scratch.test_accuracy)} (torch DDP {pct(r.torch.test_accuracy)}, one process "
            f"{pct(r.single.test_accuracy)}); {seconds(run)}")


MEASURED = [
    measured("grads-float64", grads_result),
    measured("train-float64-3", trained),
    measured("train-10", trained),
    measured("train-10-seed1", trained),
    measured("train-10-seed2", trained),
    measured("train-10-seed3", trained),
    measured("autograd-float64", autograd_result),
    measured("engine-float64-3", trained),
    measured("bn-adam-10", trained),
    measured("bn-adam-float64-1", trained),
    measured("grads-bn-dropout", grads_result),
    measured("unstable-momentum", trained),
    measured("nesterov", trained),
    measured("batch-1", trained),
    measured("bn-save", trained),
    measured("bn-evaluate", evaluate_result),
    measured("ddp-float64", ddp_result),
    measured("grads-cnn-float64", grads_result),
    measured("train-cnn-float64-1", trained),
    measured("train-cnn-10", trained),
    measured("train-vit-10", trained),
    measured("train-lstm-10", trained),
    measured("train-cnn-bn-fashion-10", trained),
    measured("autograd-cnn-float64", autograd_result),
]



def measured_table(name: str) -> str:
    """README's "Measured on this machine": one row per run, its command and what it gave."""
    rows = ["| command | result |", "|---|---|"]
    records = load_all(run for run, _ in MEASURED)
    for run, result in MEASURED:
        record = records[run]
        rows.append(f"| `{RUNS[run].command}` | {result(Fields(record['report']), Fields(record))} |")
    return "\n".join(rows)


SEEDS = ("train-10", "train-10-seed1", "train-10-seed2", "train-10-seed3")  # one run, four seeds
TABLES = {"measured": measured_table}
NAMES = {"SEEDS": SEEDS, "checks": checks}  # for the inline figures
