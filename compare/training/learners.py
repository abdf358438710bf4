"""One interface over both implementations, so one training loop and one evaluation loop serve both.

A `Learner` bundles a model, its loss and its optimizer. Only `forward_backward` differs
between the two: the scratch learner calls its hand-written backward passes, the torch
learner calls `loss.backward()` (autograd).

With Config.l1 or .l2, a step minimizes (and returns) the data loss plus a penalty R(w): scratch adds dR/dw by
hand after its backward (scratch/regularization.py), torch adds R to the loss for autograd (torch_impl/).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

import scratch
import scratch.regularization
import torch_impl
import torch_impl.regularization
from compare.training.components import (
    dropout_stream,
    input_shape,
    model_from_seed,
    scratch_optimizer,
    scratch_penalty,
    torch_optimizer,
    torch_penalty,
)
from compare.training.config import Config
from compare.training.state import (
    TrainingState,
    load_scratch_optimizer_state,
    load_torch_optimizer_state,
    scratch_optimizer_state,
    torch_optimizer_state,
)
from scratch import engine


class Learner:
    name: str  # its role in the comparison, and its key in records and reports: "scratch" or "torch"
    implementation: str  # what it really is, for tables: "hand-written", "engine" or "torch"
    # The shape of one example as the model takes it; batches arrive flattened ([B, 784]) and are viewed
    # as [B, *input_shape] (e.g. [B, 1, 28, 28] for a convolutional network). Empty: as they arrive.
    input_shape: tuple[int, ...] = ()
    scheduler: object | None = None  # a learning-rate schedule, stepped by end_epoch()
    # This learner's own copy of a random stream (a CPU generator state) for its dropout masks, or None.
    # Learners built from one seed start with equal copies, so each step they draw equal masks
    # however many random numbers the other learner drew in between.
    random_state: Tensor | None = None

    @contextmanager
    def own_random_stream(self) -> Iterator[None]:
        """Run the block with torch's global CPU generator set to this learner's stream, then restore it."""
        if self.random_state is None:
            yield
            return
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.random_state)
            yield
            self.random_state = torch.get_rng_state()

    def end_epoch(self) -> None:
        """Called by the training loop after each epoch's steps: advances the learning-rate schedule."""
        if self.scheduler is not None:
            self.scheduler.step()

    def learning_rate(self) -> float | None:
        """The optimizer's current learning rate (None where a learner does not expose it)."""
        return None

    def named_buffers(self) -> dict[str, Tensor]:
        """State that is not a parameter (batch norm's running statistics); empty by default."""
        return {}

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        """Loss of one batch (a 0-dim tensor); leaves the gradients in the model."""
        raise NotImplementedError

    def load_state(self, state: dict[str, Tensor]) -> None:
        """Copy a state dict (PyTorch's key names) into the model; KeyError/ValueError/RuntimeError if it won't fit."""
        raise NotImplementedError

    def export_state(self) -> TrainingState:
        """Everything the next training step depends on, copied (compare/training/state.py)."""
        raise NotImplementedError

    def import_state(self, state: TrainingState) -> None:
        """Take another learner's exported state: parameters, buffers, optimizer state, lr, random stream."""
        self.load_state({**state.parameters, **state.buffers})
        self.random_state = None if state.random_state is None else state.random_state.clone()
        self._import_optimizer_state(state)

    def _import_optimizer_state(self, state: TrainingState) -> None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def logits(self, x: Tensor) -> Tensor:
        """Outputs in evaluation mode, without recording anything for backward."""
        raise NotImplementedError

    def loss_value(self, logits: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def named_parameters(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def named_gradients(self) -> dict[str, Tensor]:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """"scratch (hand-written)", "scratch (engine)", "torch": the role and what fills it."""
        return self.name if self.name == self.implementation else f"{self.name} ({self.implementation})"

    def shaped(self, x: Tensor) -> Tensor:
        return x.view(len(x), *self.input_shape) if self.input_shape and x.shape[1:] != self.input_shape else x

    def train_step(self, x: Tensor, y: Tensor) -> float:
        loss = self.forward_backward(x, y)
        self.step()
        return loss.item()

    def float64_twin(self) -> Learner | None:
        """A float64 copy of this learner (its optimizer left behind: the twin only computes gradients), the
        referee of float32 comparisons (compare/training/resync.py); None where a learner offers none."""
        return None


@dataclass
class ScratchLearner(Learner):
    model: scratch.Module
    loss_fn: object
    optimizer: object
    name: str = "scratch"
    scheduler: object | None = None
    random_state: Tensor | None = None
    input_shape: tuple[int, ...] = ()
    implementation: str = "hand-written"
    penalty: scratch.regularization.Penalty | None = None  # L1/L2: its gradient added after the backward pass

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.train()
        with self.own_random_stream():
            loss = self.loss_fn.forward(self.model.forward(self.shaped(x)), y)
        self.model.backward(self.loss_fn.backward(), input_grad=False)  # as autograd: no gradient for images
        if self.penalty is not None:
            loss = loss + self.penalty.value()  # R(w) at the weights this step's gradient is taken at
            self.penalty.backward()  # dw += dR/dw, in the layers' own gradient buffers
        return loss

    def load_state(self, state: dict[str, Tensor]) -> None:
        self.model.load_state_dict(state)

    def export_state(self) -> TrainingState:
        names = list(self.named_parameters())
        optimizer, step = scratch_optimizer_state(self.optimizer, names)
        return TrainingState({n: p.clone() for n, p in self.named_parameters().items()},
                             {n: b.clone() for n, b in self.named_buffers().items()}, optimizer, step,
                             self.optimizer.lr, None if self.random_state is None else self.random_state.clone())

    def _import_optimizer_state(self, state: TrainingState) -> None:
        load_scratch_optimizer_state(self.optimizer, list(self.named_parameters()), state)

    def training_forward(self, x: Tensor) -> Tensor:
        """Logits in training mode (batch statistics, dropout), nothing kept for a backward: what a
        finite-difference nudge of one parameter measures."""
        self.model.train()
        return self.model.forward(self.shaped(x))

    def step(self) -> None:
        self.optimizer.step()

    def learning_rate(self) -> float:
        return self.optimizer.lr

    def named_buffers(self) -> dict[str, Tensor]:
        return dict(self.model.named_buffers())

    def logits(self, x: Tensor) -> Tensor:
        self.model.eval()
        return self.model.forward(self.shaped(x))

    def loss_value(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.loss_fn.forward(logits, y)

    def named_parameters(self) -> dict[str, Tensor]:
        return dict(self.model.named_parameters())

    def named_gradients(self) -> dict[str, Tensor]:
        return dict(self.model.named_gradients())


@dataclass
class TorchLearner(Learner):
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    name: str = "torch"
    scheduler: object | None = None
    random_state: Tensor | None = None
    input_shape: tuple[int, ...] = ()
    implementation: str = "torch"
    penalty: torch_impl.regularization.Penalty | None = None  # L1/L2: a term of the loss, for autograd

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)
        with self.own_random_stream():
            loss = self.loss_fn(self.model(self.shaped(x)), y)
        if self.penalty is not None:
            loss = loss + self.penalty()
        loss.backward()
        return loss.detach()

    def load_state(self, state: dict[str, Tensor]) -> None:
        self.model.load_state_dict(state)  # strict: any missing or unexpected key raises

    def export_state(self) -> TrainingState:
        optimizer, step = torch_optimizer_state(self.optimizer, dict(self.model.named_parameters()))
        return TrainingState({n: p.clone() for n, p in self.named_parameters().items()},
                             {n: b.clone() for n, b in self.named_buffers().items()}, optimizer, step,
                             self.learning_rate(), None if self.random_state is None else self.random_state.clone())

    def _import_optimizer_state(self, state: TrainingState) -> None:
        load_torch_optimizer_state(self.optimizer, dict(self.model.named_parameters()), state)

    def step(self) -> None:
        self.optimizer.step()

    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def named_buffers(self) -> dict[str, Tensor]:
        return {n: b.detach() for n, b in self.model.named_buffers()}

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        self.model.eval()
        return self.model(self.shaped(x))

    @torch.no_grad()
    def loss_value(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.loss_fn(logits, y)

    def named_parameters(self) -> dict[str, Tensor]:
        return {n: p.detach() for n, p in self.model.named_parameters()}

    def named_gradients(self) -> dict[str, Tensor]:
        return {n: p.grad for n, p in self.model.named_parameters()}

    def float64_twin(self) -> TorchLearner:
        model = copy.deepcopy(self.model).double()
        penalty = self.penalty and torch_impl.regularization.Penalty(model, self.penalty.l1, self.penalty.l2)
        # plain SGD over the twin's own parameters, for forward_backward's zero_grad; it never steps
        return TorchLearner(model, self.loss_fn, torch.optim.SGD(model.parameters(), lr=0.0), name=self.name,
                            random_state=self.random_state, input_shape=self.input_shape, penalty=penalty)


@dataclass
class EngineLearner(Learner):
    """The scratch autograd engine: forward written by hand, backward recorded and replayed by the engine."""

    model: object  # a model of the engine's nn helpers: parameters are Values
    loss_fn: object  # the engine's cross_entropy or mse_loss: (Value, targets) -> Value
    optimizer: object  # a scratch optimizer, holding each parameter's .data and .grad buffer
    name: str = "engine"
    scheduler: object | None = None
    input_shape: tuple[int, ...] = ()
    implementation: str = "engine"
    penalty: scratch.regularization.Penalty | None = None  # on the Values' .data and .grad, by hand as above

    def loss_graph(self, x: Tensor, y: Tensor) -> engine.Value:
        """The forward pass, recorded: the loss as a Value whose graph reaches back to every parameter."""
        return self.loss_fn(self.model(engine.Value(self.shaped(x), name="x")), y)

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.zero_grad()  # .grad accumulates, as in torch
        (loss := self.loss_graph(x, y)).backward()
        if self.penalty is not None:
            self.penalty.backward()
        return loss.data if self.penalty is None else loss.data + self.penalty.value()

    def step(self) -> None:
        self.optimizer.step()

    def learning_rate(self) -> float:
        return self.optimizer.lr

    def export_state(self) -> TrainingState:
        names = list(self.named_parameters())
        optimizer, step = scratch_optimizer_state(self.optimizer, names)
        return TrainingState({n: p.clone() for n, p in self.named_parameters().items()}, {}, optimizer, step,
                             self.optimizer.lr)

    def _import_optimizer_state(self, state: TrainingState) -> None:
        load_scratch_optimizer_state(self.optimizer, list(self.named_parameters()), state)

    def load_state(self, state: dict[str, Tensor]) -> None:
        own = self.named_parameters()
        if set(own) != set(state):
            raise KeyError(f"state dict keys {sorted(state)} do not match the engine model's {sorted(own)}")
        for name, data in own.items():
            if data.shape != state[name].shape:
                raise ValueError(f"{name!r}: expected shape {tuple(data.shape)}, got {tuple(state[name].shape)}")
            data.copy_(state[name])

    def logits(self, x: Tensor) -> Tensor:
        with engine.no_grad():
            return self.model(engine.Value(self.shaped(x))).data

    def loss_value(self, logits: Tensor, y: Tensor) -> Tensor:
        with engine.no_grad():
            return self.loss_fn(engine.Value(logits), y).data

    def named_parameters(self) -> dict[str, Tensor]:
        return {n: p.data for n, p in self.model.named_parameters()}

    def named_gradients(self) -> dict[str, Tensor]:
        return {n: p.grad for n, p in self.model.named_parameters()}


def build_scratch(config: Config, input_size: int = 784, num_classes: int = 10) -> ScratchLearner:
    model = model_from_seed(config, "scratch", input_size, num_classes)
    optimizer, scheduler = scratch_optimizer(config, model.parameters(), model.gradients())
    return ScratchLearner(model, scratch.LOSSES[config.loss](), optimizer, scheduler=scheduler,
                          random_state=dropout_stream(config), input_shape=input_shape(config, input_size),
                          penalty=scratch_penalty(config, model.named_parameters(), model.named_gradients()))


def build_torch(config: Config, input_size: int = 784, num_classes: int = 10) -> TorchLearner:
    model = model_from_seed(config, "torch", input_size, num_classes)
    optimizer, scheduler = torch_optimizer(config, model)
    return TorchLearner(model, torch_impl.LOSSES[config.loss](), optimizer, scheduler=scheduler,
                        random_state=dropout_stream(config), input_shape=input_shape(config, input_size),
                        penalty=torch_penalty(config, model))


def build_engine(config: Config, name: str = "engine", input_size: int = 784, num_classes: int = 10) -> EngineLearner:
    """The model on the scratch autograd engine, from the same seed: starts bit-identical to the other two."""
    model = model_from_seed(config, "engine", input_size, num_classes)
    params = model.parameters()
    # The scratch optimizers take parameter and gradient tensors: each Value's .data and the .grad backward() fills.
    optimizer, scheduler = scratch_optimizer(config, [p.data for p in params], [p.grad for p in params])
    named = dict(model.named_parameters())  # the penalty's gradient goes into each Value's .grad, as above
    penalty = scratch_penalty(config, {n: p.data for n, p in named.items()}, {n: p.grad for n, p in named.items()})
    return EngineLearner(model, engine.LOSSES[config.loss], optimizer, name=name, scheduler=scheduler,
                         input_shape=input_shape(config, input_size), penalty=penalty)


def build_pair(config: Config, input_size: int = 784, num_classes: int = 10) -> tuple[Learner, Learner]:
    """Both implementations from one seed: parameters bit-identical (checked by `parameter_mismatches`). With
    config.engine == "autograd" the scratch side, in the "scratch" role of the tables, is the engine's model."""
    shape = dict(input_size=input_size, num_classes=num_classes)
    if config.engine == "autograd":
        return build_engine(config, name="scratch", **shape), build_torch(config, **shape)
    return build_scratch(config, **shape), build_torch(config, **shape)


def parameter_mismatches(a: Learner, b: Learner) -> list[str]:
    """Names of parameters that are not bit-identical (or missing on one side); empty when equal."""
    pa, pb = a.named_parameters(), b.named_parameters()
    names = sorted(set(pa) | set(pb))
    return [n for n in names if n not in pa or n not in pb or not torch.equal(pa[n], pb[n])]
