"""One interface over both implementations, so one training loop and one evaluation loop serve both.

A `Learner` bundles a model, its loss and its optimizer. Only `forward_backward` differs
between the two: the scratch learner calls its hand-written backward passes, the torch
learner calls `loss.backward()` (autograd).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

import scratch
import scratch.lr_scheduler
import scratch.optim
import torch_impl
import torch_impl.lr_scheduler
import torch_impl.optim
from compare.config import Config
from compare.options import optimizer_spec, schedule_spec
from scratch import engine, engine_nn


class Learner:
    name: str
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

    def train_step(self, x: Tensor, y: Tensor) -> float:
        loss = self.forward_backward(x, y)
        self.step()
        return loss.item()


@dataclass
class ScratchLearner(Learner):
    model: scratch.Module
    loss_fn: object
    optimizer: object
    name: str = "scratch"
    scheduler: object | None = None
    random_state: Tensor | None = None

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.train()
        with self.own_random_stream():
            loss = self.loss_fn.forward(self.model.forward(x), y)
        self.model.backward(self.loss_fn.backward(), input_grad=False)  # as autograd: no gradient for images
        return loss

    def step(self) -> None:
        self.optimizer.step()

    def learning_rate(self) -> float:
        return self.optimizer.lr

    def named_buffers(self) -> dict[str, Tensor]:
        return dict(self.model.named_buffers())

    def logits(self, x: Tensor) -> Tensor:
        self.model.eval()
        return self.model.forward(x)

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

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)
        with self.own_random_stream():
            loss = self.loss_fn(self.model(x), y)
        loss.backward()
        return loss.detach()

    def step(self) -> None:
        self.optimizer.step()

    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def named_buffers(self) -> dict[str, Tensor]:
        return {n: b.detach() for n, b in self.model.named_buffers()}

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        self.model.eval()
        return self.model(x)

    @torch.no_grad()
    def loss_value(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.loss_fn(logits, y)

    def named_parameters(self) -> dict[str, Tensor]:
        return {n: p.detach() for n, p in self.model.named_parameters()}

    def named_gradients(self) -> dict[str, Tensor]:
        return {n: p.grad for n, p in self.model.named_parameters()}


@dataclass
class EngineLearner(Learner):
    """The scratch autograd engine (scratch/engine.py): forward written by hand, backward recorded."""

    model: engine_nn.MLP
    loss_fn: object  # scratch.engine.cross_entropy or mse_loss: (Value, targets) -> Value
    optimizer: object  # a scratch optimizer, holding each parameter's .data and .grad buffer
    name: str = "engine"
    scheduler: object | None = None

    def loss_graph(self, x: Tensor, y: Tensor) -> engine.Value:
        """The forward pass, recorded: the loss as a Value whose graph reaches back to every parameter."""
        return self.loss_fn(self.model(engine.Value(x, name="x")), y)

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.zero_grad()  # .grad accumulates, as in torch
        loss = self.loss_graph(x, y)
        loss.backward()
        return loss.data

    def step(self) -> None:
        self.optimizer.step()

    def learning_rate(self) -> float:
        return self.optimizer.lr

    def logits(self, x: Tensor) -> Tensor:
        with engine.no_grad():
            return self.model(engine.Value(x)).data

    def loss_value(self, logits: Tensor, y: Tensor) -> Tensor:
        with engine.no_grad():
            return self.loss_fn(engine.Value(logits), y).data

    def named_parameters(self) -> dict[str, Tensor]:
        return {n: p.data for n, p in self.model.named_parameters()}

    def named_gradients(self) -> dict[str, Tensor]:
        return {n: p.grad for n, p in self.model.named_parameters()}


def model_kwargs(config: Config, input_size: int = 784, num_classes: int = 10) -> dict:
    return dict(input_size=input_size, hidden_sizes=config.hidden, activation=config.activation,
                num_classes=num_classes)


def layer_options(config: Config) -> dict:
    return dict(dropout=config.dropout, batch_norm=config.batch_norm)


def dropout_stream(config: Config) -> Tensor | None:
    """The starting state of the dropout masks' random stream (seeded from config.seed), or None without dropout."""
    return torch.Generator().manual_seed(config.seed).get_state() if config.dropout > 0 else None


def build_scratch(config: Config, **shape) -> ScratchLearner:
    torch.manual_seed(config.seed)
    model = scratch.MLP(**model_kwargs(config, **shape), **layer_options(config))
    model.to(device=config.device, dtype=config.torch_dtype)
    name, kwargs = optimizer_spec(config)
    optimizer = getattr(scratch.optim, name)(model.parameters(), model.gradients(), **kwargs)
    schedule = schedule_spec(config)
    scheduler = getattr(scratch.lr_scheduler, schedule[0])(optimizer, **schedule[1]) if schedule else None
    return ScratchLearner(model, scratch.LOSSES[config.loss](), optimizer, scheduler=scheduler,
                          random_state=dropout_stream(config))


def build_torch(config: Config, **shape) -> TorchLearner:
    torch.manual_seed(config.seed)
    model = torch_impl.MLP(**model_kwargs(config, **shape), **layer_options(config))
    model.to(device=config.device, dtype=config.torch_dtype)
    name, kwargs = optimizer_spec(config)
    optimizer = getattr(torch_impl.optim, name)(model, **kwargs)
    schedule = schedule_spec(config)
    scheduler = getattr(torch_impl.lr_scheduler, schedule[0])(optimizer, **schedule[1]) if schedule else None
    return TorchLearner(model, torch_impl.LOSSES[config.loss](), optimizer, scheduler=scheduler,
                        random_state=dropout_stream(config))


def build_engine(config: Config, name: str = "engine", **shape) -> EngineLearner:
    """The MLP on the scratch autograd engine, from the same seed: starts bit-identical to the other two."""
    kwargs = model_kwargs(config, **shape)
    if kwargs["activation"] not in engine_nn.ACTIVATIONS:
        raise ValueError(f"the autograd engine has no {kwargs['activation']!r} activation; "
                         f"choose one of {', '.join(engine_nn.ACTIVATIONS)}, or --engine hand")
    if config.dropout > 0 or config.batch_norm:
        raise ValueError("the autograd engine's MLP has no dropout or batch norm layers; "
                         "leave out --dropout/--batch-norm, or use --engine hand")
    torch.manual_seed(config.seed)
    model = engine_nn.MLP(**kwargs).to(device=config.device, dtype=config.torch_dtype)
    params = model.parameters()
    # The scratch optimizers take parameter and gradient tensors: hand over each Value's
    # .data and its persistent .grad buffer, which backward() fills in place.
    opt_name, opt_kwargs = optimizer_spec(config)
    optimizer = getattr(scratch.optim, opt_name)([p.data for p in params], [p.grad for p in params], **opt_kwargs)
    schedule = schedule_spec(config)
    scheduler = getattr(scratch.lr_scheduler, schedule[0])(optimizer, **schedule[1]) if schedule else None
    return EngineLearner(model, engine.LOSSES[config.loss], optimizer, name=name, scheduler=scheduler)


def build_pair(config: Config, **shape) -> tuple[Learner, Learner]:
    """Both implementations from one seed: parameters bit-identical (checked by `identical_start`).

    With `--engine autograd` (config.extra["engine"]) the scratch side is the autograd engine,
    still called "scratch" in the tables: it lives in scratch/ and only its backward differs.
    """
    if config.extra.get("engine", "hand") == "autograd":
        return build_engine(config, name="scratch", **shape), build_torch(config, **shape)
    return build_scratch(config, **shape), build_torch(config, **shape)


def parameter_mismatches(a: Learner, b: Learner) -> list[str]:
    """Names of parameters that are not bit-identical (or missing on one side); empty when equal."""
    pa, pb = a.named_parameters(), b.named_parameters()
    names = sorted(set(pa) | set(pb))
    return [n for n in names if n not in pa or n not in pb or not torch.equal(pa[n], pb[n])]


def max_parameter_difference(a: Learner, b: Learner) -> tuple[str, float]:
    pb = b.named_parameters()
    diffs = {n: (p - pb[n]).abs().max().item() for n, p in a.named_parameters().items()}
    worst = max(diffs, key=diffs.get)
    return worst, diffs[worst]
