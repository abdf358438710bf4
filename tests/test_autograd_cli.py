"""Tests for `python -m compare autograd` (every --mode), `train --engine autograd` and the graph printout
(compare/pictures/graph.py).

    .venv/bin/python -m pytest tests/test_autograd_cli.py -q
    MNIST_DATA_ROOT=/work/shared/data .venv/bin/python -m pytest tests/test_autograd_cli.py -q -m slow   # real MNIST
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import torch
from conftest import DATA_ROOT, requires_data

from compare.checking import derivatives
from compare.cli import main
from compare.pictures import graph
from compare.training.learners import EngineLearner
from scratch import engine
from scratch.engine import Value, cross_entropy

PAIRS = {"hand_vs_engine", "hand_vs_torch", "engine_vs_torch"}
MODES = ("forward", "hvp", "double-backward")  # besides the default, reverse
MLP_PARAMETERS = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "layers.4.weight",
                  "layers.4.bias"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_autograd_command_passes_and_writes_report_and_graph(tiny_data_root: Path, tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)  # as on a machine without Graphviz
    report_path, dot_path = tmp_path / "autograd.json", tmp_path / "graphs" / "loss.dot"
    code, out, _ = run_cli(["autograd", "--dtype", "float64", "--data-root", str(tiny_data_root),
                            "--report", str(report_path), "--graph", str(dot_path)], capsys)
    assert code == 0, out
    assert "Verdict: PASSED" in out and "hand vs engine" in out
    assert "apt-get install graphviz" in out and "brew install graphviz" in out

    report = json.loads(report_path.read_text())
    assert report["command"] == "autograd" and report["config"]["graph"] == str(dot_path)
    assert report["mode"] == report["config"]["mode"] == "reverse"
    assert report["config"]["dtype"] == "float64"
    agreement = report["agreement"]
    assert agreement["passed"] is True and agreement["identical_start"] is True
    assert set(agreement["max_rel_error"]) == PAIRS
    assert all(v <= 1e-10 for v in agreement["max_rel_error"].values())
    names = [p["name"] for p in report["parameters"]]
    assert names == ["loss", "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                     "layers.4.weight", "layers.4.bias"]
    assert report["graph"]["dot"] == str(dot_path) and report["graph"]["svg"] is None

    dot = dot_path.read_text()
    assert dot.startswith('digraph "loss" {') and dot.rstrip().endswith("}")
    assert "layers.0.weight (parameter)\\n16x784\\n|grad|" in dot and "log_softmax" in dot


def test_autograd_command_fails_on_a_wrong_gradient(tiny_data_root: Path, tmp_path: Path, capsys,
                                                    monkeypatch) -> None:
    """A negative control: an engine whose bias gradients are 0.1% off must fail, with exit status 1."""
    real = EngineLearner.named_gradients

    def slightly_wrong(self):
        return {n: g * 1.001 if n.endswith("bias") else g for n, g in real(self).items()}

    monkeypatch.setattr(EngineLearner, "named_gradients", slightly_wrong)
    report_path = tmp_path / "autograd.json"
    code, out, _ = run_cli(["autograd", "--dtype", "float64", "--data-root", str(tiny_data_root),
                            "--report", str(report_path)], capsys)
    assert code == 1 and "Verdict: FAILED" in out
    assert "layers.0.bias (hand vs engine): mismatch at index" in out
    agreement = json.loads(report_path.read_text())["agreement"]
    assert agreement["passed"] is False and agreement["pairs_passed"]["hand_vs_torch"] is True
    assert 9e-4 < agreement["max_rel_error"]["engine_vs_torch"] < 1.1e-3


def test_autograd_command_in_float32(tiny_data_root: Path, capsys) -> None:
    code, out, _ = run_cli(["autograd", "--data-root", str(tiny_data_root), "--hidden", "8"], capsys)
    assert code == 0, out
    assert "autograd-float32" in out


def test_autograd_command_refuses_what_the_engine_lacks(tiny_data_root: Path, capsys) -> None:
    code, _, err = run_cli(["autograd", "--data-root", str(tiny_data_root), "--activation", "gelu"], capsys)
    assert code == 2 and "error: the autograd engine has no 'gelu' activation" in err
    code, _, err = run_cli(["train", "--engine", "autograd", "--data-root", str(tiny_data_root),
                            "--dropout", "0.2"], capsys)
    assert code == 2 and "no dropout or batch norm" in err


def test_train_on_the_engine_agrees_with_torch(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report_path = tmp_path / "train.json"
    code, out, _ = run_cli(["train", "--engine", "autograd", "--epochs", "2", "--dtype", "float64",
                            "--batch-size", "20", "--data-root", str(tiny_data_root), "--report", str(report_path)],
                           capsys)
    assert code == 0, out
    assert "scratch (engine) vs torch" in out
    report = json.loads(report_path.read_text())
    assert report["config"]["engine"] == "autograd"
    assert (report["scratch"]["implementation"], report["torch"]["implementation"]) == ("engine", "torch")
    assert report["agreement"]["passed"] is True
    assert report["agreement"]["max_step_loss_rel_diff"] <= 1e-12


def test_train_records_the_default_engine(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report_path = tmp_path / "train.json"
    code, out, _ = run_cli(["train", "--epochs", "1", "--data-root", str(tiny_data_root),
                            "--report", str(report_path)], capsys)
    assert code == 0, out
    report = json.loads(report_path.read_text())
    assert report["config"]["engine"] == "hand" and report["scratch"]["implementation"] == "hand-written"
    assert "scratch (hand-written)" in out


# ---------------------------------------------------------------------- --mode forward, hvp, double-backward


def run_mode(mode: str, root: Path | str, tmp_path: Path, capsys, *options: str) -> tuple[int, str, dict]:
    report_path = tmp_path / f"autograd-{mode}.json"
    code, out, err = run_cli(["autograd", "--mode", mode, "--dtype", "float64", "--data-root", str(root),
                              "--report", str(report_path), *options], capsys)
    assert code in (0, 1), err
    return code, out, json.loads(report_path.read_text())


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_agrees_with_torch_and_reports_per_parameter(mode: str, tiny_data_root: Path, tmp_path: Path,
                                                               capsys) -> None:
    code, out, report = run_mode(mode, tiny_data_root, tmp_path, capsys)
    assert code == 0, out
    assert "Initial parameters of engine and torch: bit-identical" in out and "Verdict: PASSED" in out
    assert all(line in out for line in ("\nImplementations: agree", "\nTraining: ", "\nWhat next: "))
    assert report["mode"] == report["config"]["mode"] == mode
    assert [p["name"] for p in report["parameters"]] == MLP_PARAMETERS
    for p in report["parameters"]:
        assert p["passed"] is True and p["max_rel_error"] <= 1e-12, p
        assert p["torch_max_abs"] > 0, p  # a derivative that is there, not a zero both sides agree on
    agreement = report["agreement"]
    assert agreement["passed"] is True and agreement["identical_start"] is True
    assert agreement["max_rel_error"] == max(p["max_rel_error"] for p in report["parameters"])
    assert agreement["tolerance_rule"] == "autograd-modes-float64: |a-e| <= 1e-12 * max|e|"
    assert set(agreement["summary"]) == {"implementations", "training", "next"}
    if mode == "hvp":
        fd = report["finite_difference_rel_error"]
        assert 0 < fd <= 1e-6 and agreement["finite_difference_rel_error"] == fd
        assert fd == max(p["finite_difference_rel_error"] for p in report["parameters"])
        assert report["finite_difference_step"] == 1e-6  # ReLU: the step of networks with kinks
        assert "engine vs finite diff" in out
    else:
        assert report["finite_difference_rel_error"] is None


def tanh_derivative_without_square(tangent_too: bool):
    """Value.tanh with a wrong derivative, 1 - tanh instead of 1 - tanh^2: in its tangent rule, and (tangent_too)
    in its backward rule as well."""
    def tanh(self: Value) -> Value:
        out = torch.tanh(self.data)

        def backward(dout, out, a):
            return (dout * (1 - out),) if tangent_too else (dout * (1 - out * out),)

        return engine._result(out, (self,), "tanh", backward, lambda ta: ta * (1 - out))

    return tanh


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_fails_when_the_engine_is_wrong(mode: str, tiny_data_root: Path, tmp_path: Path, capsys,
                                                  monkeypatch) -> None:
    """A negative control: tanh's derivative without its square, in both of its rules: every mode exits 1."""
    monkeypatch.setattr(Value, "tanh", tanh_derivative_without_square(tangent_too=True))
    code, out, report = run_mode(mode, tiny_data_root, tmp_path, capsys, "--activation", "tanh")
    assert code == 1 and "Verdict: FAILED" in out and "Implementations: disagree" in out
    assert "engine vs torch): mismatch at index" in out
    assert report["agreement"]["passed"] is False and report["agreement"]["identical_start"] is True
    assert report["agreement"]["max_rel_error"] > 1e-3
    assert not all(p["passed"] for p in report["parameters"])


def test_a_wrong_tangent_rule_fails_forward_mode_and_hvp_only(tiny_data_root: Path, tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    """Only tanh's tangent rule wrong: forward mode and H v (forward over reverse) see it; double backward, which
    carries no tangent, does not."""
    monkeypatch.setattr(Value, "tanh", tanh_derivative_without_square(tangent_too=False))
    codes = {mode: run_mode(mode, tiny_data_root, tmp_path, capsys, "--activation", "tanh")[0] for mode in MODES}
    assert codes == {"forward": 1, "hvp": 1, "double-backward": 0}


def test_hvp_fails_when_the_finite_differences_disagree(tiny_data_root: Path, tmp_path: Path, capsys,
                                                       monkeypatch) -> None:
    """The third witness counts: a gradient 0.1% too large moves its finite differences by 0.1% of H v."""
    real = derivatives.engine_gradient
    monkeypatch.setattr(derivatives, "engine_gradient", lambda *args: {n: g * 1.001 for n, g in real(*args).items()})
    code, out, report = run_mode("hvp", tiny_data_root, tmp_path, capsys)
    assert code == 1 and "but the finite differences do not" in out
    assert report["agreement"]["max_rel_error"] <= 1e-12 and 5e-4 < report["finite_difference_rel_error"] < 2e-3


def test_hvp_in_float32_has_no_finite_differences(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report_path = tmp_path / "hvp32.json"
    code, out, _ = run_cli(["autograd", "--mode", "hvp", "--data-root", str(tiny_data_root), "--report",
                            str(report_path)], capsys)
    assert code == 0, out
    report = json.loads(report_path.read_text())
    assert report["finite_difference_rel_error"] is None and "float64 only" in out
    assert report["agreement"]["tolerance_rule"].startswith("autograd-modes-float32")


def test_the_graph_is_the_reverse_mode_s(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["autograd", "--mode", "hvp", "--data-root", str(tiny_data_root), "--graph",
                            str(tmp_path / "g.dot")], capsys)
    assert code == 2 and "--graph draws the graph of the reverse mode's loss" in err


def test_help_names_every_mode(capsys) -> None:
    code, out, _ = run_cli(["autograd", "--help"], capsys)
    text = " ".join(out.split()).replace("- ", "-")  # argparse wraps the help, also after a hyphen
    assert code == 0
    assert "--mode {reverse,forward,hvp,double-backward}" in text and "(default: reverse)" in text
    assert all(f"{mode}: " in text for mode in ("reverse", *MODES))


@pytest.mark.slow
@requires_data
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", ["cnn", "vit", "lstm"])
def test_every_family_agrees_with_torch_in_every_mode_on_real_mnist(family: str, mode: str, tmp_path: Path,
                                                                    capsys) -> None:
    code, out, report = run_mode(mode, DATA_ROOT, tmp_path, capsys, "--model", family, "--batch-size", "8")
    assert code == 0, out
    assert report["agreement"]["identical_start"] is True
    assert report["agreement"]["max_rel_error"] <= 1e-12
    assert len(report["parameters"]) >= 6 and all(p["passed"] for p in report["parameters"])
    if mode == "hvp":
        assert report["finite_difference_rel_error"] <= 1e-6


# ---------------------------------------------------------------------- compare/pictures/graph.py


def small_loss() -> tuple[Value, Value]:
    w = Value(torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], dtype=torch.float64), requires_grad=True, name="w")
    x = Value(torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64), name="x")
    h = (x @ w).tanh()
    return cross_entropy(h + h, torch.tensor([0, 2])), w  # h is used twice


def test_graph_lists_each_node_once_after_its_inputs() -> None:
    loss, w = small_loss()
    nodes = graph.graph_nodes(loss)
    assert nodes[-1] is loss and len(nodes) == len(set(nodes))
    position = {node: i for i, node in enumerate(nodes)}
    assert all(position[p] < position[node] for node in nodes for p in node._parents)
    text = graph.graph_text(loss)
    assert "w (parameter)" in text and "x (constant)" in text
    assert text.count("#") == len(nodes) + sum(len(n._parents) for n in nodes)  # ids in column 1 and in "inputs"
    assert text.splitlines()[-1].split()[-1] == "-"  # no gradients before backward
    loss.backward()
    assert re.search(r"w \(parameter\)\s+2x3\s+-\s+\d\.\d{4}e[+-]\d\d", graph.graph_text(loss))


def test_dot_has_one_edge_per_input_and_the_gradient_norms() -> None:
    loss, w = small_loss()
    loss.backward()
    dot = graph.graph_dot(loss)
    nodes = graph.graph_nodes(loss)
    assert dot.count("->") == sum(len(n._parents) for n in nodes)
    assert f"|grad| {w.grad.norm().item():.3e}" in dot
    assert dot.count("[label=") == len(nodes)


def test_svg_is_rendered_when_dot_is_installed(tmp_path: Path, monkeypatch) -> None:
    """A stand-in `dot` that writes its -o file: checks the command line this module runs."""
    fake = tmp_path / "dot"
    fake.write_text('#!/bin/sh\n# called as: dot -Tsvg IN -o OUT\n[ "$1" = "-Tsvg" ] && echo "<svg/>" > "$4"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(graph.shutil, "which", lambda name: str(fake) if name == "dot" else None)
    loss, _ = small_loss()
    dot_path, svg_path, message = graph.write_graph(loss, tmp_path / "g.dot")
    assert dot_path.read_text().startswith("digraph") and svg_path == tmp_path / "g.svg"
    assert svg_path.read_text().strip() == "<svg/>" and "rendered" in message


@pytest.mark.skipif(graph.shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_real_graphviz_renders_the_graph(tmp_path: Path) -> None:
    loss, _ = small_loss()
    loss.backward()
    _, svg_path, message = graph.write_graph(loss, tmp_path / "g.dot")
    assert svg_path is not None, message
    assert "<svg" in svg_path.read_text()


# ---------------------------------------------------------------------- the must-show figure, on real data


@pytest.mark.slow
@requires_data
def test_three_way_agreement_on_real_mnist(tmp_path: Path, capsys) -> None:
    report_path = tmp_path / "autograd.json"
    code, out, _ = run_cli(["autograd", "--dtype", "float64", "--data-root", DATA_ROOT,
                            "--report", str(report_path)], capsys)
    assert code == 0, out
    worst = json.loads(report_path.read_text())["agreement"]["max_rel_error"]
    assert set(worst) == PAIRS and max(worst.values()) <= 1e-10
