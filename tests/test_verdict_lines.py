"""The three lines that end a comparison (Implementations, Training, What next), and what they rest on.

Equal non-finite values on both sides are agreement (a run that diverged the same way); a NaN or an inf on one
side only is not. A diverged run of agreeing implementations exits 0, or 1 with --fail-on-divergence; a learning
rate the dtype cannot hold is refused before any work.
"""

from __future__ import annotations

import json

import pytest
import torch

import scratch.activations
from compare.base import agreement
from compare.cli import main

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize("tol", [agreement.RESYNC_FLOAT32, agreement.AUTOGRAD_FLOAT32], ids=["tensor", "element"])
def test_equal_non_finite_values_agree(tol):
    a = torch.tensor([1.0, -INF, INF, NAN, 2.0])
    result = agreement.compare("w", a, a.clone(), tol)
    assert result.passed, result.message
    assert result.max_abs_diff == 0.0 and result.max_rel_error == 0.0


@pytest.mark.parametrize("actual, expected", [
    ([1.0, NAN], [1.0, 2.0]),  # NaN on one side only
    ([1.0, 2.0], [1.0, NAN]),
    ([1.0, INF], [1.0, 2.0]),  # inf against a finite value
    ([1.0, 2.0], [1.0, -INF]),
    ([1.0, INF], [1.0, -INF]),  # opposite infinities
    ([1.0, INF], [1.0, NAN]),
    ([-INF, 1.0], [-INF, 1.5]),  # equal infinities do not hide a finite mismatch beside them
], ids=["nan-finite", "finite-nan", "inf-finite", "finite-inf", "inf-minus-inf", "inf-nan", "finite-beside-inf"])
@pytest.mark.parametrize("tol", [agreement.RESYNC_FLOAT32, agreement.AUTOGRAD_FLOAT32], ids=["tensor", "element"])
def test_one_sided_non_finite_values_or_a_mismatch_beside_them_fail(actual, expected, tol):
    result = agreement.compare("w", torch.tensor(actual), torch.tensor(expected), tol)
    assert not result.passed and "mismatch at index (1,)" in result.message, result.message


@pytest.mark.parametrize("command", ["train", "grads", "playground"])
def test_a_learning_rate_float32_cannot_hold_is_refused_before_any_work(command, tmp_path, capsys):
    missing = ["--data-root", str(tmp_path / "no-data")] if command != "playground" else []
    assert main([command, *missing, "--lr", "1e39", "--dtype", "float32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lr 1e+39" in err and "float32" in err, err


def test_the_limit_is_the_dtypes(tmp_path, capsys):
    """float64 holds 1e39: the run goes on to load the data (here missing, so that is where it stops)."""
    assert main(["train", "--data-root", str(tmp_path / "no-data"), "--lr", "1e39", "--dtype", "float64"]) == 2
    err = capsys.readouterr().err
    assert "--lr" not in err and "no-data" in err, err


def train(root, tmp_path, capsys, *args: str) -> tuple[int, dict, list[str]]:
    """`train` on the tiny fake data: (exit status, the report's agreement, the output's lines)."""
    path = tmp_path / "train.json"
    code = main(["train", "--data-root", str(root), "--hidden", "16", "--batch-size", "20", "--report", str(path),
                 *args])
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("Report written")]
    return code, json.loads(path.read_text())["agreement"], lines


def ending(lines: list[str]) -> dict[str, str]:
    """The three closing lines, which must be the last of the output, in this order."""
    labels = ("Implementations: ", "Training: ", "What next: ")
    last = lines[-3:]
    assert [line.startswith(label) for line, label in zip(last, labels, strict=True)] == [True] * 3, last
    return {key: line.removeprefix(label) for key, line, label in
            zip(("implementations", "training", "next"), last, labels, strict=True)}


def test_an_agreeing_run_ends_with_three_lines_that_say_so(tiny_data_root, tmp_path, capsys):
    code, agreement_, lines = train(tiny_data_root, tmp_path, capsys, "--epochs", "2", "--optimizer", "adam",
                                    "--lr", "0.01")
    said = ending(lines)
    assert code == 0 and said == agreement_["summary"], "the report holds the lines as printed"
    assert said["implementations"].startswith("agree (2 re-synchronized checks, worst ")
    assert "tolerance resync-float32" in said["implementations"]
    assert said["training"].startswith("converged (test accuracy scratch ")
    assert "identical for all 20 steps" in said["training"] and said["next"].startswith("nothing to fix")


@pytest.mark.parametrize("lr", ["inf", "1e4"])
def test_a_diverged_run_of_agreeing_implementations_exits_0_or_1_with_fail_on_divergence(tiny_data_root, tmp_path,
                                                                                          capsys, lr):
    args = ("--epochs", "2", "--lr", lr, "--loss", "mse", "--lr-schedule", "none")
    code, result, lines = train(tiny_data_root, tmp_path, capsys, *args)
    said = ending(lines)
    step = result["trajectory"]["diverged_at"]["scratch"]
    assert step is not None and step == result["trajectory"]["diverged_at"]["torch"]
    assert code == 0 and result["passed"] is True
    assert said["implementations"].startswith("agree")
    assert said["training"].startswith(f"diverged at step {step} on both sides")
    assert "not a sign of wrong implementations" in said["training"] and said["next"].startswith("lower --lr")

    code, result, lines = train(tiny_data_root, tmp_path, capsys, *args, "--fail-on-divergence")
    assert code == 1 and result["passed"] is False
    assert ending(lines)["implementations"].startswith("agree"), "the implementations are still right"
    assert result["checks"]["training did not diverge (--fail-on-divergence)"] is False


def test_fail_on_divergence_leaves_a_healthy_run_at_exit_0(tiny_data_root, tmp_path, capsys):
    code, result, _ = train(tiny_data_root, tmp_path, capsys, "--epochs", "1", "--fail-on-divergence")
    assert code == 0 and result["passed"] is True


def test_a_disagreeing_run_says_so_and_where_to_look(tiny_data_root, tmp_path, capsys, monkeypatch):
    backward = scratch.activations.ReLU.backward
    monkeypatch.setattr(scratch.activations.ReLU, "backward", lambda self, dout: backward(self, dout) * 1.0001)
    code, result, lines = train(tiny_data_root, tmp_path, capsys, "--epochs", "1")
    said = ending(lines)
    assert code == 1
    assert said["implementations"].startswith("disagree (1 of 1 re-synchronized checks failed, first at step 1")
    assert "[FAIL]" in said["next"] and "step 1" in said["next"]
    assert "expected" not in said["training"], "a broken implementation's drift is not called expected"
    assert not any("expected once" in line for line in lines)


def test_figures_of_float32_runs_that_drifted_apart_are_labelled_expected(tiny_data_root, tmp_path, capsys):
    """SGD at lr 2 on the fake data: unstable, the two correct float32 runs separate within a few steps (float64
    drift: tests/test_verdict.py, on real data)."""
    code, result, lines = train(tiny_data_root, tmp_path, capsys, "--epochs", "3", "--lr", "2", "--lr-schedule",
                                "none")
    assert code == 0 and result["trajectory"]["separated_at"] is not None, "meant to separate"
    assert next(line for line in lines if line.startswith("Largest per-step loss difference")).endswith(
        ": expected once float32 runs have drifted apart; the re-synchronized checks judge the implementations")
    said = ending(lines)
    assert "the runs drift apart as float32 rounding does, which is expected" in said["training"]
    if result["test_accuracy_gap"] > 0:
        assert "and so do their accuracies (a gap of " in said["training"]
    assert said["next"] == "lower --lr (now 2): the training is at fault, not the implementations"


def test_figures_of_identical_runs_carry_no_label(tiny_data_root, tmp_path, capsys):
    code, result, lines = train(tiny_data_root, tmp_path, capsys, "--epochs", "1")
    assert code == 0 and result["trajectory"]["separated_at"] is None
    assert next(line for line in lines if line.startswith("Largest per-step loss difference")).endswith("steps")


def run_command(capsys, tmp_path, *argv: str) -> tuple[int, dict, dict[str, str]]:
    path = tmp_path / "report.json"
    code = main([*argv, "--report", str(path)])
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("Report written")]
    return code, json.loads(path.read_text())["agreement"], ending(lines)


@pytest.mark.parametrize("command", ["grads", "autograd"])
def test_one_batch_commands_end_with_the_same_three_lines(command, tiny_data_root, tmp_path, capsys):
    code, result, said = run_command(capsys, tmp_path, command, "--data-root", str(tiny_data_root), "--hidden",
                                     "8", "--dtype", "float64")
    assert code == 0 and said == result["summary"]
    assert said["implementations"].startswith("agree (worst ") and "tolerance" in said["implementations"]
    assert said["training"].startswith("not trained: one batch")


def test_a_one_batch_command_names_what_disagrees(tiny_data_root, tmp_path, capsys, monkeypatch):
    backward = scratch.activations.ReLU.backward
    monkeypatch.setattr(scratch.activations.ReLU, "backward", lambda self, dout: backward(self, dout) * 1.0001)
    code, _, said = run_command(capsys, tmp_path, "grads", "--data-root", str(tiny_data_root), "--hidden", "8",
                                "--dtype", "float64")
    assert code == 1 and said["implementations"].startswith("disagree (") and "layers.0.weight" in said[
        "implementations"]
    assert "mismatch lines above" in said["next"]


def test_evaluate_ends_with_the_three_lines(tiny_data_root, tmp_path, capsys):
    assert main(["train", "--data-root", str(tiny_data_root), "--hidden", "8", "--batch-size", "20", "--epochs", "1",
                 "--save", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    code, result, said = run_command(capsys, tmp_path, "evaluate", "--checkpoint", str(tmp_path / "run"),
                                     "--data-root", str(tiny_data_root))
    assert code == 0 and said == result["summary"] and said["implementations"].startswith("agree (")
    assert said["training"].startswith("not trained here: the checkpoint's models, trained for 1 epoch")


@pytest.mark.slow
def test_ddp_ends_with_the_three_lines(tiny_data_root, tmp_path, capfd):
    """The lines are printed by the process of rank 0; the report carries them."""
    path = tmp_path / "ddp.json"
    assert main(["ddp", "--nproc", "1", "--data-root", str(tiny_data_root), "--hidden", "8", "--batch-size", "20",
                 "--dtype", "float64", "--run-timeout", "60", "--report", str(path)]) == 0
    said = json.loads(path.read_text())["agreement"]["summary"]
    assert said["implementations"].startswith("agree") and said["training"].startswith(("converged", "unstable"))
    assert f"What next: {said['next']}" in capfd.readouterr().out
