"""The live playground's session: both networks learn a toy dataset one epoch at a time, as long as a page asks.

    >>> from compare.web.playground import PlaygroundSession, Settings
    >>> session = PlaygroundSession(Settings.from_json({"dataset": "spiral", "hidden": [8, 8]}))
    >>> session.step(10)["scratch"]["test_loss"]        # ten epochs of both networks, in lockstep
    >>> session.heatmap()["torch"]["output"]             # its output on a 50x50 grid over the plane

A session is TensorFlow Playground's state on the server: the points of one dataset (compare/data/toy.py), made
into the chosen input features, and a scratch network with its torch twin built from one seed
(compare/training/learners.py), trained by the one training loop (compare/training/loop.py, `Lockstep`) with
plain SGD at a constant learning rate, as Playground trains. One step is Playground's step: one epoch, every
training point once, in mini-batches of `batch_size`. Classification has two outputs and the cross-entropy
(the heatmap shows p(class 1)); regression one output and the squared error against a target in [-1, 1].
L1 and L2 are the penalties of scratch/regularization.py (by hand) and torch_impl/regularization.py (autograd).

After each epoch the session keeps the largest |scratch - torch| so far, of any training step's loss, of the
evaluated losses, and of any parameter: in float64 they stay at rounding level (about 1e-15); in float32 the
two runs drift apart, which is what choosing float32 on the page shows. Everything is bounded (points, layers,
neurons, steps per call, kept history), so that a session's memory is small and fixed. compare/web/sessions.py
keeps the sessions; compare/web/playground_routes.py is their HTTP API.
"""

from __future__ import annotations

import base64
import math
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import Tensor

from compare import models
from compare.data import toy
from compare.training.config import Config
from compare.training.diagnostics import hidden_activations
from compare.training.learners import build_pair, parameter_mismatches
from compare.training.loop import Lockstep, evaluate
from compare.training.metrics import accuracy

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
REGULARIZATIONS = ("none", "l1", "l2")
PROBLEMS = {"classification": toy.DATASETS, "regression": toy.REGRESSION_DATASETS}
POINTS = {"classification": 500, "regression": 1200}  # Playground's numbers of points, training and test together
MAX_LAYERS, MAX_NEURONS = 6, 8
MAX_BATCH = 30  # Playground's slider
MAX_STEPS = 1000  # epochs one call may ask for
GRID = 50  # the output heatmap: GRID x GRID points over the plane
THUMB_STRIDE = 2  # the neurons' thumbnails: every other point of the grid, 25 x 25
HISTORY = 1000  # the epochs whose losses the session keeps for the curves (older ones are thinned out)
# Both networks are drawn from torch's global generator, seeded just before (compare/training/learners.py): two
# sessions built at once in two threads would draw from each other's seeding, and their scratch and torch
# networks would start apart. One build at a time keeps every pair bit-identical.
_BUILDING = threading.Lock()


class SettingsError(ValueError):
    """A setting that cannot be used: `field` names it, the message says what is expected."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class Settings:
    """One playground's settings, as the page and the JSON API give them (TensorFlow Playground's defaults)."""

    dataset: str = "circles"  # classification: circles, xor, gaussian, spiral; regression: plane, multi-gaussian
    noise: float = 0.0  # Playground's noise / 100: 0 to 0.5
    train_ratio: float = 0.5  # the share of the points used for training, 0.1 to 0.9; the rest is the test set
    batch_size: int = 10  # points per gradient step, 1 to 30
    features: tuple[str, ...] = ("x1", "x2")  # the inputs, from toy.FEATURES
    hidden: tuple[int, ...] = (4, 2)  # neurons per hidden layer: 0 to 6 layers of 1 to 8
    activation: str = "tanh"  # relu, tanh, sigmoid or linear
    lr: float = 0.03  # the learning rate of plain SGD
    regularization: str = "none"  # none, l1 or l2
    reg_rate: float = 0.0  # the penalty's rate
    problem: str = "classification"  # or regression
    seed: int = 0  # seeds the points, the initial weights and the batch order
    dtype: str = "float64"  # or float32

    @classmethod
    def from_json(cls, body: object) -> Settings:
        """Settings from a JSON object; missing keys take the defaults. SettingsError names the first bad field."""
        if not isinstance(body, dict):
            raise SettingsError("body", "expected a JSON object of settings, e.g. {\"dataset\": \"spiral\"}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise SettingsError(unknown[0], f"unknown setting; the settings are {', '.join(sorted(known))}")
        values = {**asdict(cls()), **body}
        problem = _choice(values, "problem", tuple(PROBLEMS))
        other = next(p for p in PROBLEMS if p != problem)
        if values["dataset"] in PROBLEMS[other]:
            raise SettingsError("dataset", f"{values['dataset']!r} is a {other} dataset; set \"problem\": \"{other}\", "
                                           f"or choose one of {', '.join(PROBLEMS[problem])}")
        dataset = _choice(values, "dataset", PROBLEMS[problem])
        features = values["features"]
        if not isinstance(features, list | tuple) or not features or len(set(map(str, features))) != len(features) \
                or any(f not in toy.FEATURES for f in features):
            raise SettingsError("features", f"a list of distinct names from {', '.join(toy.FEATURES)}, at least one; "
                                            f"got {features!r}")
        hidden = values["hidden"]
        if not isinstance(hidden, list | tuple) or len(hidden) > MAX_LAYERS or \
                any(not _is_int(h) or not 1 <= h <= MAX_NEURONS for h in hidden):
            raise SettingsError("hidden", f"a list of 0 to {MAX_LAYERS} layer sizes, each 1 to {MAX_NEURONS}; "
                                          f"got {hidden!r}")
        settings = cls(
            dataset=dataset, noise=_number(values, "noise", 0.0, toy.MAX_NOISE),
            train_ratio=_number(values, "train_ratio", 0.1, 0.9),
            batch_size=_integer(values, "batch_size", 1, MAX_BATCH),
            features=tuple(features), hidden=tuple(int(h) for h in hidden),
            activation=_choice(values, "activation", ACTIVATIONS), lr=_number(values, "lr", 0.0, 10.0, open_low=True),
            regularization=_choice(values, "regularization", REGULARIZATIONS),
            reg_rate=_number(values, "reg_rate", 0.0, 10.0), problem=problem,
            seed=_integer(values, "seed", 0, 2**31 - 1), dtype=_choice(values, "dtype", ("float64", "float32")))
        return settings

    def to_json(self) -> dict:
        return {**asdict(self), "features": list(self.features), "hidden": list(self.hidden)}

    def config(self) -> Config:
        """The training Config of both learners: plain SGD at a constant rate, the penalty as l1 or l2."""
        rate = self.reg_rate if self.regularization != "none" else 0.0
        return Config(dataset=self.dataset, model=models.make_spec(hidden=self.hidden, activation=self.activation),
                      loss="cross-entropy" if self.problem == "classification" else "mse", epochs=1,
                      batch_size=self.batch_size, lr=self.lr, optimizer="sgd", lr_schedule="none", seed=self.seed,
                      dtype=self.dtype, l1=rate if self.regularization == "l1" else 0.0,
                      l2=rate if self.regularization == "l2" else 0.0)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(values: dict, name: str, choices: tuple[str, ...]) -> str:
    if values[name] not in choices:
        raise SettingsError(name, f"one of {', '.join(choices)}; got {values[name]!r}")
    return values[name]


def _number(values: dict, name: str, low: float, high: float, open_low: bool = False) -> float:
    value = values[name]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low < value if open_low else low <= value) or value > high:
        span = f"above {low:g} and at most {high:g}" if open_low else f"from {low:g} to {high:g}"
        raise SettingsError(name, f"a number {span}; got {value!r}")
    return float(value)


def _integer(values: dict, name: str, low: int, high: int) -> int:
    value = values[name]
    if not _is_int(value) or not low <= value <= high:
        raise SettingsError(name, f"a whole number from {low} to {high}; got {value!r}")
    return value


def difference(a: float, b: float) -> float:
    """|a - b| of two losses; 0 when both are inf or NaN (they diverged together), inf when only one is."""
    if math.isfinite(a) and math.isfinite(b):
        return abs(a - b)
    return 0.0 if not (math.isfinite(a) or math.isfinite(b)) else math.inf


def quantized(values: Tensor) -> str:
    """Values in [-1, 1] (clamped) as bytes 0..255, base64: a heatmap for the page's colours, 1 byte a point."""
    q = ((values.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    return base64.b64encode(q.numpy().tobytes()).decode("ascii")


@dataclass
class Curve:
    """Each epoch's losses, thinned to at most HISTORY points: every other one is dropped when it fills up."""

    epochs: deque = field(default_factory=deque)
    every: int = 1

    def add(self, epoch: int, values: dict) -> None:
        if epoch % self.every:
            return
        self.epochs.append(dict(epoch=epoch, **values))
        if len(self.epochs) >= HISTORY:
            self.every *= 2
            self.epochs = deque(e for e in self.epochs if e["epoch"] % self.every == 0)


class PlaygroundSession:
    """Both networks, their data and the plane, trained an epoch at a time; thread-safe (one call at a time)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        config = settings.config()
        dtype = config.torch_dtype
        x, y = toy.make_toy(settings.dataset, POINTS[settings.problem], settings.noise, settings.seed)
        n_train = round(len(x) * settings.train_ratio)
        self.points = dict(x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
        inputs = [toy.features(part, settings.features).to(dtype) for part in (x[:n_train], x[n_train:])]
        targets = [part.to(dtype) if part.is_floating_point() else part for part in (y[:n_train], y[n_train:])]
        self.classification = settings.problem == "classification"
        with _BUILDING:
            self.learners = build_pair(config, input_size=len(settings.features),
                                       num_classes=len(toy.CLASSES) if self.classification else 1)
        if parameter_mismatches(*self.learners):  # never expected: the comparison would be meaningless
            raise RuntimeError("the scratch and torch networks did not start bit-identical")
        self.run = Lockstep(self.learners, inputs[0], targets[0], inputs[1], targets[1],
                            batch_size=settings.batch_size, seed=settings.seed)
        # row 0 at the bottom (x2 = -6), column 0 at x1 = -6
        self.grid = toy.features(toy.plane_grid(GRID), settings.features).to(dtype)
        self.max_loss_difference = 0.0
        self.max_parameter_difference = 0.0
        self.diverged = False
        self.curve = Curve()
        self.latest = self._evaluate()
        self._compare_parameters()

    @property
    def epoch(self) -> int:
        return self.run.epochs_done

    def step(self, steps: int = 1) -> dict:
        """`steps` epochs of both networks in lockstep (none once a loss diverged); the summary after them."""
        with self.lock:
            for _ in range(steps):
                if self.diverged:
                    break
                _, self.diverged = self.run.epoch()
                records = self.run.records.values()
                a, b = (r.step_losses for r in records)
                self._note_loss(max((difference(u, v) for u, v in zip(a, b, strict=True)), default=0.0))
                for record in records:  # bounded: the new epoch's losses are judged, then let go
                    record.step_losses.clear()
                    record.history.clear()
                self.latest = self._evaluate()
                self._compare_parameters()
            return self.summary()

    def set_learning_rate(self, lr: float) -> None:
        """Playground changes the learning rate without a reset: both optimizers take the new rate at once."""
        with self.lock:
            for learner in self.learners:
                if isinstance(learner.optimizer, torch.optim.Optimizer):
                    for group in learner.optimizer.param_groups:
                        group["lr"] = lr
                else:  # a scratch optimizer: one rate for all its parameters
                    learner.optimizer.lr = lr
            self.settings = Settings(**{**asdict(self.settings), "lr": lr})

    def _note_loss(self, largest: float) -> None:
        self.max_loss_difference = max(self.max_loss_difference, largest)

    def _evaluate(self) -> dict:
        out = {}
        for learner in self.learners:
            train_loss, _ = evaluate(learner, self.run.x_train, self.run.y_train)
            test_loss, predictions = evaluate(learner, self.run.x_test, self.run.y_test)
            out[learner.name] = dict(train_loss=train_loss, test_loss=test_loss)
            if self.classification:
                out[learner.name]["test_accuracy"] = accuracy(predictions, self.run.y_test)
        for key in ("train_loss", "test_loss"):
            self._note_loss(difference(out["scratch"][key], out["torch"][key]))
        self.curve.add(self.epoch, {f"{side}_{k}": v for side in out for k, v in out[side].items()})
        return out

    def _compare_parameters(self) -> None:
        a, b = (learner.named_parameters() for learner in self.learners)
        worst = max(((a[n] - b[n]).abs().max().item() for n in a), default=0.0)
        if math.isfinite(worst):
            self.max_parameter_difference = max(self.max_parameter_difference, worst)

    def summary(self) -> dict:
        """The API's answer to a step: the epoch, each side's losses (and test accuracy), the largest differences."""
        return dict(step=self.epoch, **{side: dict(values) for side, values in self.latest.items()},
                    max_loss_difference=self.max_loss_difference,
                    max_parameter_difference=self.max_parameter_difference, diverged=self.diverged)

    @torch.no_grad()
    def _outputs(self) -> dict[str, tuple[Tensor, list[Tensor]]]:
        """Each side's output on the grid (p(class 1), or the regression output) and its hidden neurons' values."""
        out = {}
        for learner in self.learners:
            logits = learner.logits(self.grid)
            value = logits.softmax(dim=1)[:, 1] if self.classification else logits[:, 0]
            neurons = [h for _, _, h in hidden_activations(learner, self.grid)]
            out[learner.name] = value, neurons
        return out

    def heatmap(self) -> dict:
        """Both networks' outputs on the GRID x GRID plane, full precision: rows from x2 = -6 up, columns from
        x1 = -6 right; p(class 1) for classification, the output itself for regression."""
        with self.lock:
            outputs = self._outputs()
        return dict(step=self.epoch, resolution=GRID, domain=toy.DOMAIN,
                    output="p(class 1)" if self.classification else "regression output",
                    **{side: dict(output=value.reshape(GRID, GRID).tolist()) for side, (value, _) in outputs.items()})

    def frame(self) -> dict:
        """What the page draws after an update: the summary, both heatmaps and every neuron's thumbnail (bytes,
        base64, values in [-1, 1] as Playground colours them), every weight and bias of both sides, the curve."""
        with self.lock:
            outputs = self._outputs()
            weights = {learner.name: {n: p.tolist() for n, p in learner.named_parameters().items()}
                       for learner in self.learners}
            summary = self.summary()
            last = self.curve.epochs[-1] if self.curve.epochs else None
        pictures = {}
        for side, (value, neurons) in outputs.items():
            shown = value * 2 - 1 if self.classification else value  # p 0..1 as -1..1: orange to blue
            thumbs = [quantized(m) for layer in neurons  # layer: [G*G, width] -> one [G/2, G/2] map a neuron
                      for m in layer.T.reshape(-1, GRID, GRID)[:, ::THUMB_STRIDE, ::THUMB_STRIDE]]
            pictures[side] = dict(output=quantized(shown), neurons=thumbs, weights=weights[side])
        return dict(summary, pictures=pictures, point=last, resolution=GRID,
                    thumbnail=len(range(0, GRID, THUMB_STRIDE)))

    def description(self) -> dict:
        """The session's settings and its data, for the page: the points (x1, x2, label) of both sets."""
        p = self.points
        return dict(settings=self.settings.to_json(), epoch=self.epoch, curve=list(self.curve.epochs),
                    train=torch.cat([p["x_train"], p["y_train"].double()[:, None]], dim=1).tolist(),
                    test=torch.cat([p["x_test"], p["y_test"].double()[:, None]], dim=1).tolist())
