"""Dropout written by hand: during training, silence each neuron at random so none can rely on another.

    >>> drop = Dropout(p=0.2)
    >>> h = drop(h)            # training: ~20% of entries zeroed, the rest scaled by 1/0.8
    >>> drop.eval(); drop(h)   # evaluation: h unchanged

How the comparison with PyTorch's `nn.Dropout` gets the same mask: on the CPU, nn.Dropout
draws its mask with `empty_like(x).bernoulli_(1 - p)` from torch's global random
generator and then divides it by 1 - p. This layer makes exactly those two calls, so from
the same generator state both draw the same mask. The lockstep loop gives each network
its own copy of one seeded random stream (compare/training/learners.py), so every step both see
identical masks. (On CUDA, torch uses a fused kernel with other random draws, so the
masks would differ; the comparison commands refuse --dropout on CUDA.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.module import Module


class Dropout(Module):
    """Inverted dropout with drop probability p (as PyTorch's `nn.Dropout`).

    forward (training):    mask_i = keep_i / (1 - p),  keep_i ~ Bernoulli(1 - p);   out = x * mask
    forward (evaluation):  out = x
    backward:              dx = dout * mask   (training),   dx = dout   (evaluation)
    Scaling the kept entries by 1/(1-p) keeps the expected value of each output equal to its
    input, so nothing needs rescaling at evaluation time ("inverted" dropout).
    cache: the scaled mask (None when the layer was the identity).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be between 0 and 1, got {p}")
        self.p = p
        self.mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            self.mask = None
            return x
        if self.p == 1:
            # Everything dropped; torch draws no random numbers here either.
            self.mask = x.new_zeros(())
        else:
            self.mask = torch.empty_like(x).bernoulli_(1 - self.p)  # B,H of 0s and 1s
            self.mask.div_(1 - self.p)  # B,H of 0s and 1/(1-p)s
        return x * self.mask  # B,H

    def backward(self, dout: Tensor) -> Tensor:
        return dout if self.mask is None else dout * self.mask  # B,H

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
