"""What a Config gives each side of a comparison besides the learner itself: the model drawn from the seed, the
optimizer and its learning-rate schedule, the L1/L2 penalty, the dropout masks' random stream.

    >>> optimizer, scheduler = scratch_optimizer(config, model.parameters(), model.gradients())
    >>> penalty = torch_penalty(config, model)          # None without --l1 / --l2

compare/training/learners.py builds its learners from these; the sharded and tensor-parallel learners of
compare/distributed/ take the optimizers for their shards of the parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

import scratch.lr_scheduler
import scratch.optim
import scratch.regularization
import torch_impl.lr_scheduler
import torch_impl.optim
import torch_impl.regularization
from compare import models
from compare.training.config import Config
from compare.training.optimizers import optimizer_spec, schedule_spec


def dropout_stream(config: Config) -> Tensor | None:
    """The starting state of the dropout masks' random stream (seeded from config.seed), or None without dropout."""
    return torch.Generator().manual_seed(config.seed).get_state() if config.model.get("dropout", 0.0) > 0 else None


def model_from_seed(config: Config, impl: str, input_size: int, num_classes: int):
    """The `impl` variant of config.model from config.seed, moved to config's device and dtype."""
    torch.manual_seed(config.seed)
    return models.build(config.model, impl, input_size, num_classes).to(device=config.device, dtype=config.torch_dtype)


def input_shape(config: Config, input_size: int) -> tuple[int, ...]:
    return tuple(models.family_of(config.model).input_shape(config.model, input_size))


def _scheduler(module, optimizer, config: Config):
    schedule = schedule_spec(config)
    return getattr(module, schedule[0])(optimizer, **schedule[1]) if schedule else None


def scratch_penalty(config: Config, named_parameters, named_gradients) -> scratch.regularization.Penalty | None:
    """config's L1/L2 penalty over these parameters and their gradient buffers, by hand (None without one)."""
    return scratch.regularization.Penalty(named_parameters, named_gradients, config.l1, config.l2) \
        if config.l1 or config.l2 else None


def torch_penalty(config: Config, model: torch.nn.Module) -> torch_impl.regularization.Penalty | None:
    """config's L1/L2 penalty over the model's weights, a term of the loss for autograd (None without one)."""
    return torch_impl.regularization.Penalty(model, config.l1, config.l2) if config.l1 or config.l2 else None


def scratch_optimizer(config: Config, params: list[Tensor], grads: list[Tensor]) -> tuple[object, object | None]:
    """config's scratch optimizer over these parameter and gradient tensors, and its learning-rate schedule (or
    None): what build_scratch gives a model, and a sharded learner its shard of the flat parameters."""
    name, kwargs = optimizer_spec(config)
    optimizer = getattr(scratch.optim, name)(params, grads, **kwargs)
    return optimizer, _scheduler(scratch.lr_scheduler, optimizer, config)


def torch_optimizer(config: Config, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, object | None]:
    """config's torch optimizer over the model's parameters (plain, or sharded by fully_shard / parallelize_module,
    built after them), and its learning-rate schedule (or None)."""
    name, kwargs = optimizer_spec(config)
    optimizer = getattr(torch_impl.optim, name)(model, **kwargs)
    return optimizer, torch_schedule(config, optimizer)


def torch_schedule(config: Config, optimizer: torch.optim.Optimizer) -> object | None:
    """config's learning-rate schedule over a torch optimizer (ZeroRedundancyOptimizer included), or None."""
    return _scheduler(torch_impl.lr_scheduler, optimizer, config)
