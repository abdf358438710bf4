"""Tests for compare/pictures/ and `--plots DIR` on `train` and `grads`: real PNG files of the expected
size, headless, and a one-line install hint (with nothing else broken) when matplotlib is missing.

The command tests run on the tiny fake MNIST of tests/conftest.py (`tiny_data_root`), so they need
no real data; they run in float64, where the lockstep verdict passes whatever the images are.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
import torch

import compare.pictures
from compare.cli import main
from compare.pictures import canvas, curves, gradients, predictions, weights
from compare.training.loop import RunRecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header; fails unless the file really is a PNG."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def assert_picture(path: Path, name: str, size: tuple[float, float] | None = None, min_colours: int = 8) -> None:
    """A real PNG of exactly the size `canvas.pixels` promises, with something drawn on it."""
    from PIL import Image

    assert Path(path).is_file(), f"{path} was not written"
    assert png_size(path) == canvas.pixels(name, size)
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) >= min_colours, f"{path} is (nearly) blank: {len(colours)} colours"


@pytest.fixture
def matplotlib_missing(monkeypatch):
    """Make `import matplotlib` fail, as on an install without the [plots] extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


# --- without matplotlib ---------------------------------------------------------------------

def test_without_matplotlib_plots_fail_with_the_install_hint_and_nothing_else(matplotlib_missing, tiny_data_root,
                                                                             tmp_path, capsys):
    # A 784-3-10 network keeps grads' finite differences (every coordinate) to a second.
    common = ["--epochs", "1", "--batch-size", "50", "--hidden", "3", "--dtype", "float64",
              "--data-root", str(tiny_data_root)]
    assert main(["train", *common, "--plots", str(tmp_path / "pics")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {canvas.INSTALL_HINT}\n"
    assert "pip install -e '.[plots]'" in err
    assert not (tmp_path / "pics").exists()  # failed before training, wrote nothing

    assert main(["grads", *common, "--plots", str(tmp_path / "pics")]) == 2
    assert capsys.readouterr().err == f"error: {canvas.INSTALL_HINT}\n"

    toy = ["--epochs", "2", "--samples", "20"]
    assert main(["playground", *toy, "--plots", str(tmp_path / "pics"), "--gif"]) == 2
    assert capsys.readouterr().err == f"error: {canvas.INSTALL_HINT}\n"

    # Without --plots the same commands work as ever.
    assert main(["train", *common]) == 0
    assert main(["grads", *common]) == 0
    assert main(["playground", *toy]) == 0
    assert "Add --plots DIR" in capsys.readouterr().out


def test_without_matplotlib_the_pictures_modules_still_import(matplotlib_missing):
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(compare.pictures.__path__):
        importlib.reload(importlib.import_module(f"compare.pictures.{module.name}"))
    from compare.base.errors import UsageError

    with pytest.raises(UsageError, match=r"pip install -e '\.\[plots\]'"):
        canvas.require_matplotlib()


# --- the commands write their pictures -------------------------------------------------------

def test_train_plots(tiny_data_root, tmp_path):
    pytest.importorskip("matplotlib")
    pics, report_path = tmp_path / "pics", tmp_path / "report.json"
    code = main(["train", "--epochs", "2", "--batch-size", "50", "--dtype", "float64",
                 "--data-root", str(tiny_data_root), "--plots", str(pics), "--report", str(report_path)])
    assert code == 0
    for name in ["curves", "first_layer", "confusion", "misclassified"]:
        assert_picture(pics / f"{name}.png", name)
    report = json.loads(report_path.read_text())
    assert report["config"]["plots"] == str(pics)
    assert sorted(Path(p).name for p in report["plots"]) == [
        "activations.png", "confusion.png", "curves.png", "first_layer.png", "gradients.png", "misclassified.png",
        "update_ratio.png"]


def test_grads_plots(tiny_data_root, tmp_path):
    pytest.importorskip("matplotlib")
    pics = tmp_path / "pics"
    common = ["--hidden", "3,3", "--batch-size", "8", "--data-root", str(tiny_data_root), "--plots", str(pics)]
    assert main(["grads", "--dtype", "float64", *common]) == 0
    assert_picture(pics / "grads.png", "grads")


def test_gradient_errors_with_a_per_element_tolerance_and_exact_zeros(tmp_path):
    pytest.importorskip("matplotlib")
    from compare.base import agreement

    parameters = [dict(name="layers.0.weight", max_abs_diff=2e-8, max_rel_error=1.5e-7, finite_diff_rel_error=1e-8),
                  dict(name="layers.0.bias", max_abs_diff=0.0, max_rel_error=0.0, finite_diff_rel_error=0.0)]
    path = gradients.gradient_errors(tmp_path, parameters, agreement.AUTOGRAD_FLOAT32, agreement.FINITE_DIFF_FLOAT64,
                                 "float32")
    assert_picture(path, "grads")


# --- the drawing functions on made-up runs ---------------------------------------------------

def fake_records(steps: int, drift: float) -> dict[str, RunRecord]:
    g = torch.Generator().manual_seed(0)
    losses = (2.3 * torch.exp(-torch.arange(steps) / 30) + 0.1 * torch.rand(steps, generator=g)).tolist()
    other = [v * (1 + drift * k) for k, v in enumerate(losses)]
    return {"scratch": RunRecord(step_losses=losses), "torch": RunRecord(step_losses=other)}


@pytest.mark.parametrize("dtype,drift", [("float64", 0.0), ("float32", 1e-7)])
def test_training_curves(tmp_path, dtype, drift):
    pytest.importorskip("matplotlib")
    records = fake_records(120, drift)  # drift 0: every step identical, drawn on the floor of the log axis
    path = curves.training_curves(tmp_path, {n: r.step_losses for n, r in records.items()},
                                 {"test accuracy": {"scratch": [0.8, 0.9, 0.92], "torch": [0.8, 0.9, 0.93]}},
                                 dtype=dtype, steps_per_epoch=40, loss_tolerance=1e-9 if dtype == "float64" else None)
    assert_picture(path, "curves")


def test_the_difference_panel_says_what_happened():
    assert "rounding level" in curves._difference_story("float64", [1e-16, 3e-15], 1e-9)
    assert "chaotic" in curves._difference_story("float64", [1e-16, 0.5], 1e-9)  # never claims rounding level
    assert "drift" in curves._difference_story("float32", [1e-7, 1e-3], None)


def test_first_layer_weights_shows_at_most_32_neurons(tmp_path):
    pytest.importorskip("matplotlib")
    w = torch.randn(100, 784, dtype=torch.float64)
    assert_picture(weights.first_layer_weights(tmp_path, {"scratch": w, "torch": w + 1e-9}), "first_layer")


def test_confusion_and_mistakes_with_long_class_names_and_no_mistakes(tmp_path):
    pytest.importorskip("matplotlib")
    classes = ("T-shirt/top", "Trouser", "Pullover")
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    confusion = torch.tensor([[2, 0, 0], [0, 2, 0], [0, 1, 1]])
    assert_picture(predictions.confusion_matrices(tmp_path, {"scratch": confusion, "torch": confusion}, classes),
                   "confusion")
    images = torch.rand(6, 28, 28)
    right = {"scratch": y.clone(), "torch": y.clone()}
    assert_picture(predictions.misclassified(tmp_path, images, y, right, classes), "misclassified", min_colours=2)
    disagree = {"scratch": torch.tensor([1, 1, 2, 0, 1, 0]), "torch": torch.tensor([2, 1, 2, 0, 1, 0])}
    assert_picture(predictions.misclassified(tmp_path, images, y, disagree, classes), "misclassified")
