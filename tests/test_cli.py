"""The command line: its report contract, its exit status, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from compare.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compare", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,problem", [
    (["train", "--dataset", "cifar"], "--dataset: invalid choice: 'cifar'"),
    (["train", "--hidden", "16,0"], "--hidden sizes must be positive"),
    (["grads", "--hidden", "sixteen"], "comma-separated integers"),
    (["train", "--lr", "-0.1"], "--lr must be a positive learning rate"),
    (["train", "--epochs", "0"], "--epochs: must be at least 1"),
    (["train", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["train", "--activation", "swish"], "--activation: invalid choice"),
])
def test_bad_input_is_one_line_naming_the_problem(args, problem, capsys):
    with pytest.raises(SystemExit) as exit_info:
        rc = main(args)
        raise SystemExit(rc)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_one_line(capsys):
    assert main(["grads", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CUDA GPU is available" in err and len(err.splitlines()) == 1


def test_missing_data_names_files_and_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.MNIST", _no_network)
    assert main(["grads", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "train-images-idx3-ubyte" in err and str(tmp_path) in err and "--data-root" in err
    assert len(err.splitlines()) == 1


def _no_network(*args, **kwargs):
    raise RuntimeError("no network in tests")


def test_grads_report_contract(tiny_data_root, tmp_path):
    report_path = tmp_path / "grads.json"
    result = run_cli("grads", "--data-root", str(tiny_data_root), "--dtype", "float64", "--hidden", "8",
                     "--batch-size", "16", "--report", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["config"]["hidden"] == [8] and report["config"]["dtype"] == "float64"
    assert report["agreement"]["passed"] is True
    names = [p["name"] for p in report["parameters"]]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
    for p in report["parameters"]:
        assert set(p) >= {"name", "shape", "max_abs_diff", "max_rel_error", "finite_diff_rel_error"}
        assert p["max_rel_error"] <= 1e-10 and p["finite_diff_rel_error"] <= 1e-7
    assert "PASSED" in result.stdout and "bit-identical" in result.stdout


def test_grads_shows_the_progress_of_its_finite_differences(tiny_data_root, tmp_path, monkeypatch):
    """The finite-difference loop takes minutes on a ViT or an LSTM: a bar counts the coordinates done."""
    import compare.commands.grads

    bars = []

    class Bar:  # records what a tqdm bar is told
        def __init__(self, total: int, **options) -> None:
            self.total, self.done, self.closed, self.options = total, 0, False, options
            bars.append(self)

        def update(self, n: int) -> None:
            self.done += n

        def set_postfix_str(self, *_, **__) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(compare.commands.grads, "tqdm", Bar)
    report_path = tmp_path / "grads.json"
    assert main(["grads", "--data-root", str(tiny_data_root), "--hidden", "8", "--batch-size", "16",
                 "--report", str(report_path)]) == 0
    checked = sum(p["finite_diff_coordinates"] + p["finite_diff_kinks"]
                  for p in json.loads(report_path.read_text())["parameters"])
    assert len(bars) == 1 and bars[0].total == checked == bars[0].done and bars[0].closed
    assert bars[0].options["disable"] is None  # on a terminal only, as the training loop's bar


def test_train_report_contract(tiny_data_root, tmp_path):
    report_path = tmp_path / "train.json"
    result = run_cli("train", "--data-root", str(tiny_data_root), "--dtype", "float64", "--epochs", "2",
                     "--batch-size", "20", "--report", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["config"]["epochs"] == 2 and report["agreement"]["passed"] is True
    assert report["agreement"]["max_step_loss_rel_diff"] <= 1e-9
    for side in ("scratch", "torch"):
        assert 0.0 <= report[side]["test_accuracy"] <= 1.0
        assert [h["epoch"] for h in report[side]["history"]] == [1, 2]
        assert len(report[side]["confusion_matrix"]) == 10
    assert "Epoch 2" in result.stdout and "confusion matrix" in result.stdout


def test_failed_agreement_gives_exit_status_1(tiny_data_root, monkeypatch, capsys):
    """Break the scratch ReLU's backward: the grads verdict must fail and the exit status say so."""
    import scratch.activations

    monkeypatch.setattr(scratch.activations.ReLU, "backward", lambda self, dout: dout)
    assert main(["grads", "--data-root", str(tiny_data_root), "--dtype", "float64", "--hidden", "8"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_plots_or_report_paths_that_cannot_be_written_fail_before_any_work(tiny_data_root, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for option, path in [("--plots", a_file), ("--report", a_file / "report.json"), ("--report", tmp_path)]:
        assert main(["train", "--data-root", str(tiny_data_root), option, str(path)]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith(f"error: {option} ") and len(err.splitlines()) == 1, err
        assert "Epoch" not in captured.out


def test_a_network_too_large_for_memory_is_one_line(tiny_data_root, capsys):
    assert main(["grads", "--data-root", str(tiny_data_root), "--hidden", "100000,100000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not enough memory" in err and "784-100000-100000-10" in err and len(err.splitlines()) == 1


def test_ctrl_c_stops_cleanly_saying_where(tiny_data_root, monkeypatch, capsys):
    from compare.training.learners import TorchLearner

    calls = {"n": 0}
    step = TorchLearner.train_step

    def interrupted_on_step_3(self, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return step(self, x, y)

    monkeypatch.setattr(TorchLearner, "train_step", interrupted_on_step_3)
    assert main(["train", "--data-root", str(tiny_data_root), "--epochs", "2", "--batch-size", "20"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "stopped: interrupted at epoch 1 of 2, step 3 of 10; nothing was written", err


def test_ctrl_c_while_loading_the_data_says_so(tiny_data_root, monkeypatch, capsys):
    import compare.cli

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare.cli, "load_dataset", interrupted)
    assert main(["train", "--data-root", str(tiny_data_root)]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "stopped: interrupted (Ctrl-C) while loading the data, before training; nothing was written", err


def test_ctrl_c_while_torch_is_imported_is_one_line(tiny_data_root):
    """A real `python -m compare train` sent SIGINT in its first second, while it imports torch."""
    import signal
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    run = subprocess.Popen([sys.executable, "-m", "compare", "train", "--data-root", str(tiny_data_root)], cwd=root,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
    maps, deadline = Path(f"/proc/{run.pid}/maps"), time.monotonic() + 30
    try:
        # torch's shared libraries are mapped as `import torch` runs: the moment to press Ctrl-C
        while "/torch/" not in maps.read_text():
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before it imported torch"
            time.sleep(0.005)
    except FileNotFoundError:
        pytest.skip("no /proc/PID/maps here to see when torch is imported")
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert run.returncode == 130 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("stopped: interrupted (Ctrl-C)"), err


@pytest.mark.parametrize("args,problem", [
    (["train", "--seed", "99999999999999999999"], "--seed must be between 0 and 4294967295"),
    (["train", "--seed", "4294967296"], "--seed must be between 0 and 4294967295"),
    (["train", "--hidden", ""], "an empty part"),
    (["train", "--hidden", "16,,16"], "an empty part"),
    (["grads", "--hidden", "8", "--model", "nope"], "--model: invalid choice"),
])
def test_more_bad_input_is_one_line(args, problem, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1, err


def test_help_lists_the_model_families_and_their_options(capsys):
    from compare.models import FAMILIES

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in FAMILIES)
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--model" in out and "--hidden" in out and "[mlp]" in out
