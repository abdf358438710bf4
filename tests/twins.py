"""One helper that checks a scratch layer against torch, forward and backward, two independent ways.

The layer is driven with a random upstream gradient `dout` through the fake loss
L = sum(out * dout), so every output element matters (a plain `.sum()` would hide
errors in layers whose outputs sum to a constant). Then:

- finite differences (float64): dL/dx and dL/dparam by central differences, vs the layer's backward;
- torch.autograd: the torch twin's gradients of the same L, vs the layer's backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from compare import agreement
from compare.gradcheck import finite_difference, finite_difference_error


def scratch_forward_backward(layer, x: Tensor, dout: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    out = layer.forward(x)
    dx = layer.backward(dout)
    return out, dx, {name: g.clone() for name, g in layer.named_gradients()}


def torch_forward_backward(module: torch.nn.Module, x: Tensor, dout: Tensor):
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    (out * dout).sum().backward()
    return out.detach(), x.grad, {name: p.grad for name, p in module.named_parameters()}


def copy_parameters(layer, module: torch.nn.Module) -> torch.nn.Module:
    """Give the torch twin the scratch layer's parameter values (same names, same shapes)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(dict(layer.named_parameters())[name])
    return module


def copy_state(layer, module: torch.nn.Module) -> torch.nn.Module:
    """Parameters and buffers (batch norm's running statistics) from the scratch layer into its torch twin."""
    copy_parameters(layer, module)
    with torch.no_grad():
        for name, b in module.named_buffers():
            b.copy_(dict(layer.named_buffers())[name])
    return module


def check_against_autograd(layer, module: torch.nn.Module, x: Tensor, dout: Tensor) -> None:
    tol = agreement.gradient_tolerance(x.dtype)
    out_s, dx_s, grads_s = scratch_forward_backward(layer, x, dout)
    out_t, dx_t, grads_t = torch_forward_backward(module, x, dout)
    agreement.assert_agree("forward output", out_s, out_t, tol)
    agreement.assert_agree("dx", dx_s, dx_t, tol)
    assert set(grads_s) == set(grads_t), f"parameter names differ: {sorted(grads_s)} vs {sorted(grads_t)}"
    for name in grads_s:
        agreement.assert_agree(f"d{name}", grads_s[name], grads_t[name], tol)


def check_finite_differences(layer, x: Tensor, dout: Tensor) -> None:
    """Every coordinate of x and of each parameter, in float64."""
    assert x.dtype == torch.float64
    _, dx, grads = scratch_forward_backward(layer, x, dout)

    def fake_loss() -> float:
        return (layer.forward(x) * dout).sum().item()

    targets: dict[str, tuple[Tensor, Tensor]] = {"x": (x, dx)}
    targets.update({name: (p, grads[name]) for name, p in layer.named_parameters()})
    tol = agreement.FINITE_DIFF_FLOAT64
    for name, (tensor, analytic) in targets.items():
        coords = torch.arange(tensor.numel())
        numeric = finite_difference(fake_loss, tensor, coords)
        error = finite_difference_error(numeric, analytic, coords)
        assert error <= tol.rtol, f"{name}: finite-difference relative error {error:.3e} > {tol.describe()}"


def assert_identical_init(make_scratch, make_torch, seed: int = 7) -> None:
    """Same names in the same order, bit-identical values, and the same number of random draws."""
    torch.manual_seed(seed)
    ours = dict(make_scratch().named_parameters())
    after_ours = torch.rand(3)
    torch.manual_seed(seed)
    theirs = dict(make_torch().named_parameters())
    after_theirs = torch.rand(3)
    assert list(ours) == list(theirs)
    for name, p in theirs.items():
        assert torch.equal(ours[name], p.detach()), f"{name} differs at initialization"
    assert torch.equal(after_ours, after_theirs), "the two constructors drew a different number of random values"


def away_from_zero(shape: tuple[int, ...], dtype: torch.dtype, margin: float = 0.05) -> Tensor:
    """Random inputs with |x| >= margin, so a finite-difference nudge never crosses a kink at 0."""
    x = torch.randn(shape, dtype=dtype)
    return x + margin * torch.sign(x)


InputMaker = Callable[[tuple[int, ...], torch.dtype], Tensor]
