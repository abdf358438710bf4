"""`python -m compare train`: both implementations learn side by side, in lockstep.

Same initial parameters (checked bit for bit), same batches in the same order, one
training loop. After each epoch a side-by-side table; at the end per-class metrics,
confusion matrices, and a verdict on whether the two runs agree.
"""

from __future__ import annotations

import math

import argparse

from compare import agreement, plots
from compare.config import Config
from compare.learners import Learner, build_pair, max_parameter_difference, parameter_mismatches
from compare.loop import EpochStats, RunRecord, train_lockstep
from compare.metrics import confusion_matrix, per_class_scores
from compare.options import add_training_arguments
from compare.report import table


CONFIG_KEYS = ("engine", "plots")
ENGINE_CHOICES = ["hand", "autograd"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p)
    p.add_argument("--engine", choices=ENGINE_CHOICES, default="hand",
                   help="how the scratch network gets its gradients: hand (the backward formulas of scratch/mlp.py) "
                        "or autograd (scratch/engine.py derives them from the forward pass) (default: hand)")
    plots.add_plot_arguments(p)


def print_epoch(epoch: int, stats: dict[str, EpochStats]) -> None:
    s, t = stats["scratch"], stats["torch"]
    rows = [[name, getattr(s, key), getattr(t, key), getattr(s, key) - getattr(t, key)]
            for name, key in [("train loss", "train_loss"), ("test loss", "test_loss"),
                              ("test accuracy", "test_accuracy")]]
    if s.learning_rate is not None and t.learning_rate is not None:
        rows.append(["learning rate", s.learning_rate, t.learning_rate, s.learning_rate - t.learning_rate])
    print(f"\nEpoch {epoch}")
    print(table(["", "scratch", "torch", "difference"], rows))


def print_class_report(name: str, scores: dict, confusion, classes) -> None:
    print(f"\n{name}: per-class precision, recall (sensitivity), F1")
    print(table(["class", "precision", "recall", "F1", "images"],
                [[c, p, r, f, int(n)] for c, p, r, f, n in
                 zip(classes, scores["precision"], scores["recall"], scores["f1"], confusion.sum(dim=1))]))
    print(f"{name}: confusion matrix (rows: true class, columns: predicted)")
    print(table(["true\\pred", *[str(i) for i in range(len(classes))]],
                [[str(i), *[int(v) for v in row]] for i, row in enumerate(confusion)]))


def step_loss_differences(a: RunRecord, b: RunRecord) -> list[float]:
    return [abs(x - y) / max(abs(y), 1e-300) for x, y in zip(a.step_losses, b.step_losses)]


def verdict(config: Config, records: dict[str, RunRecord], y_test, identical_start: bool) -> dict:
    s, t = records["scratch"], records["torch"]
    diffs = step_loss_differences(s, t)
    acc_s, acc_t = s.history[-1].test_accuracy, t.history[-1].test_accuracy
    same_predictions = (s.predictions == t.predictions).double().mean().item()
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


def max_buffer_difference(a: Learner, b: Learner) -> tuple[str | None, float]:
    """The largest difference between the two models' buffers (batch norm's running statistics)."""
    ba, bb = a.named_buffers(), b.named_buffers()
    diffs = {n: (v.double() - bb[n].double()).abs().max().item() for n, v in ba.items() if n in bb}
    if not diffs:
        return None, 0.0
    worst = max(diffs, key=diffs.get)
    return worst, diffs[worst]


def describe(config: Config) -> str:
    """The optimizer, schedule and extra layers in one line, for the run's header."""
    parts = [f"{config.optimizer} (lr {config.lr:g}"
             + (f", momentum {config.momentum:g}" if config.optimizer in ("momentum", "nesterov") else "")
             + (f", weight decay {config.weight_decay:g}" if config.weight_decay else "") + ")"]
    if config.lr_schedule == "step":
        parts.append(f"lr x {config.lr_gamma:g} every {config.lr_step_size} epochs")
    elif config.lr_schedule == "cosine":
        parts.append(f"cosine lr schedule over {config.epochs} epochs")
    if config.batch_norm:
        parts.append("batch norm")
    if config.dropout:
        parts.append(f"dropout {config.dropout:g}")
    return ", ".join(parts)


def run(config: Config, data) -> dict:
    if config.extra.get("plots"):
        plots.require_matplotlib()  # before training, not after it
    if config.extra.get("engine") == "autograd":
        from compare.autograd import check_engine_config

        check_engine_config(config)
        print("Scratch side: the MLP on the scratch autograd engine (scratch/engine_nn.py)")
    scratch_l, torch_l = build_pair(config, input_size=data.x_train.shape[1], num_classes=len(data.classes))
    mismatched = parameter_mismatches(scratch_l, torch_l)
    n_values = sum(p.numel() for p in scratch_l.named_parameters().values())
    print(f"Initial parameters: " + (f"bit-identical ({n_values:,} values in "
          f"{len(scratch_l.named_parameters())} tensors)" if not mismatched else
          f"DIFFERENT in {', '.join(mismatched)}"))
    steps = math.ceil(len(data.x_train) / config.batch_size)
    print(f"Training both on {config.dataset}: {config.epochs} epochs x {steps} steps of batch {config.batch_size}, "
          f"{describe(config)}, {config.dtype} on {config.device}")

    records = train_lockstep([scratch_l, torch_l], data.x_train, data.y_train, data.x_test, data.y_test,
                             epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                             on_epoch=print_epoch)

    report: dict = {}
    confusions = {}
    for learner in (scratch_l, torch_l):
        record = records[learner.name]
        confusion = confusions[learner.name] = confusion_matrix(record.predictions, data.y_test, len(data.classes))
        scores = per_class_scores(confusion)
        print_class_report(learner.name, scores, confusion, data.classes)
        report[learner.name] = dict(test_accuracy=record.history[-1].test_accuracy,
                                    history=[h.to_dict() for h in record.history],
                                    per_class=scores, confusion_matrix=confusion.tolist(),
                                    step_losses=record.step_losses)

    result = verdict(config, records, data.y_test, identical_start=not mismatched)
    worst_name, worst_diff = max_parameter_difference(scratch_l, torch_l)
    result.update(final_max_parameter_diff=worst_diff, final_max_parameter_diff_name=worst_name)
    buffer_name, buffer_diff = max_buffer_difference(scratch_l, torch_l)
    if buffer_name is not None:
        result.update(final_max_buffer_diff=buffer_diff, final_max_buffer_diff_name=buffer_name)
    print(f"\nLargest per-step loss difference: {result['max_step_loss_rel_diff']:.3e} relative "
          f"(first step: {result['first_step_loss_rel_diff']:.3e}) over {result['steps']} steps")
    print(f"Largest final parameter difference: {worst_diff:.3e} (in {worst_name})")
    if buffer_name is not None:
        print(f"Largest final running-statistics difference: {buffer_diff:.3e} (in {buffer_name})")
    print(f"Identical test predictions: {result['prediction_agreement']:.2%} of {len(data.y_test)} images")
    if config.dtype == "float32":
        print("(float32: rounding differences of ~1e-7 are amplified step after step, so the runs drift "
              "apart; only their accuracies are compared. Use --dtype float64 for agreement to rounding error.)")
    print("\nAgreement checks:")
    for name, ok in result["checks"].items():
        print(f"  [{'pass' if ok else 'FAIL'}] {name}")
    print(f"Verdict: {'PASSED' if result['passed'] else 'FAILED'} "
          f"(test accuracy scratch {report['scratch']['test_accuracy']:.2%}, torch {report['torch']['test_accuracy']:.2%})")
    if config.extra.get("plots"):
        paths = plots.train_figures(config.extra["plots"], config, records, (scratch_l, torch_l), data, confusions)
        print("Pictures written: " + ", ".join(str(p) for p in paths))
        report["plots"] = [str(p) for p in paths]
    report["agreement"] = result
    return report
