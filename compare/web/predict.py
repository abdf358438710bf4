"""Both trained networks read one digit: the ten probabilities, the predicted digit, every hidden layer's
activations, and the largest difference between the scratch network and its torch twin.

    >>> from compare.web.predict import reader_from_checkpoint
    >>> reader = reader_from_checkpoint("runs/mlp")         # written by `python -m compare train --save runs/mlp`
    >>> result = reader.read(image)                          # image: [28, 28] in 0..1 (compare/data/digits.py)
    >>> result["scratch"]["predicted"], result["max_difference"]

Without a checkpoint, `reader_from_training` trains the lesson's network first (both sides in lockstep,
in the one training loop of compare/training/loop.py). `python -m compare serve` puts a reader behind a web page.

How large `max_difference` may be depends on the weights, and `info()["difference"]` says which case
applies: two networks trained separately (each side with its own arithmetic) drift apart in float32,
so a difference of about 0.5 in some probability is expected there; the same weights in both sides
differ by rounding alone (about 1e-7 in float32, 1e-16 in float64).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from compare import models
from compare.base.errors import CheckpointError
from compare.data.mnist import Dataset, load_dataset
from compare.training import checkpoint
from compare.training.config import Config
from compare.training.diagnostics import hidden_activations
from compare.training.learners import Learner, build_pair
from compare.training.loop import evaluate, train_lockstep
from compare.training.metrics import accuracy


@dataclass
class DigitReader:
    """A trained scratch network and its torch twin, ready to read 28x28 digits."""

    learners: Sequence[Learner]  # the scratch learner, then the torch one
    mean: float  # the training set's pixel mean and std: inputs are normalized as in training
    std: float
    classes: Sequence[str]
    description: str  # "784-16-16-10 relu, float32"
    source: str  # where the weights come from: a checkpoint folder, or a training just done
    accuracies: dict[str, float]  # test accuracy of each side
    dataset: str = "mnist"  # the dataset it was trained on

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # a scratch forward writes its caches into the layers: one read at a time
        scratch_l, torch_l = self.learners
        theirs = {**torch_l.named_parameters(), **torch_l.named_buffers()}
        self.weights_difference = max((float((t - theirs[n]).abs().max()) for n, t in
                                       {**scratch_l.named_parameters(), **scratch_l.named_buffers()}.items()
                                       if t.is_floating_point() and t.numel()), default=0.0)

    def input_tensor(self, image: Tensor) -> Tensor:
        """[28, 28] in 0..1 -> [1, 784], normalized, in the models' dtype and device."""
        parameter = next(iter(self.learners[0].named_parameters().values()))
        x = image.reshape(1, -1).to(torch.float64)  # 1,784
        return ((x - self.mean) / self.std).to(device=parameter.device, dtype=parameter.dtype)

    def read(self, image: Tensor) -> dict:
        """Both networks on one [28, 28] image in 0..1: per side the probabilities, the predicted class and the
        hidden activations; `max_difference`: the largest |scratch - torch| over all of them."""
        x = self.input_tensor(image)
        with self._lock:
            sides = {}
            for learner in self.learners:
                logits = learner.logits(x)  # 1,C
                sides[learner.name] = dict(logits=logits[0], probabilities=torch.softmax(logits[0], dim=0),
                                           hidden=hidden_activations(learner, x))
        scratch_side, torch_side = (sides[learner.name] for learner in self.learners)
        diffs = [(scratch_side[key] - torch_side[key]).abs().max().item() for key in ("logits", "probabilities")]
        diffs += [(a - b).abs().max().item() for (_, _, a), (_, _, b) in zip(scratch_side["hidden"],
                                                                             torch_side["hidden"], strict=True)]
        labels = hidden_labels(self.learners[1], sides[self.learners[1].name]["hidden"])  # the same on both sides
        result: dict = {name: dict(probabilities=s["probabilities"].tolist(),
                                   predicted=int(s["probabilities"].argmax()),
                                   hidden=[dict(layer=layer, label=label, shape=shape, values=h[0].tolist())
                                           for (layer, _, h), (label, shape) in zip(s["hidden"], labels, strict=True)])
                        for name, s in sides.items()}
        result["agree"] = result[self.learners[0].name]["predicted"] == result[self.learners[1].name]["predicted"]
        result["max_difference"] = max(diffs)
        result["input"] = image.reshape(28, 28).tolist()
        return result

    def info(self) -> dict:
        return dict(description=self.description, source=self.source, classes=list(self.classes),
                    sides=[learner.label for learner in self.learners], accuracies=self.accuracies,
                    output_layer=f"output layer, {len(self.classes)} neurons: the probability of each class",
                    difference=self.difference_case())

    def difference_case(self) -> dict:
        """Which size of |scratch - torch| to expect from these weights, and why, in words for the page."""
        dtype = str(next(iter(self.learners[0].named_parameters().values())).dtype).removeprefix("torch.")
        rounding = {"float32": "1e-7", "float64": "1e-16"}.get(dtype, "its last digits")
        if self.weights_difference == 0:
            return dict(case="same weights", dtype=dtype, weights_difference=0.0, explanation=(
                f"Both networks hold the same weights, so they compute the same function: the difference is "
                f"rounding alone (at most about {rounding} in {dtype}), from adding the same numbers in another order. "
                "A larger one would mean that the two implementations disagree."))
        drift = ("In float32 their rounding differences can grow during training until the two are different "
                 f"networks (their weights now differ by up to {self.weights_difference:.1e}), so a difference of up "
                 "to about 0.5 in some probability is to be expected and does not by itself mean that the "
                 "implementations disagree (README, \"Tolerances\")." if dtype == "float32" else
                 f"In {dtype} their differences stay near rounding (their weights differ by up to "
                 f"{self.weights_difference:.1e}), so the difference is small; a large one would mean that the "
                 "implementations disagree, or that the training was unstable (README, \"Tolerances\").")
        return dict(case="trained separately", dtype=dtype, weights_difference=self.weights_difference,
                    explanation="The two networks were trained separately, each with its own arithmetic, from the "
                                f"same start on the same batches. {drift} To see the implementations alone, serve "
                                "with --weights scratch: both sides then hold the scratch network's weights.")


def hidden_labels(learner: Learner, hidden: list[tuple[str, str, Tensor]]) -> list[tuple[str, list[int]]]:
    """(plain name, shape) of each hidden activation, from the layer before it: "hidden layer 1, 16 neurons
    (ReLU)", [16]; after a convolution "hidden layer 1, convolution: 6 channels of 28x28 (ReLU)", [6, 28, 28]."""
    out: list[tuple[str, list[int]]] = []
    if not hidden:  # a family without indexable `layers` (ViT, LSTM) shows no hidden activations
        return out
    layers = learner.model.layers
    for number, (name, kind, h) in enumerate(hidden, start=1):
        index = int(name.rsplit(".", 1)[1])  # hidden_activations names them "layers.<index>"
        made_by = next((layers[j] for j in range(index - 1, -1, -1) if hasattr(layers[j], "weight")), None)
        channels, units = getattr(made_by, "out_channels", None), h.shape[1]
        side = math.isqrt(units // channels) if channels else 0
        if channels and channels * side * side == units:
            out.append((f"hidden layer {number}, convolution: {channels} channels of {side}x{side} ({kind})",
                        [channels, side, side]))
        else:
            out.append((f"hidden layer {number}, {units} neurons ({kind})", [units]))
    return out


WEIGHTS = ("own", "scratch", "torch")  # whose trained weights each side holds: its own, or one side's in both


def share_weights(learners: Sequence[Learner], side: str, source: str) -> str:
    """With side "scratch" or "torch", load that side's weights into both learners, so that any difference left
    is the two implementations' alone; returns `source` saying so ("own": nothing changes)."""
    if side == "own":
        return source
    state = checkpoint.learner_state(next(learner for learner in learners if learner.name == side))
    for learner in learners:
        learner.load_state(state)
    return f"{source}; the {side} network's weights in both"


def reader_from_checkpoint(folder: str, data_root: str | None = None, device: str = "cpu",
                           weights: str = "own") -> DigitReader:
    """The two models of a `train --save` checkpoint (any model family), with their dataset's normalization;
    `weights`: see WEIGHTS."""
    saved = checkpoint.load(folder, device=device)
    trained = replace(saved.config, data_root=data_root) if data_root else saved.config
    data = load_dataset(trained.dataset, data_root, dtype=trained.torch_dtype, device=device)
    if data.x_test.shape[1] != saved.input_size or len(data.classes) != saved.num_classes:
        raise CheckpointError(f"the checkpoint's models take {saved.input_size} inputs and {saved.num_classes} "
                              f"classes, {trained.dataset} here has {data.x_test.shape[1]} and {len(data.classes)}")
    learners = build_pair(trained, input_size=saved.input_size, num_classes=saved.num_classes)
    for learner in learners:
        learner.load_state(saved.states[learner.name])
    return _reader(trained, data, learners, share_weights(learners, weights, f"checkpoint {folder}"))


def reader_from_training(config: Config, data: Dataset, weights: str = "own") -> DigitReader:
    """Train config's network on data, both sides in lockstep (with a progress bar), then read with it;
    `weights`: see WEIGHTS."""
    learners = build_pair(config, input_size=data.x_train.shape[1], num_classes=len(data.classes))
    train_lockstep(learners, data.x_train, data.y_train, data.x_test, data.y_test, epochs=config.epochs,
                   batch_size=config.batch_size, seed=config.seed)
    source = f"trained just now ({config.epochs} epoch(s) on {config.dataset})"
    return _reader(config, data, learners, share_weights(learners, weights, source))


def _reader(config: Config, data: Dataset, learners: Sequence[Learner], source: str) -> DigitReader:
    accuracies = {learner.name: accuracy(evaluate(learner, data.x_test, data.y_test)[1], data.y_test)
                  for learner in learners}
    family = models.family_of(config.model)
    description = f"{family.describe(config.model, data.x_test.shape[1], len(data.classes))}, {config.dtype}"
    return DigitReader(learners, data.mean, data.std, data.classes, description, source, accuracies, data.name)
