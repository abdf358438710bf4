"""What a model family declares: its options, their defaults, how it builds each variant. And shared options.

A `ModelOption` is one command-line option (`--hidden`); options that several families read
(`--activation`, `--batch-norm`, `--dropout`) are defined once here and listed by each family
that reads them, so the parser holds each option once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compare.base import argtypes
from compare.models.spec import ModelSpec

IMPLEMENTATIONS = ("scratch", "torch", "engine")  # hand-written backward, torch.autograd, the scratch engine
ACTIVATION_CHOICES = ("relu", "sigmoid", "tanh", "leaky-relu", "gelu", "linear")  # linear: none (the identity)
# The activations with a kink (at 0): a finite difference across it mixes two slopes, so a network with one takes
# a smaller step and leaves out the coordinates where a kink lies within the nudge (compare/checking/finite_diff.py).
KINKED_ACTIVATIONS = ("relu", "leaky-relu")


@dataclass(frozen=True)
class ModelOption:
    """One option of one or more families; its argparse default is None, meaning "the family's default"."""

    dest: str  # the spec key and the argparse dest ("hidden")
    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # type, choices, action, metavar for add_argument
    show: Callable[[Any], str] = str  # how a default value is printed in --help

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    def add_to(self, parser: argparse._ActionsContainer, help_text: str) -> None:
        parser.add_argument(self.flag, dest=self.dest, default=None, help=help_text, **self.kwargs)


def show_sizes(sizes: tuple[int, ...]) -> str:
    return ",".join(map(str, sizes))


ACTIVATION = ModelOption("activation", "activation function after each hidden layer",
                         dict(choices=ACTIVATION_CHOICES))
BATCH_NORM = ModelOption("batch_norm", "batch normalization before each hidden activation (the layer before it "
                         "then has no bias)", dict(action=argparse.BooleanOptionalAction),
                         show=lambda on: "on" if on else "off")
DROPOUT = ModelOption("dropout", "dropout probability after each hidden activation; 0 adds no dropout layer",
                      dict(type=argtypes.probability, metavar="P"), show=lambda p: f"{p:g}")


@dataclass(frozen=True)
class TrainingDefaults:
    """The training settings a family trains well with, chosen by measurement (see the family's file)."""

    lr: Mapping[str, float]  # the learning rate of each --optimizer (sgd, momentum, nesterov, adam, adamw)
    batch_size: int = 32
    lr_schedule: str = "cosine"
    optimizer: str = "sgd"  # the --optimizer used when none is given


@dataclass(frozen=True)
class SplitPair:
    """Two Linear layers in a row that tensor parallelism splits across N processes (Megatron's MLP): the first
    by its output features (column-parallel), the second by its input features (row-parallel)."""

    column: str  # the first layer's module path ("layers.0")
    row: str  # the second's ("layers.2")
    size: int  # the features split across the N processes: the first's outputs, the second's inputs
    option: str  # what sets that size, for the refusal when N does not divide it ("--hidden's first size")


@dataclass(frozen=True)
class Family:
    name: str  # the --model value
    summary: str  # one line for --help
    options: tuple[ModelOption, ...]  # the options it reads
    defaults: Mapping[str, Any]  # a default for each of them, by dest
    # (spec, impl, input_size, num_classes) -> the model, float32 on the CPU; impl in IMPLEMENTATIONS
    build: Callable[[ModelSpec, str, int, int], Any]
    # (spec, input_size) -> the shape of one example as the model takes it, e.g. (784,) or (1, 28, 28)
    input_shape: Callable[[ModelSpec, int], tuple[int, ...]]
    # (spec, input_size, num_classes) -> a short description for headers, e.g. "784-16-16-10 relu"
    describe: Callable[[ModelSpec, int, int], str]
    training: TrainingDefaults
    check: Callable[[ModelSpec], None] = lambda spec: None  # raises UsageError on impossible values
    engine_problem: Callable[[ModelSpec], str | None] = lambda spec: None  # why the engine can't build it
    # Whether the network has kinks (ReLU, max pooling) where finite differences must take a small step.
    kinked: Callable[[ModelSpec], bool] = lambda spec: True
    # Whether it reads a flat vector of any length (the playground's 2-D points); False: only what its
    # input_shape names (28x28 images), so the playground refuses it.
    any_input_size: bool = False
    # (spec, input_size, num_classes) -> a short name for tables, e.g. "784-16-16-10"; describe() by default
    label: Callable[[ModelSpec, int, int], str] | None = None
    # (spec, input_size, num_classes, batch_size) -> (FLOPs of the matrix products of one training step,
    # upper estimate of the element-wise share left out): what `bench` divides by a step's time
    step_flops: Callable[[ModelSpec, int, int, int], tuple[int, float]] | None = None
    # (spec, input_size, num_classes) -> values one example leaves for the backward pass, at least one per layer
    # output (compare/models/traffic.py): with the parameters, the bytes a step must at least move
    step_activations: Callable[[ModelSpec, int, int], int] | None = None
    bench_specs: tuple[Mapping[str, Any], ...] = ()  # the benchmark grid's models: option values over the defaults
    # (folder, spec, {"scratch": model, "torch": model}, a few test examples as the data holds them [N, 784],
    # class names) -> the PNG files of the family's own pictures for `train --plots` (filters, feature maps,
    # attention maps, ...), drawn with compare/pictures/ (which imports nothing of compare.models, so a family
    # file may import it); None: only the pictures every family gets
    pictures: Callable[[Any, ModelSpec, Mapping[str, Any], Any, Any], list[Any]] | None = None
    # spec -> the pairs of Linear layers that `tp` splits across processes (tensor parallelism); None: the family
    # has no plan, and `tp` refuses it
    tensor_parallel: Callable[[ModelSpec], list[SplitPair]] | None = None

    def name_of(self, spec: ModelSpec, input_size: int, num_classes: int) -> str:
        return (self.label or self.describe)(spec, input_size, num_classes)
