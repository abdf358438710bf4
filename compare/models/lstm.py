"""An LSTM that reads a digit row by row (`--model lstm`): 28 steps of 28 pixels, a classifier on the last state.

    python -m compare train --model lstm --epochs 10                # 128 hidden units
    python -m compare grads --model lstm --dtype float64            # backpropagation through time, checked
    python -m compare train --model lstm --hidden-size 32 --epochs 1

Variants: scratch/sequence.py (hand-written backpropagation through time), torch_impl/sequence.py
(nn.LSTM(batch_first=True) and nn.Linear), and the same on the scratch autograd engine
(scratch/engine_nn.py). Derivations: docs/recurrence.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

import scratch
import torch_impl
from compare.base import argtypes
from compare.base.errors import UsageError
from compare.models import flops, traffic
from compare.models.family import Family, ModelOption, TrainingDefaults
from compare.models.spec import ModelSpec
from compare.pictures.families import hidden_states
from scratch import engine_nn

ROWS = COLUMNS = 28  # a 28x28 image: 28 steps of 28 values

HIDDEN_SIZE = ModelOption("hidden_size", "hidden units of the LSTM (the size of its state)",
                          dict(type=argtypes.positive_int, metavar="H"))

DEFAULTS = dict(hidden_size=128)


def build(spec: ModelSpec, impl: str, input_size: int, num_classes: int) -> object:
    if input_size != ROWS * COLUMNS:
        raise UsageError(f"--model lstm reads 28x28 images row by row (784 values each), but the data has "
                         f"{input_size} values per example; use --dataset mnist or fashion-mnist, or --model mlp")
    kind = {"scratch": scratch.LSTMClassifier, "torch": torch_impl.LSTMClassifier,
            "engine": engine_nn.LSTMClassifier}[impl]
    return kind(input_size=COLUMNS, hidden_size=spec["hidden_size"], num_classes=num_classes)


def describe(spec: ModelSpec, input_size: int, num_classes: int) -> str:
    return (f"LSTM over {ROWS} rows of {COLUMNS} pixels, {spec['hidden_size']} hidden units, "
            f"Linear head to {num_classes} classes")


def step_flops(spec: ModelSpec, input_size: int, num_classes: int, batch_size: int) -> tuple[int, float]:
    h = spec["hidden_size"]
    parameters = 4 * h * (COLUMNS + h) + 8 * h + h * num_classes + num_classes
    matmuls = flops.lstm_step_flops(batch_size, ROWS, COLUMNS, h, num_classes)
    elementwise = flops.lstm_elementwise(batch_size, ROWS, h, num_classes, parameters)
    return matmuls, elementwise / (elementwise + matmuls)


def pictures(folder: str | Path, spec: ModelSpec, trained: Mapping[str, object], x, classes) -> list[Path]:
    """hidden_states.png: the hidden state after each row of the first test digit, scratch beside torch."""
    one = x[:1]
    states = {}
    for side, model in trained.items():
        with torch.no_grad():
            states[side] = model.hidden_states(one)[0]  # T,H
    image = one[0].reshape(ROWS, COLUMNS)
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)  # 0..1 for drawing
    return [hidden_states(folder, image, states, f"The LSTM's state as it reads a test digit "
                                                 f"({spec['hidden_size']} units)")]


FAMILY = Family(
    name="lstm",
    summary="an LSTM reading the 28 rows of a digit, a Linear layer on its last hidden state",
    options=(HIDDEN_SIZE,),
    defaults=DEFAULTS,
    build=build,
    input_shape=lambda spec, input_size: (ROWS, COLUMNS),
    describe=describe,
    # Measured (hidden 128, seed 0, torch twin, float32, batch 64, cosine): Adam at 2e-3 reaches 98.60% after
    # 3 epochs, so the family trains with Adam unless --optimizer says otherwise. The rates of the other
    # optimizers are NOT measured for this family yet: sgd as the mlp's, momentum and nesterov a tenth of it,
    # adamw as adam.
    training=TrainingDefaults(lr=dict(sgd=0.1, momentum=0.01, nesterov=0.01, adam=2e-3, adamw=2e-3),
                              batch_size=64, lr_schedule="cosine", optimizer="adam"),
    kinked=lambda spec: False,  # sigmoid and tanh: smooth everywhere
    label=lambda spec, input_size, num_classes: f"lstm h{spec['hidden_size']}",
    step_flops=step_flops,
    step_activations=lambda spec, input_size, num_classes: traffic.lstm_activations(
        ROWS, spec["hidden_size"], num_classes),
    bench_specs=(dict(),),
    pictures=pictures,
)
