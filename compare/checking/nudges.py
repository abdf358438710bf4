"""How the checker moves what it differentiates: parameters moved at random first, the random linear layer in
front of the input, and the nudges of finite differences (one coordinate, or a whole tensor along a direction)
of a tensor the target reads in place or of the input behind the layer in front (compare/checking/backward.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from compare.checking import finite_diff

PARAMETER_NUDGE = 0.5  # each parameter moved by N(0, (0.5 * its rms)^2) before the check (rms 0: N(0, 0.5^2))


def parameters(params: dict[str, Tensor], generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in params.values():
            if p.is_floating_point() and p.numel():
                rms = p.double().square().mean().sqrt().item()
                noise = torch.randn(p.shape, generator=generator).double() * PARAMETER_NUDGE
                p.add_((noise * (rms if rms > 0 else 1.0)).to(p.dtype))


def front_matrix(x0: Tensor, generator: torch.Generator) -> Tensor:
    """A random [F, F] matrix, entries N(0, 1/F): the layer's input keeps about the size of x0."""
    features = x0.shape[-1]
    m = torch.randn(features, features, generator=generator, dtype=torch.float64) / math.sqrt(features)
    return m.to(x0.dtype)


def in_place(tensor: Tensor, run_now: Callable[[], Tensor]) -> tuple[finite_diff.Nudge,
                                                                              finite_diff.NudgeAlong]:
    """Nudges of a tensor the target reads directly (a parameter, or an input with nothing in front)."""
    # A NumPy view of the same memory: reading and writing one element costs ~0.1 us instead of ~3 us.
    flat = tensor.detach().view(-1).numpy() if tensor.device.type == "cpu" else tensor.detach().view(-1)

    def nudge(i: int, step: float) -> tuple[Tensor, float]:
        original = float(flat[i])
        flat[i] = original + step
        taken = float(flat[i]) - original  # the step after rounding to the tensor's dtype
        try:
            return run_now(), taken
        finally:
            flat[i] = original

    def along(v: Tensor, step: float) -> Tensor:
        saved = tensor.clone()
        tensor.add_(v.view(tensor.shape).to(tensor.dtype), alpha=step)
        try:
            return run_now()
        finally:
            tensor.copy_(saved)

    return nudge, along


def through_front(first: Tensor, front: Tensor, run: Callable[[Tensor], Tensor]) -> tuple[finite_diff.Nudge,
                                                                                           finite_diff.NudgeAlong]:
    """Nudges of x0, the input of the layer in front: x0[r, j] += step moves row r of x0 M by step * M[j]."""
    features = front.shape[0]
    rows = first.view(-1, features)

    def nudge(i: int, step: float) -> tuple[Tensor, float]:
        r, j = divmod(i, features)
        saved = rows[r].clone()
        rows[r] += step * front[j]
        try:
            return run(first), step
        finally:
            rows[r] = saved

    last: list[Tensor] = []  # [v, v M] of the direction in hand: each is taken twice, +h and -h

    def along(v: Tensor, step: float) -> Tensor:
        if not last or last[0] is not v:  # holding v keeps its identity from being reused
            last[:] = [v, v.view(first.shape).to(first.dtype) @ front]
        return run(first + step * last[1])

    return nudge, along
