"""Scratch optimizers and learning-rate schedules against torch.optim, fed the same gradients.

    pytest tests/test_optim.py -q

The main check: both sides start from the same parameters, receive the same sequence of
1000 gradients, and their parameters must agree after every step (float64 within 1e-12
relative, float32 at assert_close's defaults: compare/base/agreement.py's TRAJECTORY_*).
Then the two weight-decay facts the README states: an L2 term in the loss is SGD's weight
decay, and Adam's L2 weight decay is not AdamW's decoupled one.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import scratch.lr_scheduler
import scratch.optim
import torch_impl.lr_scheduler
import torch_impl.optim
from compare.base.agreement import TRAJECTORY_FLOAT32, TRAJECTORY_FLOAT64, assert_agree, compare

STEPS = 1000
SHAPES = [(7, 5), (5,), (3,)]

OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd-weight-decay": ("SGD", dict(lr=0.1, weight_decay=0.01)),
    "momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "momentum-dampening-decay": ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=1e-3)),
    "nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "adam": ("Adam", dict(lr=1e-2)),
    "adam-l2": ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
}
SCHEDULES = {
    "step": ("StepLR", dict(step_size=300, gamma=0.5)),
    "cosine": ("CosineAnnealingLR", dict(T_max=400, eta_min=1e-4)),  # 1000 steps: down, back up, down
}


def gradient_sequence(steps: int, dtype: torch.dtype, seed: int = 1) -> list[list[torch.Tensor]]:
    """Gradients of widely varying size, some entries exactly zero, as a network's would be."""
    g = torch.Generator().manual_seed(seed)
    total = sum(torch.Size(shape).numel() for shape in SHAPES)
    scale = 10 ** (4 * torch.rand(steps, 1, generator=g, dtype=torch.float64) - 3)  # 1e-3 .. 10
    values = torch.randn(steps, total, generator=g, dtype=torch.float64) * scale
    values[torch.rand(steps, total, generator=g) < 0.1] = 0  # a dead ReLU's gradient
    values = values.to(dtype)
    sizes = [torch.Size(shape).numel() for shape in SHAPES]
    return [[part.view(shape) for part, shape in zip(row.split(sizes), SHAPES, strict=True)] for row in values]


def run_both(name: str, kwargs: dict, dtype: torch.dtype, schedule: tuple[str, dict] | None = None,
             steps: int = STEPS) -> tuple[torch.Tensor, torch.Tensor, list[float], list[float]]:
    """Both optimizers from the same start on the same gradients: parameters after every step
    ([steps + 1, all values], flattened; row 0 is the start) and learning rates, scratch then torch."""
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for shape in SHAPES]
    params = [p.clone() for p in start]
    grads = [torch.zeros_like(p) for p in start]
    opt_s = getattr(scratch.optim, name)(params, grads, **kwargs)
    module = nn.ParameterList([nn.Parameter(p.clone()) for p in start])
    opt_t = getattr(torch_impl.optim, name)(module, **kwargs)
    sched_s = sched_t = None
    if schedule is not None:
        sched_s = getattr(scratch.lr_scheduler, schedule[0])(opt_s, **schedule[1])
        sched_t = getattr(torch_impl.lr_scheduler, schedule[0])(opt_t, **schedule[1])
    traj_s, traj_t = [torch.cat([p.flatten() for p in start])], [torch.cat([p.flatten() for p in start])]
    lrs_s, lrs_t = [opt_s.lr], [opt_t.param_groups[0]["lr"]]
    for sequence in gradient_sequence(steps, dtype):
        for buffer, p, gradient in zip(grads, module, sequence, strict=True):
            buffer.copy_(gradient)  # the scratch layer's backward writes into its buffer ...
            p.grad = gradient.clone()  # ... autograd into .grad
        opt_s.step()
        opt_t.step()
        if schedule is not None:
            sched_s.step()
            sched_t.step()
        traj_s.append(torch.cat([p.flatten() for p in params]))
        traj_t.append(torch.cat([p.detach().flatten() for p in module]))
        lrs_s.append(opt_s.lr)
        lrs_t.append(opt_t.param_groups[0]["lr"])
    return torch.stack(traj_s), torch.stack(traj_t), lrs_s, lrs_t


def assert_same_trajectory(name: str, kwargs: dict, dtype: torch.dtype, schedule=None) -> None:
    """Parameters agree after every one of the STEPS steps, each step judged on its own scale."""
    tol = TRAJECTORY_FLOAT64 if dtype == torch.float64 else TRAJECTORY_FLOAT32
    traj_s, traj_t, lrs_s, lrs_t = run_both(name, kwargs, dtype, schedule)
    # The rule of agreement.compare, applied to all steps at once; compare() then explains a failure.
    diff = (traj_s.double() - traj_t.double()).abs()
    if tol.scale == "tensor":
        allowed = tol.rtol * traj_t.double().abs().amax(dim=1, keepdim=True)
    else:
        allowed = tol.atol + tol.rtol * traj_t.double().abs()
    bad_steps = (diff > allowed).any(dim=1).nonzero().flatten().tolist()
    if bad_steps:
        step = bad_steps[0]
        raise AssertionError(compare(f"parameters after step {step}", traj_s[step], traj_t[step], tol).message)
    assert_agree("learning rates, step by step", torch.tensor(lrs_s, dtype=torch.float64),
                 torch.tensor(lrs_t, dtype=torch.float64), TRAJECTORY_FLOAT64)
    assert len(traj_s) == STEPS + 1
    # Guard against a vacuous pass: the parameters really travelled.
    assert (traj_t[-1] - traj_t[0]).abs().max() > 0.1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_same_gradients_give_the_same_trajectory(case, dtype):
    assert_same_trajectory(*OPTIMIZERS[case], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("case", ["nesterov", "adamw"])
def test_trajectories_agree_under_a_schedule(case, schedule, dtype):
    assert_same_trajectory(*OPTIMIZERS[case], dtype, SCHEDULES[schedule])


def test_first_momentum_buffer_is_the_gradient_itself():
    """torch starts the momentum buffer at g, not (1 - dampening) g; dampening applies from step 2 on."""
    name, kwargs = "SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)
    g1, g2 = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 0.25], dtype=torch.float64)
    p, buffer = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    opt = getattr(scratch.optim, name)([p], [buffer], **kwargs)
    module = nn.ParameterList([nn.Parameter(torch.zeros(2, dtype=torch.float64))])
    opt_t = getattr(torch_impl.optim, name)(module, **kwargs)
    for g, expected in [(g1, g1), (g2, 0.9 * g1 + 0.5 * g2)]:
        buffer.copy_(g)
        module[0].grad = g.clone()
        opt.step()
        opt_t.step()
        assert_agree("momentum buffer", opt.momentum_buffers[0], expected, TRAJECTORY_FLOAT64)
        assert_agree("momentum buffer vs torch", opt.momentum_buffers[0],
                     opt_t.state[module[0]]["momentum_buffer"], TRAJECTORY_FLOAT64)


@pytest.mark.parametrize("schedule", [("StepLR", dict(step_size=3, gamma=0.5)),
                                      ("StepLR", dict(step_size=1, gamma=0.9)),
                                      ("CosineAnnealingLR", dict(T_max=10)),
                                      ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01))],
                         ids=["step-3", "step-1", "cosine-10", "cosine-7-eta"])
def test_schedules_match_torch_for_50_epochs(schedule):
    opt_s = scratch.optim.SGD([torch.zeros(1)], [torch.zeros(1)], lr=0.1)
    opt_t = torch_impl.optim.SGD(nn.ParameterList([nn.Parameter(torch.zeros(1))]), lr=0.1)
    sched_s = getattr(scratch.lr_scheduler, schedule[0])(opt_s, **schedule[1])
    sched_t = getattr(torch_impl.lr_scheduler, schedule[0])(opt_t, **schedule[1])
    lrs_s, lrs_t = [opt_s.lr], [opt_t.param_groups[0]["lr"]]
    for _ in range(50):
        opt_t.step()  # torch warns if a schedule steps before its optimizer ever did
        sched_s.step()
        sched_t.step()
        lrs_s.append(opt_s.lr)
        lrs_t.append(opt_t.param_groups[0]["lr"])
    assert lrs_s == lrs_t  # the same float operations: equal to the last bit


def test_schedules_follow_their_closed_forms():
    import math

    opt = scratch.optim.SGD([torch.zeros(1)], [torch.zeros(1)], lr=0.1)
    cosine = scratch.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    for e in range(1, 11):
        cosine.step()
        assert opt.lr == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * e / 10)) / 2, rel=1e-12, abs=1e-15)
    opt.lr = 0.1
    step = scratch.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    for e in range(1, 13):
        step.step()
        assert opt.lr == pytest.approx(0.1 * 0.5 ** (e // 4), rel=1e-12)


# --- weight decay: L2 in the loss vs in the optimizer ---------------------------------------

def l2_loss_gradient(g: torch.Tensor, p: torch.Tensor, wd: float) -> torch.Tensor:
    """The gradient of  loss + (wd / 2) * |p|^2,  written out: the loss gradient plus wd * p."""
    return g + wd * p


@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.05, momentum=0.9),
                                    dict(lr=0.05, momentum=0.9, nesterov=True)],
                         ids=["sgd", "momentum", "nesterov"])
def test_l2_term_in_the_loss_is_sgd_weight_decay(kwargs):
    wd = 0.01
    p0 = torch.randn(20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p_decay, p_l2 = p0.clone(), p0.clone()
    g_decay, g_l2 = torch.zeros(20, dtype=torch.float64), torch.zeros(20, dtype=torch.float64)
    opt_decay = scratch.optim.SGD([p_decay], [g_decay], weight_decay=wd, **kwargs)
    opt_l2 = scratch.optim.SGD([p_l2], [g_l2], **kwargs)  # no weight decay: the L2 term is in the loss
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        g = torch.randn(20, dtype=torch.float64, generator=gen)
        g_decay.copy_(g)
        g_l2.copy_(l2_loss_gradient(g, p_l2, wd))
        opt_decay.step()
        opt_l2.step()
        assert_agree("SGD weight decay vs L2 in the loss", p_decay, p_l2, TRAJECTORY_FLOAT64)
    assert (p_decay - p0).abs().max() > 0.1


def adam_steps(optimizer: str, wd: float, p0: torch.Tensor, grads: list[torch.Tensor], l2_in_loss: bool = False):
    p, buffer = p0.clone(), torch.zeros_like(p0)
    opt = getattr(scratch.optim, optimizer)([p], [buffer], lr=1e-2, weight_decay=0.0 if l2_in_loss else wd)
    for g in grads:
        buffer.copy_(l2_loss_gradient(g, p, wd) if l2_in_loss else g)
        opt.step()
    return p


def test_adam_l2_is_l2_in_the_loss_but_adamw_is_not():
    wd = 0.1
    gen = torch.Generator().manual_seed(3)
    p0 = torch.ones(2, dtype=torch.float64)
    # Coordinate 0 has large, noisy gradients; coordinate 1 has none at all.
    grads = [torch.tensor([10.0 * torch.randn((), generator=gen).item(), 0.0], dtype=torch.float64) for _ in range(20)]
    no_decay = adam_steps("Adam", 0.0, p0, grads)
    adam_l2 = adam_steps("Adam", wd, p0, grads)
    # Adam's weight_decay is exactly an L2 term in the loss ...
    assert_agree("Adam weight decay vs L2 in the loss", adam_l2, adam_steps("Adam", wd, p0, grads, l2_in_loss=True),
                 TRAJECTORY_FLOAT64)
    adamw = adam_steps("AdamW", wd, p0, grads)
    # ... but AdamW's is not: it shrinks every weight by the same factor (1 - lr * wd) per step,
    # outside the moments, whatever the gradients did.
    expected_adamw_shrink = 1 - (1 - 1e-2 * wd) ** 20  # p0 = 1, twenty steps
    assert adamw[1] == pytest.approx(1 - expected_adamw_shrink, rel=1e-12)  # no gradient: pure decay
    decay_adamw = no_decay - adamw  # what the weight decay changed, per coordinate
    decay_adam_l2 = no_decay - adam_l2
    assert decay_adamw[0].item() == pytest.approx(decay_adamw[1].item(), rel=0.2)  # ~equal: decoupled
    # With L2, wd * p goes through Adam's normalization: where the gradient is zero, wd * p / sqrt(v_hat)
    # is ~1, so the weight moves lr per step (20x stronger than lr * wd); where the gradient is large,
    # the same term is drowned out and hardly decays the weight at all.
    assert decay_adam_l2[1] > 5 * decay_adamw[1]
    assert decay_adam_l2[1] > 20 * abs(decay_adam_l2[0])


def test_optimizers_reject_bad_settings():
    p, g = [torch.zeros(2)], [torch.zeros(2)]
    with pytest.raises(ValueError, match="learning rate must be positive"):
        scratch.optim.SGD(p, g, lr=0)
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0"):
        scratch.optim.SGD(p, g, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="same shape"):
        scratch.optim.Adam(p, [torch.zeros(3)])
    with pytest.raises(ValueError, match="0 <= betas < 1"):
        scratch.optim.Adam(p, g, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="T_max >= 1"):
        scratch.lr_scheduler.CosineAnnealingLR(scratch.optim.SGD(p, g, lr=0.1), T_max=0)
