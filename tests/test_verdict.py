"""The verdict judges the implementations (re-synchronized checks), in every training regime.

An unstable run of two correct implementations passes, naming where its trajectories separated;
a wrong backward or a wrong optimizer constant fails, in float32 and float64; a diverged run
still gives its report, with the step where each side diverged.
"""

from __future__ import annotations

import json

import pytest
import torch

import scratch.activations
import scratch.optim
from compare.base import agreement
from compare.cli import main
from compare.models import make_spec
from compare.training.config import Config
from compare.training.learners import build_pair
from compare.training.loop import train_lockstep
from compare.training.resync import ResyncMonitor, check_one_step
from compare.training.verdict import expected_drift, summary_line, training_behaviour, trajectory, verdict


def train(tiny_data_root, tmp_path, *args: str) -> tuple[int, dict]:
    path = tmp_path / "train.json"
    code = main(["train", "--data-root", str(tiny_data_root), "--hidden", "16", "--batch-size", "20",
                 "--report", str(path), *args])
    return code, json.loads(path.read_text())


RELU_BACKWARD = scratch.activations.ReLU.backward


def scaled_relu_backward(self, dout):
    """A gradient off by one part in 10,000: the kind of bug rounding could hide."""
    return RELU_BACKWARD(self, dout) * 1.0001


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_gradient_scaled_by_1_0001_fails(tiny_data_root, tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(scratch.activations.ReLU, "backward", scaled_relu_backward)
    code, report = train(tiny_data_root, tmp_path, "--dtype", dtype, "--epochs", "1")
    assert code == 1 and report["agreement"]["passed"] is False
    failed = [c for c in report["agreement"]["implementation"]["checks"] if not c["passed"]]
    assert failed and failed[0]["step"] == 1 and any("dlayers.0.weight" in f for f in failed[0]["failures"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_wrong_momentum_constant_fails(tiny_data_root, tmp_path, monkeypatch, dtype):
    """Momentum 0.9 in the options, 0.91 in the scratch update: visible from the second step on."""
    init = scratch.optim.SGD.__init__

    def off_by_a_hundredth(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.momentum += 0.01

    monkeypatch.setattr(scratch.optim.SGD, "__init__", off_by_a_hundredth)
    code, report = train(tiny_data_root, tmp_path, "--dtype", dtype, "--epochs", "2", "--optimizer", "momentum",
                         "--lr", "0.01")
    assert code == 1
    failed = [c for c in report["agreement"]["implementation"]["checks"] if not c["passed"]]
    assert failed and all("after the update" in f for f in failed[0]["failures"])


def test_correct_implementations_pass_in_float32_and_report_both_parts(tiny_data_root, tmp_path):
    code, report = train(tiny_data_root, tmp_path, "--epochs", "2")
    a = report["agreement"]
    assert code == 0 and a["passed"] is True
    assert a["implementation"]["count"] >= 2 and a["implementation"]["worst_rel_error"] <= 1e-5
    assert {"identical_steps", "separated_at", "steps_per_doubling", "training"} <= set(a["trajectory"])


def test_an_unstable_float64_run_passes_and_names_where_it_separated(mnist64):
    """Momentum 0.9 at lr 0.1, constant: on 6400 real images the two correct runs part after ~120 steps."""
    config = Config(dtype="float64", optimizer="momentum", momentum=0.9, lr=0.1, lr_schedule="none", epochs=1)
    s, t = build_pair(config)
    monitor = ResyncMonitor(s, t, agreement.RESYNC_FLOAT64, agreement.LOCKSTEP_LOSS_FLOAT64, epochs=1)
    records = train_lockstep([s, t], mnist64.x_train[:6400], mnist64.y_train[:6400], mnist64.x_test[:1000],
                             mnist64.y_test[:1000], epochs=1, batch_size=32, seed=0, before_step=monitor,
                             progress=False)
    result = verdict(config, records, True, monitor.summary())
    path = result["trajectory"]
    assert path["separated_at"] is not None and path["max_step_loss_rel_diff"] > 1e-6, "meant to be unstable"
    assert result["passed"] is True
    assert all(c["worst_rel_error"] <= 1e-10 for c in result["implementation"]["checks"])
    assert any(f"(step {path['separated_at']})" in c["reason"] for c in result["implementation"]["checks"])
    assert f"trajectories identical for {path['identical_steps']} steps, then separated" in summary_line(result)
    assert expected_drift(result, "float64") == ("expected once the runs have separated; the re-synchronized checks "
                                                 "judge the implementations")
    said = result["summary"]
    assert said["implementations"].startswith("agree") and said["next"].startswith("lower --lr")
    assert f"identical for {path['identical_steps']} steps, then drifted apart" in said["training"]


def test_a_diverged_run_still_writes_its_report(tiny_data_root, tmp_path):
    code, report = train(tiny_data_root, tmp_path, "--dtype", "float64", "--epochs", "2", "--lr", "1e4",
                         "--loss", "mse", "--lr-schedule", "none")
    diverged = report["agreement"]["trajectory"]["diverged_at"]
    assert diverged["scratch"] is not None and diverged["scratch"] == diverged["torch"]
    assert code == 0, "both diverging at the same step is itself agreement"


def test_check_one_step_leaves_the_learners_alone():
    s, t = build_pair(Config(dtype="float64", model=make_spec(hidden=(8,))), input_size=12, num_classes=3)
    before = {n: p.clone() for n, p in t.named_parameters().items()}
    x, y = torch.randn(6, 12, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    passed, worst, _, failures, _ = check_one_step(s, t, x, y, agreement.RESYNC_FLOAT64)
    assert passed and worst <= 1e-12 and failures == []
    assert all(torch.equal(before[n], p) for n, p in t.named_parameters().items())


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_state_moves_across_implementations(optimizer):
    """After some steps apart, the torch learner takes the scratch learner's state and both step alike."""
    config = Config(dtype="float64", optimizer=optimizer, lr=0.01,
                    momentum=0.9 if optimizer in ("momentum", "nesterov") else 0.0,
                    model=make_spec(hidden=(8,), batch_norm=True))
    s, t = build_pair(config, input_size=12, num_classes=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # different batches: the two now hold different states
        s.train_step(torch.randn(6, 12, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2]))
    x, y = torch.randn(6, 12, generator=g, dtype=torch.float64), torch.tensor([2, 1, 0, 2, 1, 0])
    passed, worst, name, failures, _ = check_one_step(s, t, x, y, agreement.RESYNC_FLOAT64)
    assert passed, failures


def test_trajectory_figures():
    diffs = [0.0] * 10 + [1e-8 * 2 ** k for k in range(30)]
    path = trajectory(diffs, type("R", (), {"step_losses": [1.0] * 40})(), 1e-9)
    assert path["identical_steps"] == 10 and path["separated_at"] == 11
    assert path["steps_per_doubling"] == pytest.approx(1.0)


def test_training_behaviour_tells_falling_rising_and_spiking_losses():
    falling = [2.3 * 0.999 ** k + 0.05 * (k % 7 == 0) for k in range(3000)]
    assert training_behaviour(falling) == "loss falling"
    assert training_behaviour(list(reversed(falling))) == "unstable: loss rising"
    spiking = list(falling)
    for k in range(500, 3000, 100):
        spiking[k] = 3.0  # back above the untrained loss, far above the 50 before
    assert training_behaviour(spiking).startswith("unstable: ") and "loss spikes" in training_behaviour(spiking)
    assert training_behaviour([*falling[:100], float("nan")]).startswith("diverged")


def test_a_well_trained_float32_state_is_judged_against_the_first_checks_scale():
    """Near zero loss, float32 rounding is a large share of tiny gradients; the first check's sizes set a floor."""
    config = Config(optimizer="adam", lr=0.05, model=make_spec(hidden=(16,)))
    s, t = build_pair(config, input_size=12, num_classes=3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 12, generator=g), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    passed, _, _, _, scales = check_one_step(s, t, x, y, agreement.RESYNC_FLOAT32)
    assert passed and scales["loss"] > 0.5 and set(scales) == {"loss", *(f"d{n}" for n in s.named_gradients())}
    for _ in range(400):  # learn the 8 examples until the loss is tiny
        s.train_step(x, y)
    late = s.forward_backward(x, y).item()
    assert late < 1e-3
    passed, worst, name, failures, _ = check_one_step(s, t, x, y, agreement.RESYNC_FLOAT32, scales)
    assert passed, failures


def test_float32_checks_are_refereed_in_float64() -> None:
    """A float32 gradient of torch's that is off by 1e-4 (as its cancelling sums can be) does not fail a correct
    scratch side: the float64 twin of torch referees. A scratch gradient off by as much still fails."""
    from compare.training.learners import TorchLearner

    class Rounded(TorchLearner):  # torch with a float32 rounding error of 1e-4 in every gradient
        def named_gradients(self) -> dict:
            return {n: g * (1 + 1e-4) for n, g in super().named_gradients().items()}

    config = Config(model=make_spec(hidden=(8,)), lr=0.1)
    torch.manual_seed(0)
    x, y = torch.randn(16, 784), torch.randint(0, 10, (16,))
    s, t = build_pair(config)
    off = Rounded(t.model, t.loss_fn, t.optimizer)
    passed, worst, name, _, _ = check_one_step(s, off, x, y, agreement.RESYNC_FLOAT32)
    assert passed and worst < 1e-5 and "in float64" in name
    passed, _, _, failures, _ = check_one_step(off, t, x, y, agreement.RESYNC_FLOAT32)  # the wrong side judged
    assert not passed and failures
    s64, t64 = build_pair(Config(model=config.model, lr=0.1, dtype="float64"))
    off64 = Rounded(t64.model, t64.loss_fn, t64.optimizer)
    assert not check_one_step(s64, off64, x.double(), y, agreement.RESYNC_FLOAT64)[0]  # float64: no referee
