"""`python -m compare train`: both implementations learn side by side, in lockstep.

    python -m compare train --epochs 10                          # the lesson's network on MNIST
    python -m compare train --dtype float64 --epochs 3           # agreement to rounding error
    python -m compare train --batch-norm --epochs 1 --save runs/bn   # then: evaluate --checkpoint runs/bn
    python -m compare train --device cuda --cuda-graph           # the scratch step replayed as one CUDA graph

Same initial parameters (checked bit for bit), same batches in the same order, one
training loop. After each epoch a side-by-side table; at the end per-class metrics,
confusion matrices, and a verdict on whether the two runs agree.
"""

from __future__ import annotations

import argparse
import math

from compare import models
from compare.base import agreement
from compare.base.errors import UsageError
from compare.base.report import plural, table
from compare.options.command import Command
from compare.options.groups import (
    BATCH,
    DATA,
    DIVERGENCE,
    EPOCHS,
    LOSS,
    MODEL,
    OPTIMIZER,
    PLOTS,
    REGULARIZATION,
    RUN,
    check_output_path,
)
from compare.pictures.canvas import require_matplotlib
from compare.pictures.health import training_health
from compare.pictures.train import train_figures
from compare.training import checkpoint, graphed
from compare.training.config import ENGINE_CHOICES, Config
from compare.training.diagnostics import TrainingDiagnostics
from compare.training.learners import build_pair, parameter_mismatches
from compare.training.loop import EpochStats, train_lockstep
from compare.training.metrics import confusion_matrix, per_class_scores
from compare.training.optimizers import describe_training
from compare.training.resync import ResyncMonitor
from compare.training.verdict import (
    expected_drift,
    max_buffer_difference,
    max_parameter_difference,
    print_checks,
    verdict,
)

HEALTH_PROBE = 1000  # test images whose activations the training-health pictures show


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINE_CHOICES, default="hand",
                   help="how the scratch network gets its gradients: hand (the backward formulas written in "
                        "scratch/) or autograd (the scratch autograd engine derives them from the forward pass) "
                        "(default: hand)")
    p.add_argument("--save", default=None, metavar="DIR",
                   help="write both trained models and the settings into DIR, for `evaluate --checkpoint DIR` "
                        "(default: none)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="capture the scratch training step (forward, hand-written backward, update) once as a CUDA "
                        "graph and replay it for every batch; needs --device cuda, refused with the reason where a "
                        "network or optimizer cannot be captured (compare/training/graphed.py) (default: off)")


def check(args: argparse.Namespace) -> None:
    if args.save:
        check_output_path(args.save, "--save", folder=True)
    if args.cuda_graph:  # before the data is loaded: a refusal costs nothing
        reason = graphed.refusal(args.device, args.engine, args.optimizer, args.model_spec.get("dropout", 0.0))
        if reason is not None:
            raise UsageError(reason)


def print_epoch(epoch: int, stats: dict[str, EpochStats], labels: dict[str, str]) -> None:
    s, t = stats["scratch"], stats["torch"]
    rows = [[name, getattr(s, key), getattr(t, key), getattr(s, key) - getattr(t, key)]
            for name, key in [("train loss", "train_loss"), ("test loss", "test_loss"),
                              ("test accuracy", "test_accuracy")]]
    if s.learning_rate is not None and t.learning_rate is not None:
        rows.append(["learning rate", s.learning_rate, t.learning_rate, s.learning_rate - t.learning_rate])
    print(f"\nEpoch {epoch}")
    print(table(["", labels["scratch"], labels["torch"], "difference"], rows))


def print_class_report(name: str, scores: dict, confusion, classes) -> None:
    print(f"\n{name}: per-class precision, recall (sensitivity), F1")
    print(table(["class", "precision", "recall", "F1", "images"],
                [[c, p, r, f, int(n)] for c, p, r, f, n in
                 zip(classes, scores["precision"], scores["recall"], scores["f1"], confusion.sum(dim=1), strict=True)]))
    print(f"{name}: confusion matrix (rows: true class, columns: predicted)")
    print(table(["true\\pred", *[str(i) for i in range(len(classes))]],
                [[str(i), *[int(v) for v in row]] for i, row in enumerate(confusion)]))


def check_last_batch(config: Config, n_train: int) -> None:
    """Batch norm cannot take a batch of one example in training; refuse before training, not at the last step."""
    if config.model.get("batch_norm") and n_train % config.batch_size == 1:
        raise UsageError(f"--batch-size {config.batch_size} leaves a last batch of 1 of the {n_train:,} training "
                         "images, and batch norm needs at least 2 per batch; choose another --batch-size")


def run(config: Config, data) -> dict:
    if config.extra["plots"]:
        require_matplotlib()  # before training, not after it
    check_last_batch(config, len(data.x_train))
    shape = dict(input_size=data.x_train.shape[1], num_classes=len(data.classes))
    family = models.family_of(config.model)
    scratch_l, torch_l = build_pair(config, **shape)
    if config.extra["cuda_graph"]:
        scratch_l = graphed.GraphedScratchLearner.of(scratch_l)
    labels = {learner.name: learner.label for learner in (scratch_l, torch_l)}
    mismatched = parameter_mismatches(scratch_l, torch_l)
    n_values = sum(p.numel() for p in scratch_l.named_parameters().values())
    print(f"Model: {family.describe(config.model, **shape)}; {labels['scratch']} vs {labels['torch']}")
    print("Initial parameters: " + (f"bit-identical ({n_values:,} values in "
          f"{len(scratch_l.named_parameters())} tensors)" if not mismatched else
          f"DIFFERENT in {', '.join(mismatched)}"))
    steps = math.ceil(len(data.x_train) / config.batch_size)
    print(f"Training both on {config.dataset}: {plural(config.epochs, 'epoch')} x {plural(steps, 'step')} of batch "
          f"{config.batch_size}, {describe_training(config)}, {config.dtype} on {config.device}")

    monitor = ResyncMonitor(scratch_l, torch_l, agreement.resync_tolerance(config.torch_dtype),
                            agreement.separation_threshold(config.torch_dtype), config.epochs)
    before_step, after_step, health = monitor, None, None
    if config.extra["plots"]:  # is training healthy: activations, gradients, update sizes (pictures only)
        health = TrainingDiagnostics((scratch_l, torch_l), data.x_test[:HEALTH_PROBE])

        def before_step(*args) -> None:
            monitor(*args)
            health.before_step()  # after the monitor, which may re-synchronize the weights

        after_step = health.after_step
    records = train_lockstep([scratch_l, torch_l], data.x_train, data.y_train, data.x_test, data.y_test,
                             epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                             on_epoch=lambda epoch, stats: print_epoch(epoch, stats, labels), before_step=before_step,
                             after_step=after_step)

    report: dict = {}
    confusions = {}
    for learner in (scratch_l, torch_l):
        record = records[learner.name]
        confusion = confusions[learner.name] = confusion_matrix(record.predictions, data.y_test, len(data.classes))
        scores = per_class_scores(confusion)
        print_class_report(learner.label, scores, confusion, data.classes)
        report[learner.name] = dict(implementation=learner.implementation,
                                    test_accuracy=record.history[-1].test_accuracy,
                                    history=[h.to_dict() for h in record.history],
                                    per_class=scores, confusion_matrix=confusion.tolist(),
                                    step_losses=record.step_losses)

    result = verdict(config, records, not mismatched, monitor.summary(),
                     fail_on_divergence=config.extra["fail_on_divergence"])
    worst_name, worst_diff = max_parameter_difference(scratch_l, torch_l)
    result.update(final_max_parameter_diff=worst_diff, final_max_parameter_diff_name=worst_name)
    buffer_name, buffer_diff = max_buffer_difference(scratch_l, torch_l)
    if buffer_name is not None:
        result.update(final_max_buffer_diff=buffer_diff, final_max_buffer_diff_name=buffer_name)
    drift = expected_drift(result, config.dtype)  # said beside each figure the drift or divergence explains
    label = f": {drift}" if drift else ""
    print(f"\nLargest per-step loss difference: {result['max_step_loss_rel_diff']:.3e} relative "
          f"(first step: {result['first_step_loss_rel_diff']:.3e}) over {plural(result['steps'], 'step')}{label}")
    also = " (expected, as above)" if drift else ""
    print(f"Largest final parameter difference: {worst_diff:.3e} (in {worst_name}){also}")
    if buffer_name is not None:
        print(f"Largest final running-statistics difference: {buffer_diff:.3e} (in {buffer_name}){also}")
    print(f"Identical test predictions: {result['prediction_agreement']:.2%} of {len(data.y_test)} images"
          + (also if result["prediction_agreement"] < 1 else ""))
    if config.dtype == "float32":
        print("(float32: rounding differences of ~1e-7 are amplified step after step, so the runs drift apart; "
              "the re-synchronized checks judge the implementations. --dtype float64 keeps the runs identical far "
              "longer: README, \"Tolerances, and why float32 and float64 differ\".)")
    if config.extra["plots"]:
        title = (f"{config.dataset}, {family.describe(config.model, **shape)}, batch {config.batch_size}, "
                 f"{describe_training(config)}, {config.dtype}: scratch and torch in lockstep")
        paths = train_figures(config.extra["plots"], config, records, (scratch_l, torch_l), data, confusions,
                                    title)
        health.finish()
        paths += training_health(config.extra["plots"], health, steps, title)
        if family.pictures is not None:  # the family's own: filters, feature maps, attention maps, ...
            paths += family.pictures(config.extra["plots"], config.model,
                                     {learner.name: learner.model for learner in (scratch_l, torch_l)},
                                     data.x_test[:8], data.classes)
        print("Pictures written: " + ", ".join(str(p) for p in paths))
        report["plots"] = [str(p) for p in paths]
    if config.extra["save"]:
        folder = checkpoint.save(config.extra["save"], config, (scratch_l, torch_l), shape,
                                 {name: r.history[-1].test_accuracy for name, r in records.items()})
        print(f"Checkpoint written to {folder} (load it with: python -m compare evaluate --checkpoint {folder})")
        report["checkpoint"] = str(folder)
    print_checks(result)  # the verdict and the three lines that end the output
    report["agreement"] = result
    return report


COMMAND = Command(
    name="train",
    help="train both networks in lockstep and compare them",
    run=run,
    groups=(DATA, MODEL, LOSS, BATCH, EPOCHS, OPTIMIZER, REGULARIZATION, *RUN, PLOTS, DIVERGENCE),
    add_arguments=add_arguments,
    config_keys=("plots", "save", "fail_on_divergence", "cuda_graph"),
    defaults={"epochs": 3},
    check=check,
)
