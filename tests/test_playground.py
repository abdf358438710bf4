"""Tests for compare/data/toy.py and `python -m compare playground`: deterministic toy datasets of the
right shapes and classes, float64 lockstep agreement, the report contract, and the pictures."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_pictures import assert_picture

from compare.cli import main
from compare.commands import playground
from compare.data import toy
from compare.models import make_spec
from compare.pictures import canvas
from compare.pictures.playground import neurons_size
from compare.training.config import Config
from compare.training.learners import build_pair

# --- toy datasets -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", toy.DATASETS)
def test_toy_data_is_deterministic_for_a_seed(name):
    x1, y1 = toy.make_toy(name, 200, 0.1, seed=7)
    x2, y2 = toy.make_toy(name, 200, 0.1, seed=7)
    x3, _ = toy.make_toy(name, 200, 0.1, seed=8)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


@pytest.mark.parametrize("name", toy.DATASETS)
@pytest.mark.parametrize("samples", [2, 101, 400])
def test_toy_data_shapes_and_classes(name, samples):
    x, y = toy.make_toy(name, samples, 0.2, seed=0)
    assert x.shape == (samples, 2) and x.dtype == torch.float64
    assert y.shape == (samples,) and y.dtype == torch.int64
    assert set(y.tolist()) <= {0, 1}
    assert x.abs().max() <= toy.DOMAIN + 2  # noise may push a few points a little past the plotted square
    if samples >= 100:
        assert 0.3 < y.double().mean() < 0.7  # both classes, roughly balanced


def test_without_noise_each_dataset_has_its_shape():
    x, y = toy.make_toy("circles", 400, 0.0, seed=0)
    r = x.norm(dim=1)
    assert (r[y == 1] < 2.5).all() and (r[y == 0] >= 3.5).all()
    x, y = toy.make_toy("xor", 400, 0.0, seed=0)
    assert torch.equal(y, (x[:, 0] * x[:, 1] >= 0).long())
    assert (x.abs() >= 0.3).all()  # padded off the axes
    x, y = toy.make_toy("gaussian", 4000, 0.0, seed=0)
    assert torch.allclose(x[y == 1].mean(dim=0), torch.tensor([2.0, 2.0], dtype=torch.float64), atol=0.1)
    assert torch.allclose(x[y == 0].mean(dim=0), torch.tensor([-2.0, -2.0], dtype=torch.float64), atol=0.1)
    x, y = toy.make_toy("spiral", 400, 0.0, seed=0)
    assert x.norm(dim=1).max() <= 5.0
    # The two arms are the same curve turned by half a turn: point i of one is -(point i) of the other.
    a = x[y == 1][x[y == 1].norm(dim=1).argsort()]
    b = x[y == 0][x[y == 0].norm(dim=1).argsort()]
    assert torch.allclose(a, -b, atol=1e-12)


def test_train_and_test_sets_are_disjoint_halves():
    x_train, y_train, x_test, y_test = toy.train_test_split("gaussian", 150, 0.1, seed=3)
    assert x_train.shape == x_test.shape == (150, 2) and len(y_train) == len(y_test) == 150
    assert not torch.equal(x_train, x_test)


@pytest.mark.parametrize("kwargs,message", [(dict(name="moons"), "unknown toy dataset"),
                                            (dict(noise=0.7), "noise must be between"),
                                            (dict(samples=1), "at least 2 samples")])
def test_toy_data_rejects_bad_input(kwargs, message):
    args = dict(name="xor", samples=10, noise=0.1, seed=0) | kwargs
    with pytest.raises(ValueError, match=message):
        toy.make_toy(**args)


# --- the command ---------------------------------------------------------------------------------

def run_playground(tmp_path, *args: str) -> tuple[int, dict]:
    report_path = tmp_path / "report.json"
    code = main(["playground", *args, "--report", str(report_path)])
    return code, json.loads(report_path.read_text()) if report_path.exists() else {}


@pytest.mark.parametrize("args", [
    ["--dataset", "spiral", "--epochs", "40", "--samples", "100"],  # full-batch Adam, the default
    ["--dataset", "xor", "--activation", "relu", "--hidden", "8", "--optimizer", "sgd", "--lr", "0.05",
     "--batch-size", "10", "--epochs", "5", "--samples", "100"],
    ["--dataset", "circles", "--activation", "sigmoid", "--loss", "mse", "--optimizer", "momentum", "--lr", "0.1",
     "--batch-size", "25", "--epochs", "5", "--samples", "100", "--hidden", "6,5,4"],
])
def test_lockstep_agreement_holds_in_float64(tmp_path, args):
    threads = torch.get_num_threads()
    code, report = run_playground(tmp_path, *args)
    assert code == 0
    assert torch.get_num_threads() == threads  # one_thread() put it back
    verdict = report["agreement"]
    assert verdict["passed"] and verdict["identical_start"]
    assert verdict["max_step_loss_rel_diff"] <= 1e-9
    assert verdict["prediction_agreement"] == 1.0
    assert verdict["hidden_activation_max_diff"] <= 1e-10
    assert report["config"]["dtype"] == "float64" and report["config"]["dataset"] == args[1]
    assert report["config"]["samples"] == 100 and "noise" in report["config"]
    epochs = int(args[args.index("--epochs") + 1])
    for name in ("scratch", "torch"):
        assert len(report[name]["history"]) == epochs
        assert 0 <= report[name]["train_accuracy"] <= 1


def test_float32_is_judged_as_train_judges_it(tmp_path):
    code, report = run_playground(tmp_path, "--dtype", "float32", "--epochs", "20", "--samples", "100")
    agreement = report["agreement"]
    assert any("re-synchronized" in c for c in agreement["checks"])
    assert agreement["implementation"]["checks"][0]["reason"] == "first step of epoch 1"
    assert agreement["trajectory"]["threshold"] == 1e-5  # float32's separation threshold
    assert code == (0 if agreement["passed"] else 1)


@pytest.mark.parametrize("args,message", [
    (["--noise", "0.9"], "--noise must be between 0 and 0.5"),
    (["--samples", "1"], "--samples must be at least 2"),
    (["--gif"], "--gif writes boundary.gif into the pictures folder: add --plots DIR"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(["playground", "--epochs", "1", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_the_dataset_option_is_the_playground_s_own(capsys):
    assert main(["playground", "--dataset", "mnist"]) == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


def test_text_regions_without_matplotlib():
    learner, _ = build_pair(Config(dtype="float64", model=make_spec(hidden=(4,))), input_size=2, num_classes=2)
    text = playground.text_regions(learner, torch.float64, "cpu").splitlines()
    assert len(text) == playground.TEXT_ROWS
    assert all(len(line) == playground.TEXT_COLUMNS + 2 and set(line.strip()) <= {"#", "."} for line in text)


def test_hidden_activations_are_the_hidden_layers():
    config = Config(dtype="float64", model=make_spec(hidden=(5, 3), activation="tanh"))
    scratch_l, torch_l = build_pair(config, input_size=2, num_classes=2)
    points = toy.plane_grid(7, torch.float64, "cpu")
    assert points.shape == (49, 2)
    assert points[0].tolist() == [-toy.DOMAIN, -toy.DOMAIN] and points[-1].tolist() == [6.0, 6.0]
    hs, ht = playground.hidden_layers(scratch_l, points), playground.hidden_layers(torch_l, points)
    assert [h.shape for h in hs] == [(49, 5), (49, 3)]
    assert all(h.abs().max() <= 1 for h in hs)  # tanh outputs
    for a, b in zip(hs, ht, strict=True):
        assert (a - b).abs().max() <= 1e-15
    last = scratch_l.model.layers.layers[-1]
    assert torch.allclose(last.forward(hs[-1]), scratch_l.logits(points), rtol=0, atol=1e-15)


def test_pictures_and_gif(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    pics = tmp_path / "pics"
    code, report = run_playground(tmp_path, "--dataset", "circles", "--hidden", "4,3", "--epochs", "12",
                                  "--samples", "100", "--plots", str(pics), "--gif")
    assert code == 0
    assert_picture(pics / "boundary.png", "boundary")
    assert_picture(pics / "curves.png", "curves")
    assert_picture(pics / "neurons.png", "neurons",
                   neurons_size([torch.zeros(1, 1, 4), torch.zeros(1, 1, 3)]))
    with Image.open(pics / "boundary.gif") as gif:
        assert gif.n_frames == 12 + 1  # the untrained start and every epoch (fewer than GIF_FRAMES epochs)
        width, height = canvas.SIZES["gif"]
        assert gif.size == (round(width * canvas.GIF_DPI), round(height * canvas.GIF_DPI))
    assert sorted(p.rsplit("/", 1)[-1] for p in report["plots"]) == [
        "boundary.gif", "boundary.png", "curves.png", "neurons.png"]


def test_the_default_run_learns_the_spiral(tmp_path):
    """The playground's own defaults: spiral, 16,16 tanh, at least 95% training accuracy on both, agreement passed."""
    code, report = run_playground(tmp_path, "--dataset", "spiral", "--hidden", "16,16", "--activation", "tanh")
    assert code == 0 and report["agreement"]["passed"]
    for name in ("scratch", "torch"):
        assert report[name]["train_accuracy"] >= 0.95
    assert math.isclose(report["scratch"]["train_accuracy"], report["torch"]["train_accuracy"])
