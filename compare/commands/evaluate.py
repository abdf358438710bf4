"""`python -m compare evaluate --checkpoint DIR`: load both trained models and cross-load their weights.

    python -m compare train --batch-norm --epochs 1 --save runs/bn
    python -m compare evaluate --checkpoint runs/bn --report runs/bn/evaluate.json

Four evaluations on the test set of the dataset the models were trained on:

    scratch            the scratch model, from scratch.pt
    torch              the torch twin, from torch.pt
    scratch_in_torch   scratch.pt loaded into a fresh torch twin
    torch_in_scratch   torch.pt loaded into a fresh scratch model

They pass when each file's weights give the same predictions in both implementations (float64:
identical; float32: at least PREDICTION_MATCH_FLOAT64, 99.9%), each model's accuracy equals the one
measured at the end of training, and, in float64, the two trained models agree too (float32 runs
drift apart in training: that figure is reported, not judged).
A missing, damaged or mismatched checkpoint is a one-line error with exit status 2.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from compare.base import agreement
from compare.base.errors import CheckpointError
from compare.base.report import plural, table
from compare.data.mnist import load_dataset
from compare.options.command import Command
from compare.options.groups import DEVICE, REPORT
from compare.training import checkpoint
from compare.training.config import Config
from compare.training.learners import build_engine, build_scratch, build_torch
from compare.training.loop import evaluate
from compare.training.metrics import accuracy
from compare.training.verdict import print_summary

VARIANTS = (("scratch", "scratch", "scratch"), ("torch", "torch", "torch"),  # (key, model, weights)
            ("scratch_in_torch", "torch", "scratch"), ("torch_in_scratch", "scratch", "torch"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="a folder written by `train --save DIR`")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding mnist/ and fashion-mnist/ (default: $MNIST_DATA_ROOT, else ./data)")


def build_side(config: Config, side: str, shape: dict[str, int]):
    if side == "torch":
        return build_torch(config, **shape)
    if config.engine == "autograd":
        return build_engine(config, name="scratch", **shape)
    return build_scratch(config, **shape)


def run(config: Config, data: None = None) -> dict:
    saved = checkpoint.load(config.extra["checkpoint"], device=config.device)
    trained = replace(saved.config, data_root=config.data_root)
    shape = dict(input_size=saved.input_size, num_classes=saved.num_classes)
    data = load_dataset(trained.dataset, trained.data_root, dtype=trained.torch_dtype, device=config.device)
    if data.x_test.shape[1] != saved.input_size or len(data.classes) != saved.num_classes:
        raise CheckpointError(f"the checkpoint's models take {saved.input_size} inputs and {saved.num_classes} "
                              f"classes, {trained.dataset} here has {data.x_test.shape[1]} and {len(data.classes)}")
    print(f"Checkpoint {config.extra['checkpoint']}: --model {trained.model.family}, {trained.dtype}, trained on "
          f"{trained.dataset} ({trained.epochs} epochs)")
    results, predictions = {}, {}
    for key, side, weights in VARIANTS:
        learner = build_side(trained, side, shape)
        try:
            learner.load_state(saved.states[weights])
        except (KeyError, ValueError, RuntimeError) as error:
            first = (str(error).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(f"{weights}.pt does not fit the {side} model of config.json ({first}): "
                                  "the files come from different runs") from None
        loss, predictions[key] = evaluate(learner, data.x_test, data.y_test)
        results[key] = dict(test_accuracy=accuracy(predictions[key], data.y_test), test_loss=loss,
                            implementation=learner.implementation, weights=f"{weights}.pt")
    # The same weights in the other implementation must give the same predictions; the two trained models are
    # the same model only in float64 (float32 runs drift apart: compared, not judged).
    same_weights = {"scratch.pt": accuracy(predictions["scratch_in_torch"], predictions["scratch"]),
                    "torch.pt": accuracy(predictions["torch_in_scratch"], predictions["torch"])}
    trained_models = accuracy(predictions["torch"], predictions["scratch"])
    needed = 1.0 if trained.dtype == "float64" else agreement.PREDICTION_MATCH_FLOAT64
    as_trained = {side: results[side]["test_accuracy"] == saved.accuracies[side] for side in ("scratch", "torch")}
    print(table(["model", "weights", "test accuracy", "test loss", "at the end of training"],
                [[key, r["weights"], r["test_accuracy"], r["test_loss"],
                  f"{saved.accuracies[key]:.4f}" if key in saved.accuracies else ""] for key, r in results.items()]))
    checks = {f"scratch.pt in both implementations: {same_weights['scratch.pt']:.2%} identical predictions":
              same_weights["scratch.pt"] >= needed,
              f"torch.pt in both implementations: {same_weights['torch.pt']:.2%} identical predictions":
              same_weights["torch.pt"] >= needed,
              "each model's test accuracy equals the training run's": all(as_trained.values())}
    if trained.dtype == "float64":
        checks[f"the two trained models: {trained_models:.2%} identical predictions"] = trained_models >= needed
    print(f"\nAgreement checks ({'identical predictions' if needed == 1.0 else f'at least {needed:.1%} identical'}):")
    for name, ok in checks.items():
        print(f"  [{'pass' if ok else 'FAIL'}] {name}")
    if trained.dtype == "float32":
        print(f"(float32: the two trained models drifted apart in training; they give the same prediction on "
              f"{trained_models:.2%} of the images. --dtype float64 trains both to the same model.)")
    passed = all(checks.values())
    print(f"Verdict: {'PASSED' if passed else 'FAILED'}")
    drift = ("; the two float32 runs drifted apart in training, which is expected: they give the same prediction on "
             f"{trained_models:.2%} of the images") if trained.dtype == "float32" else ""
    lines = dict(
        implementations=(f"agree (each file's weights give the same predictions in both implementations on at "
                         f"least {min(same_weights.values()):.2%} of the images)") if passed else
        f"disagree ({'; '.join(name for name, ok in checks.items() if not ok)})",
        training=f"not trained here: the checkpoint's models, trained for {plural(trained.epochs, 'epoch')}{drift}",
        next=("nothing to fix" if passed else
              "the [FAIL] lines above say which file or model differs; a file whose weights predict differently in "
              "the other implementation points at a forward pass"))
    print_summary(lines)
    return dict(**results, trained_test_accuracy=saved.accuracies,
                agreement=dict(passed=passed, checks=checks, same_weights=same_weights,
                               trained_models_prediction_agreement=trained_models, required=needed, summary=lines))


COMMAND = Command(
    name="evaluate",
    help="load a `train --save` checkpoint: both models, and each one's weights in the other implementation",
    run=run,
    groups=(DEVICE, REPORT),
    add_arguments=add_arguments,
    config_keys=("checkpoint",),
    needs_data=False,
)
