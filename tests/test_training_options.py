"""The training options end to end: `train` and `grads` with optimizers, batch norm, dropout, schedules.

    pytest tests/test_training_options.py -q                      # fake data, seconds
    MNIST_DATA_ROOT=../shared/data pytest tests/test_training_options.py -q -m slow   # real MNIST

On fake data (random pixels) the claims are about agreement, not accuracy: from one seed the
two networks see the same batches and the same dropout masks, so in float64 every per-step
loss agrees to rounding, whatever the optimizer, schedule and layers.
"""

from __future__ import annotations

import argparse
import json
import re

import pytest
import torch
from conftest import requires_cuda, requires_data

from compare.base import agreement
from compare.base.errors import UsageError
from compare.cli import build_parser, main, resolve
from compare.commands import COMMANDS
from compare.models import make_spec
from compare.options import groups
from compare.training.components import dropout_stream
from compare.training.config import Config
from compare.training.learners import build_pair
from compare.training.loop import train_lockstep


@pytest.fixture
def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    """100 random float64 "images" and labels, for loops that need no files."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(100, 784, generator=g, dtype=torch.float64), torch.randint(0, 10, (100,), generator=g)


def run_cli(argv: list[str], tmp_path, capsys) -> tuple[int, dict | None, str]:
    report = tmp_path / "report.json"
    code = main([*argv, "--report", str(report)])
    err = capsys.readouterr().err
    return code, json.loads(report.read_text()) if report.exists() else None, err


@pytest.mark.parametrize("optimizer,schedule,activation", [
    ("sgd", "step", "leaky-relu"), ("momentum", "none", "gelu"), ("nesterov", "cosine", "relu"),
    ("adam", "cosine", "gelu"), ("adamw", "step", "leaky-relu")])
def test_train_float64_agrees_step_by_step(optimizer, schedule, activation, tiny_data_root, tmp_path, capsys):
    lr = "0.001" if optimizer.startswith("adam") else "0.05"
    code, report, err = run_cli(["train", "--data-root", str(tiny_data_root), "--dtype", "float64", "--epochs", "3",
                                 "--hidden", "16,8", "--optimizer", optimizer, "--lr", lr, "--weight-decay", "0.01",
                                 "--batch-norm", "--dropout", "0.3", "--lr-schedule", schedule,
                                 "--lr-step-size", "1", "--activation", activation], tmp_path, capsys)
    assert code == 0, err
    result = report["agreement"]
    assert result["passed"] and result["steps"] == 3 * 7  # 200 images in batches of 32
    assert result["max_step_loss_rel_diff"] <= agreement.LOCKSTEP_LOSS_FLOAT64
    assert result["final_max_buffer_diff"] < 1e-12  # running statistics
    config = report["config"]
    assert (config["optimizer"], config["lr_schedule"], config["batch_norm"], config["dropout"]) == \
        (optimizer, schedule, True, 0.3)
    lrs = [h["learning_rate"] for h in report["torch"]["history"]]
    assert lrs == [h["learning_rate"] for h in report["scratch"]["history"]]
    if schedule == "none":
        assert lrs == [float(lr)] * 3
    else:
        assert lrs[0] == float(lr) and lrs[2] < lrs[1] < lrs[0]


def test_different_dropout_masks_would_be_caught(tiny_data):
    """The negative control: give torch another random stream and the float64 losses part at once."""
    x, y = tiny_data
    config = Config(dtype="float64", seed=0, model=make_spec(hidden=(16,), dropout=0.5))
    s, t = build_pair(config)
    t.random_state = dropout_stream(Config(seed=1, model=make_spec(dropout=0.5)))
    records = train_lockstep([s, t], x, y, x, y, epochs=1, batch_size=20, seed=0, progress=False)
    first_s, first_t = records["scratch"].step_losses[0], records["torch"].step_losses[0]
    assert abs(first_s - first_t) / first_t > 1e-3


def test_lockstep_does_not_disturb_the_global_random_stream(tiny_data):
    x, y = tiny_data
    s, t = build_pair(Config(dtype="float64", model=make_spec(hidden=(8,), dropout=0.2)))
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    train_lockstep([s, t], x, y, x, y, epochs=1, batch_size=25, seed=0, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_grads_covers_batch_norm_dropout_and_one_update(tiny_data_root, tmp_path, capsys):
    code, report, err = run_cli(["grads", "--data-root", str(tiny_data_root), "--dtype", "float64", "--hidden", "4,3",
                                 "--batch-norm", "--dropout", "0.5", "--optimizer", "adamw", "--lr", "0.01",
                                 "--lr-schedule", "cosine", "--epochs", "4"], tmp_path, capsys)
    assert code == 0, err
    result = report["agreement"]
    assert result["passed"] and result["max_finite_diff_rel_error"] <= agreement.FINITE_DIFF_FLOAT64.rtol
    names = [p["name"] for p in report["parameters"]]
    assert names == ["layers.0.weight", "layers.1.weight", "layers.1.bias", "layers.4.weight", "layers.5.weight",
                     "layers.5.bias", "layers.8.weight", "layers.8.bias"]  # bias-free Linear before batch norm
    updates = {u["name"]: u["passed"] for u in report["after_update"]}
    assert all(updates.values())
    assert "layers.1.running_var (after forward)" in updates and "layers.8.bias (after one step)" in updates
    assert report["config"]["weight_decay"] == 0.01  # AdamW's default


@pytest.mark.parametrize("argv,message", [
    (["--momentum", "0.5"], "--momentum only applies to --optimizer momentum or nesterov, not sgd"),
    (["--optimizer", "adam", "--momentum", "0.5"], "Adam's momentum is its first beta"),
    (["--optimizer", "momentum", "--momentum", "1.5"], "--momentum must be between 0 and 1"),
    (["--dropout", "1"], r"--dropout: .*probability in \[0, 1\)"),
    (["--weight-decay", "-1"], "--weight-decay must be 0 or positive"),
    (["--batch-norm", "--batch-size", "1"], "--batch-norm needs --batch-size of at least 2"),
    (["--lr-schedule", "step", "--lr-step-size", "0"], "--lr-step-size must be at least 1"),
])
def test_bad_options_exit_2_with_one_line(argv, message, tmp_path, capsys):
    code = main(["train", "--data-root", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def parse(*argv: str) -> argparse.Namespace:
    args = build_parser().parse_args(["train", *argv])
    resolve(COMMANDS["train"], args)
    return args


def test_defaults_that_depend_on_other_options():
    assert (parse().momentum, parse().weight_decay, parse().optimizer) == (0.0, 0.0, "sgd")
    assert parse("--optimizer", "nesterov").momentum == 0.9
    assert parse("--optimizer", "adamw").weight_decay == 0.01  # torch.optim.AdamW's default
    assert parse("--optimizer", "adamw", "--weight-decay", "0").weight_decay == 0.0
    assert parse("--epochs", "10").lr_step_size == 3
    assert parse("--epochs", "2").lr_step_size == 1
    assert parse("--batch-norm").model_spec["batch_norm"]
    assert not parse("--batch-norm", "--no-batch-norm").model_spec["batch_norm"]


def test_dropout_is_refused_on_cuda():
    args = build_parser().parse_args(["grads", "--dropout", "0.2"])
    args.device = "cpu"
    resolve(COMMANDS["grads"], args)
    args.device = "cuda"  # as if a GPU were there: the refusal does not depend on having one
    with pytest.raises(UsageError, match="--dropout is compared on the CPU only"):
        groups.MODEL.resolve(args)


@pytest.mark.slow
@requires_data
def test_grads_on_real_mnist_with_batch_norm_and_dropout(tmp_path, capsys):
    code, report, err = run_cli(["grads", "--dtype", "float64", "--hidden", "64,32", "--batch-norm",
                                 "--dropout", "0.5"], tmp_path, capsys)
    assert code == 0, err
    assert report["agreement"]["max_finite_diff_rel_error"] <= 1e-7
    assert report["agreement"]["max_rel_error"] <= 1e-10


@pytest.mark.cuda
@requires_cuda
def test_batch_norm_and_adam_agree_on_cuda(tiny_data):
    """On a GPU (dropout is refused there, see above): batch norm and AdamW still agree step by step."""
    x, y = (t.cuda() for t in tiny_data)
    config = Config(dtype="float64", optimizer="adamw", lr=1e-3, weight_decay=0.01, lr_schedule="cosine", epochs=2,
                    device="cuda", model=make_spec(hidden=(16, 8), batch_norm=True))
    s, t = build_pair(config)
    records = train_lockstep([s, t], x, y, x, y, epochs=2, batch_size=20, seed=0, progress=False)
    pairs = zip(records["scratch"].step_losses, records["torch"].step_losses, strict=True)
    worst = max(abs(a - b) / abs(b) for a, b in pairs)
    assert worst <= agreement.LOCKSTEP_LOSS_FLOAT64
    for name, b in s.named_buffers().items():
        assert b.device.type == "cuda", f"{name} stayed on {b.device}"
