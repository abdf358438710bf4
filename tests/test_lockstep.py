"""Lockstep training on real MNIST: from identical parameters and batches, float64 runs agree to rounding."""

from __future__ import annotations

import math

import pytest
import torch

from compare.models import make_spec
from compare.training.config import Config
from compare.training.learners import build_pair, build_scratch, parameter_mismatches
from compare.training.loop import evaluate, train_lockstep


@pytest.mark.parametrize("activation,loss", [("relu", "cross-entropy"), ("tanh", "mse")])
def test_float64_lockstep_losses_equal_for_100_steps(mnist64, activation, loss):
    x, y = mnist64.x_train[:320], mnist64.y_train[:320]
    config = Config(dtype="float64", loss=loss, lr=0.05, seed=3, model=make_spec(activation=activation))
    s, t = build_pair(config)
    assert parameter_mismatches(s, t) == []
    records = train_lockstep([s, t], x, y, mnist64.x_test[:500], mnist64.y_test[:500],
                             epochs=10, batch_size=32, seed=3, progress=False)  # 10 x 10 = 100 steps
    ls, lt = records["scratch"].step_losses, records["torch"].step_losses
    assert len(ls) == len(lt) == 100
    worst = max(abs(a - b) / abs(b) for a, b in zip(ls, lt, strict=True))
    assert worst <= 1e-10, f"largest per-step relative loss difference {worst:.3e}"
    assert ls[-1] < ls[0]  # and it learned something
    assert torch.equal(records["scratch"].predictions, records["torch"].predictions)


def test_initial_cross_entropy_is_about_ln_10(mnist64):
    """Small random initial weights give near-uniform softmax outputs: loss ~ ln(10) = 2.303."""
    learner = build_scratch(Config(dtype="float64", seed=0))
    loss, _ = evaluate(learner, mnist64.x_test, mnist64.y_test)
    assert math.log(10) - 0.15 < loss < math.log(10) + 0.15


def test_fifty_images_are_learned_by_heart(mnist64):
    """Enough capacity and steps memorize a small training set: 100% training accuracy."""
    x, y = mnist64.x_train[:50], mnist64.y_train[:50]
    s, t = build_pair(Config(dtype="float64", lr=0.1, seed=0))
    train_lockstep([s, t], x, y, x, y, epochs=60, batch_size=10, seed=0, progress=False)
    for learner in (s, t):
        _, predictions = evaluate(learner, x, y)
        assert (predictions == y).all(), f"{learner.name}: {(predictions != y).sum().item()} of 50 still wrong"
