"""Optimizers for the torch twin: plain `torch.optim` (scratch/optim.py writes them by hand)."""

from __future__ import annotations

import torch
from torch import nn


def SGD(model: nn.Module, lr: float) -> torch.optim.Optimizer:  # noqa: N802 (mirrors scratch.optim.SGD)
    # foreach=False: the per-parameter loop, the same arithmetic order as the scratch update.
    return torch.optim.SGD(model.parameters(), lr=lr, foreach=False)
