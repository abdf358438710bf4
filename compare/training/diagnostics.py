"""Is training healthy? Per layer: activations (saturated tanh/sigmoid units, dead ReLUs), weight gradients, and the
size of each update relative to the weights it changes, for both implementations. Recorded by `train --plots`
only, drawn by compare/pictures/health.py (`health.png`, `update_ratio.png`).

    >>> diagnostics = TrainingDiagnostics(learners, probe_x)       # activations at initialization
    >>> train_lockstep(..., before_step=diagnostics.before_step, after_step=diagnostics.after_step)
    >>> diagnostics.finish()                                       # activations and gradients after training

The update ratio is std(update) / std(weights) of each weight matrix at each step (as in Karpathy's
"Building makemore" part 3): around 1e-3 a layer learns at a healthy pace; far below, it barely moves;
far above, its steps are too large. Scratch and torch are recorded side by side, so the pictures also show
whether they learn alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from compare.training.learners import Learner
from scratch.activations import ACTIVATIONS

# The layers whose outputs are a hidden layer's activations; torch_impl's activations carry the same class names.
ACTIVATION_NAMES = {cls.__name__ for cls in ACTIVATIONS.values()}
SATURATED = 0.97  # a tanh with |out| above this, or a sigmoid within 0.03 of 0 or 1, passes almost no gradient


def hidden_activations(learner: Learner, x: Tensor) -> list[tuple[str, str, Tensor]]:
    """(name, activation type, [B, units]) after each activation function, in evaluation mode, walking
    `model.layers` one layer at a time.

    The scratch Sequential and torch's nn.Sequential hold the same layers at the same indices, so the
    names ("layers.1", "layers.3") match across implementations. A model without indexable `layers` (the
    engine's) gives an empty list."""
    layers = getattr(learner.model, "layers", None)
    if layers is None or not hasattr(layers, "__getitem__"):
        return []
    learner.model.eval()
    out, h = [], learner.shaped(x)
    with torch.no_grad():
        for i in range(len(layers)):
            h = layers[i](h)
            kind = type(layers[i]).__name__
            if kind in ACTIVATION_NAMES:
                out.append((f"layers.{i}", kind, h.reshape(len(h), -1).detach().clone()))
    return out


def unhealthy_units(kind: str, activations: Tensor) -> tuple[int, str]:
    """(how many units, what is wrong with them): ReLUs that are 0 on every probe example (dead: they never
    learn again), tanh/sigmoid units saturated on more than half of them; (0, "") for other activations."""
    if kind in ("ReLU",):
        return int((activations <= 0).all(dim=0).sum()), "dead"
    if kind == "Tanh":
        return int(((activations.abs() > SATURATED).double().mean(dim=0) > 0.5).sum()), "saturated"
    if kind == "Sigmoid":
        flat = (activations - 0.5).abs() > SATURATED - 0.5
        return int((flat.double().mean(dim=0) > 0.5).sum()), "saturated"
    return 0, ""


@dataclass
class LayerHealth:
    name: str  # "layers.1"
    kind: str  # the activation function's class name
    activations: Tensor  # [probe examples * units], flattened
    unhealthy: int  # dead or saturated units
    problem: str  # "dead", "saturated" or ""
    units: int


@dataclass
class TrainingDiagnostics:
    """Records, for each learner, activations on a probe batch before and after training, the weight gradients of
    the last step, and the update ratio of every weight matrix at every step."""

    learners: Sequence[Learner]
    probe: Tensor  # a fixed batch of examples (flattened, as the data holds them)
    initial: dict[str, list[LayerHealth]] = field(default_factory=dict)
    final: dict[str, list[LayerHealth]] = field(default_factory=dict)
    gradients: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # side -> weight name -> gradient
    update_ratios: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # side -> weight -> per step
    _before: dict[str, dict[str, Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.initial = self._health()
        for learner in self.learners:
            self.update_ratios[learner.name] = {n: [] for n in self._weights(learner)}

    @staticmethod
    def _weights(learner: Learner) -> dict[str, Tensor]:
        """The weight matrices and filters (2 or more dimensions); biases and norms' scales are left out."""
        return {n: p for n, p in learner.named_parameters().items() if p.dim() >= 2}

    def _health(self) -> dict[str, list[LayerHealth]]:
        health = {}
        for learner in self.learners:
            layers = []
            for name, kind, h in hidden_activations(learner, self.probe):
                bad, problem = unhealthy_units(kind, h)
                layers.append(LayerHealth(name, kind, h.flatten().cpu(), bad, problem, h.shape[1]))
            health[learner.name] = layers
        return health

    def before_step(self, *_: object) -> None:
        """A `before_step` hook of compare.training.loop.train_lockstep: the weights before this step's update."""
        self._before = {learner.name: {n: p.clone() for n, p in self._weights(learner).items()}
                        for learner in self.learners}

    def after_step(self, global_step: int) -> None:
        """An `after_step` hook: std(update) / std(weights) of each weight matrix, this step."""
        for learner in self.learners:
            for name, p in self._weights(learner).items():
                before = self._before[learner.name][name]
                ratio = ((p - before).std() / before.std().clamp(min=1e-30)).item()
                self.update_ratios[learner.name][name].append(ratio)

    def finish(self) -> None:
        """After training: activations on the probe batch again, and the last step's weight gradients."""
        self.final = self._health()
        for learner in self.learners:
            weights = self._weights(learner)
            self.gradients[learner.name] = {n: g.detach().flatten().cpu().clone()
                                            for n, g in learner.named_gradients().items() if n in weights}
