"""Training diagnostics (compare/training/diagnostics.py): dead and saturated units counted, update ratios measured, and
the pictures of `train --plots` drawn from them."""

from __future__ import annotations

import pytest
import torch

from compare.models import make_spec
from compare.training.config import Config
from compare.training.diagnostics import TrainingDiagnostics, hidden_activations, unhealthy_units
from compare.training.learners import build_pair
from compare.training.loop import train_lockstep


def test_dead_relus_and_saturated_units_are_counted():
    relu = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # unit 0 is 0 on every example: dead
    assert unhealthy_units("ReLU", relu) == (1, "dead")
    tanh = torch.tensor([[0.99, 0.1], [-0.995, 0.5], [0.98, 0.2]])  # unit 0 is saturated
    assert unhealthy_units("Tanh", tanh) == (1, "saturated")
    sigmoid = torch.tensor([[0.001, 0.5], [0.999, 0.4]])
    assert unhealthy_units("Sigmoid", sigmoid) == (1, "saturated")
    assert unhealthy_units("GELU", relu) == (0, "")


def tiny_run(activation: str = "relu", steps: int = 5):
    config = Config(model=make_spec(hidden=(8, 8), activation=activation), dtype="float64", lr=0.1,
                    lr_schedule="none")
    learners = build_pair(config, input_size=12, num_classes=3)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32 * steps, 12, dtype=torch.float64, generator=generator)
    y = torch.randint(0, 3, (32 * steps,), generator=generator)
    health = TrainingDiagnostics(learners, x[:50])
    train_lockstep(learners, x, y, x[:20], y[:20], epochs=1, batch_size=32, seed=0, progress=False,
                   before_step=lambda *a: health.before_step(), after_step=health.after_step)
    health.finish()
    return learners, health


def test_update_ratio_is_the_sgd_step_over_the_weights_and_equal_on_both_sides():
    learners, health = tiny_run()
    scratch_l, torch_l = learners
    assert set(health.update_ratios["scratch"]) == {"layers.0.weight", "layers.2.weight", "layers.4.weight"}
    for name, ratios in health.update_ratios["scratch"].items():
        assert len(ratios) == 5
        other = health.update_ratios["torch"][name]
        assert max(abs(a - b) / b for a, b in zip(ratios, other, strict=True)) < 1e-10
    # the last step of plain SGD: update = -lr * gradient, so the ratio is lr * std(grad) / std(weights before)
    w_after = scratch_l.named_parameters()["layers.0.weight"]
    grad = scratch_l.named_gradients()["layers.0.weight"]
    w_before = w_after + 0.1 * grad
    expected = (0.1 * grad).std() / w_before.std()
    assert health.update_ratios["scratch"]["layers.0.weight"][-1] == pytest.approx(expected.item(), rel=1e-9)


def test_activations_and_gradients_are_recorded_for_each_layer():
    learners, health = tiny_run("tanh")
    for side in ("scratch", "torch"):
        assert [h.name for h in health.final[side]] == ["layers.1", "layers.3"]
        assert [h.kind for h in health.initial[side]] == ["Tanh", "Tanh"]
        assert health.final[side][0].activations.numel() == 50 * 8
        assert set(health.gradients[side]) == {"layers.0.weight", "layers.2.weight", "layers.4.weight"}
    expected = hidden_activations(learners[1], torch.zeros(1, 12, dtype=torch.float64))[0][2]
    assert expected.shape == (1, 8)


def test_training_health_pictures(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib: pip install -e '.[plots]'")
    from compare.pictures.health import training_health

    _, health = tiny_run()
    paths = training_health(tmp_path, health, steps_per_epoch=5, title="tiny")
    assert [p.name for p in paths] == ["activations.png", "gradients.png", "update_ratio.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
