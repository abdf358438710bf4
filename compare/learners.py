"""One interface over both implementations, so one training loop and one evaluation loop serve both.

A `Learner` bundles a model, its loss and its optimizer. Only `forward_backward` differs
between the two: the scratch learner calls its hand-written backward passes, the torch
learner calls `loss.backward()` (autograd).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

import scratch
import torch_impl
from compare.config import Config


class Learner:
    name: str

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

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.train()
        loss = self.loss_fn.forward(self.model.forward(x), y)
        self.model.backward(self.loss_fn.backward())
        return loss

    def step(self) -> None:
        self.optimizer.step()

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

    def forward_backward(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        return loss.detach()

    def step(self) -> None:
        self.optimizer.step()

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


def model_kwargs(config: Config, input_size: int = 784, num_classes: int = 10) -> dict:
    return dict(input_size=input_size, hidden_sizes=config.hidden, activation=config.activation,
                num_classes=num_classes)


def build_scratch(config: Config, **shape) -> ScratchLearner:
    torch.manual_seed(config.seed)
    model = scratch.MLP(**model_kwargs(config, **shape)).to(device=config.device, dtype=config.torch_dtype)
    optimizer = scratch.SGD(model.parameters(), model.gradients(), lr=config.lr)
    return ScratchLearner(model, scratch.LOSSES[config.loss](), optimizer)


def build_torch(config: Config, **shape) -> TorchLearner:
    torch.manual_seed(config.seed)
    model = torch_impl.MLP(**model_kwargs(config, **shape)).to(device=config.device, dtype=config.torch_dtype)
    return TorchLearner(model, torch_impl.LOSSES[config.loss](), torch_impl.SGD(model, lr=config.lr))


def build_pair(config: Config, **shape) -> tuple[Learner, Learner]:
    """Both implementations from one seed: parameters bit-identical (checked by `identical_start`)."""
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
