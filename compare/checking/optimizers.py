"""`check_optimizer`: a hand-written optimizer against its torch.optim twin, step by step.

    >>> from compare.checking.optimizers import check_optimizer
    >>> check_optimizer("scratch.optim:Adam", kwargs=dict(lr=1e-2, weight_decay=0.1)).passed
    True

An optimizer has no backward to differentiate: what it must get right is the update. Both start
from the same parameters and receive the same random gradients (of widely varying size, as a
network's are); after every step the parameters must agree within `agreement.TRAJECTORY_FLOAT64`.
Three steps, not one: on the first step a momentum buffer is the gradient itself and Adam's bias
corrections are at their largest, so bugs in how state accumulates show from the second step on.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence

import torch

from compare.base import agreement
from compare.checking.results import CheckResult, TensorComparison, compare_tensors, worst_of
from compare.checking.targets import TargetError, describe, is_optimizer, resolve, twin_of

DEFAULT_STEPS = 3
FLOAT32_NOTE = ("float32 was asked for; the check ran in float64 anyway, where the two updates must agree to 1e-12 "
                "instead of to float32's rounding; force_dtype (--force-dtype) compares them in float32")
DEFAULT_SHAPES = {"weight": (7, 5), "bias": (5,)}


def check_optimizer(target: object, *, kwargs: dict | None = None, shapes: dict[str, Sequence[int]] | None = None,
                    steps: int = DEFAULT_STEPS, seeds: int | Sequence[int] = 3, seed: int = 0,
                    reference: object = None, dtype: str = "float64", force_dtype: bool = False) -> CheckResult:
    """Parameters after each of `steps` steps of `target` (a scratch-style optimizer class, or its
    `package.module:Name`: Opt(params, grads, **kwargs), grads read at each step) against `reference`
    (default: its torch.optim twin, built with the same kwargs and foreach=False). In float64 unless
    float32 is forced, as check_backward."""
    start = time.perf_counter()
    kwargs = dict(kwargs or {})
    cls = resolve(target) if isinstance(target, str) else target
    ref = resolve(reference) if isinstance(reference, str) else reference
    ref = ref if ref is not None else twin_of(cls)
    if not is_optimizer(cls):
        raise TargetError(f"{describe(cls)} is not an optimizer class")
    if ref is None:
        raise TargetError(f"{describe(cls)} has no torch.optim twin; pass reference=")
    shapes = dict(shapes or DEFAULT_SHAPES)
    used = dtype if force_dtype else "float64"
    torch_dtype = getattr(torch, used)
    tol = agreement.TRAJECTORY_FLOAT64 if torch_dtype == torch.float64 else agreement.TRAJECTORY_FLOAT32
    seed_list = list(range(seed, seed + seeds)) if isinstance(seeds, int) else list(seeds)
    call = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    notes = [FLOAT32_NOTE] if dtype == "float32" and not force_dtype else []
    result = CheckResult(f"{describe(cls)}({call})", "optimizer", describe(ref), dtype, used, "full", None, None,
                         seed_list, None, notes)
    against = f"{describe(ref)} ({steps} steps)"
    for s in seed_list:
        result.comparisons += _check_seed(cls, ref, kwargs, shapes, steps, s, torch_dtype, tol, against)
    result.seconds = time.perf_counter() - start
    return result


def _check_seed(cls: type, ref: type, kwargs: dict, shapes: dict[str, Sequence[int]], steps: int, seed: int,
                dtype: torch.dtype, tol: agreement.Tolerance, against: str) -> list[TensorComparison]:
    generator = torch.Generator().manual_seed(seed)
    start = {n: torch.randn(tuple(s), generator=generator, dtype=torch.float64).to(dtype) for n, s in shapes.items()}
    ours = [p.clone() for p in start.values()]
    grads = [torch.zeros_like(p) for p in ours]
    theirs = [p.clone().requires_grad_(True) for p in start.values()]
    optimizer = cls(ours, grads, **kwargs)
    extra = {"foreach": False} if "foreach" in inspect.signature(ref).parameters else {}
    reference = ref(theirs, **kwargs, **extra)  # foreach=False: torch's per-tensor code path, the same arithmetic
    worst: dict[str, TensorComparison] = {}
    for step in range(1, steps + 1):
        scale = 10 ** (4 * torch.rand((), generator=generator, dtype=torch.float64).item() - 3)  # 1e-3 .. 10
        for g, p in zip(grads, theirs, strict=True):
            g.copy_((torch.randn(g.shape, generator=generator, dtype=torch.float64) * scale).to(dtype))
            p.grad = g.clone()
        optimizer.step()
        reference.step()
        for name, a, e in zip(start, ours, theirs, strict=True):
            c = compare_tensors(name, against, seed, a, e.detach(), tol)
            if not c.passed:
                c.message = f"after step {step}: {c.message}"
            worst[name] = c if name not in worst else worst_of([worst[name], c])
    return list(worst.values())

