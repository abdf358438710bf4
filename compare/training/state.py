"""A learner's whole training state in one neutral form, so it can be copied from one implementation to another.

    state = scratch_learner.export_state()     # parameters, buffers, optimizer state, lr, random stream
    torch_learner.import_state(state)          # now both would take the same next step

Names follow PyTorch: parameters and buffers by their state-dict keys, optimizer state by
torch.optim's keys ("momentum_buffer", "exp_avg", "exp_avg_sq") per parameter name, plus Adam's
step count. The re-synchronized checks of a training run (compare/training/resync.py) use this to put both
implementations in the same state and compare one step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

import scratch.optim


@dataclass
class TrainingState:
    parameters: dict[str, Tensor]
    buffers: dict[str, Tensor]
    optimizer: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # parameter name -> torch's keys
    step: int = 0  # Adam's step count (0 for SGD)
    lr: float = 0.0
    random_state: Tensor | None = None  # the dropout masks' random stream


# --- the scratch optimizers (scratch/optim.py): per-parameter lists in parameter order -------------------

def scratch_optimizer_state(optimizer: scratch.optim.Optimizer, names: list[str]) -> tuple[dict, int]:
    state: dict[str, dict[str, Tensor]] = {name: {} for name in names}
    if isinstance(optimizer, scratch.optim.SGD):
        for name, buffer in zip(names, optimizer.momentum_buffers, strict=True):
            if buffer is not None:
                state[name]["momentum_buffer"] = buffer.clone()
        return state, 0
    if isinstance(optimizer, scratch.optim.Adam):
        for name, m, v in zip(names, optimizer.exp_avgs, optimizer.exp_avg_sqs, strict=True):
            state[name].update(exp_avg=m.clone(), exp_avg_sq=v.clone())
        return state, optimizer.t
    raise TypeError(f"no state mapping for the scratch optimizer {type(optimizer).__name__}")


def load_scratch_optimizer_state(optimizer: scratch.optim.Optimizer, names: list[str], state: TrainingState) -> None:
    optimizer.lr = state.lr
    if isinstance(optimizer, scratch.optim.SGD):
        optimizer.momentum_buffers = [state.optimizer[n]["momentum_buffer"].clone()
                                      if "momentum_buffer" in state.optimizer[n] else None for n in names]
        return
    if isinstance(optimizer, scratch.optim.Adam):
        for name, m, v in zip(names, optimizer.exp_avgs, optimizer.exp_avg_sqs, strict=True):
            m.copy_(state.optimizer[name]["exp_avg"])
            v.copy_(state.optimizer[name]["exp_avg_sq"])
        optimizer.t = state.step
        return
    raise TypeError(f"no state mapping for the scratch optimizer {type(optimizer).__name__}")


# --- torch.optim: a dict per parameter tensor ----------------------------------------------------------

def torch_optimizer_state(optimizer: torch.optim.Optimizer, named: dict[str, Tensor]) -> tuple[dict, int]:
    state, step = {}, 0
    for name, p in named.items():
        own = optimizer.state.get(p, {})
        state[name] = {k: v.detach().clone() for k, v in own.items() if k != "step"}
        if "step" in own:
            step = int(own["step"])
    return state, step


def load_torch_optimizer_state(optimizer: torch.optim.Optimizer, named: dict[str, Tensor],
                               state: TrainingState) -> None:
    for group in optimizer.param_groups:
        group["lr"] = state.lr
    for name, p in named.items():
        own = {k: v.clone() for k, v in state.optimizer[name].items()}
        if "exp_avg" in own:  # Adam and AdamW count their steps per parameter, in a float32 CPU tensor
            own["step"] = torch.tensor(float(state.step), dtype=torch.float32)
        optimizer.state[p] = own
