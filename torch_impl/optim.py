"""Optimizers for the torch twin: plain `torch.optim` (scratch/optim.py writes them by hand).

Each takes the model and the scratch optimizer's keyword arguments. foreach=False selects
torch's per-parameter loop, the same arithmetic, in the same order, as the scratch update.
"""

from __future__ import annotations

import torch
from torch import nn


class SGD(torch.optim.SGD):
    def __init__(self, model: nn.Module, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(model.parameters(), lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay, foreach=False)


class Adam(torch.optim.Adam):
    def __init__(self, model: nn.Module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)


class AdamW(torch.optim.AdamW):
    def __init__(self, model: nn.Module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
