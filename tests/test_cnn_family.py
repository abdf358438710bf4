"""The CNN family (`--model cnn`, compare/models/cnn.py): its options, its three variants, every command with it.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python -m pytest tests/test_cnn_family.py -q
    MNIST_DATA_ROOT=/work/shared/data ... -m slow        # a slice of the real MNIST

The command tests run on the tiny fake MNIST of tests/conftest.py with a small CNN (TINY: two stages
of 2 and 4 channels, one hidden layer of 8), in float64, so that they take a second or two each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import DATA_ROOT, requires_data
from test_pictures import assert_picture

from compare import models
from compare.base.errors import UsageError
from compare.cli import main
from compare.models import cnn, flops
from compare.training.config import Config
from compare.training.learners import build_pair
from compare.training.loop import train_lockstep

TINY = ["--model", "cnn", "--channels", "2,4", "--fc", "8", "--batch-size", "8", "--dtype", "float64"]
TINY_SPEC = dict(channels=(2, 4), fc=(8,))
VARIANTS = [  # option values over the family's defaults; (spec, can the engine build it)
    (dict(), True),
    (dict(pool="avg", activation="tanh", channels=(3, 4, 5), kernel_size=3, padding=(1,), fc=(16, 12)), True),
    (dict(batch_norm=True, channels=(4, 6)), False),
]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------- the registry entry


def test_spec_defaults_are_lenet5_and_parse_round_trips() -> None:
    spec = models.make_spec("cnn")
    assert spec.options == dict(channels=(6, 16), kernel_size=5, padding=(2, 0), pool="max", batch_norm=False,
                                fc=(120, 84), activation="relu")
    assert models.family_of(spec).name_of(spec, 784, 10) == "LeNet-5"
    other = models.parse_spec("cnn:channels=4,8/pool=avg/batch-norm=true/padding=1")
    assert other["channels"] == (4, 8) and other["pool"] == "avg" and other["batch_norm"] and other["padding"] == (1,)
    assert models.parse_spec(models.spec_text(other)) == other
    assert models.family_of(other).name_of(other, 784, 10) == "cnn 4,8 pad 1 avg bn"
    assert models.family_of(other).input_shape(other, 784) == (1, 28, 28)


def test_an_option_of_another_family_is_refused(capsys) -> None:
    code, _, err = run_cli(["grads", "--model", "cnn", "--hidden", "16"], capsys)
    assert code == 2 and "--hidden is an option of --model mlp, not of --model cnn" in err
    code, _, err = run_cli(["grads", "--channels", "4,8"], capsys)  # the default family is the MLP
    assert code == 2 and "--channels is an option of --model cnn" in err


def test_help_lists_the_cnn_options_with_their_defaults(capsys) -> None:
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--channels C1,C2 [cnn]", "(default: cnn: 6,16)", "--kernel-size K [cnn]", "(default: cnn: 2,0)",
                 "--pool {max,avg} [cnn]", "--fc F1,F2 [cnn]", "(default: cnn: 120,84)",
                 "(default: mlp: off, cnn: off)"):
        assert text in out, text


@pytest.mark.parametrize("values, message", [
    (dict(channels=(6, 16, 32)), "2 entries for 3 conv stages"),
    (dict(kernel_size=11, padding=(0,), channels=(4, 8)), "too small for its 2x2 pooling"),
    (dict(fc=()), "--fc needs at least one positive size"),
])
def test_impossible_specs_are_refused_naming_the_options(values, message) -> None:
    with pytest.raises(UsageError, match=message):
        models.make_spec("cnn", **values)


def test_other_image_sizes_are_refused() -> None:
    with pytest.raises(UsageError, match="needs 28x28 images"):
        models.build(models.make_spec("cnn"), "scratch", input_size=2, num_classes=2)


# ---------------------------------------------------------------------- three variants, one start


@pytest.mark.parametrize("values, engine", VARIANTS, ids=["lenet5", "avg-tanh-3-stages", "batch-norm"])
def test_every_variant_starts_bit_identical(values: dict, engine: bool) -> None:
    spec = models.make_spec("cnn", **values)
    built = {}
    for impl in ("scratch", "torch", "engine") if engine else ("scratch", "torch"):
        torch.manual_seed(3)
        model = models.build(spec, impl, 784, 10)
        built[impl] = {n: p.data if impl == "engine" else p.detach() for n, p in model.named_parameters()}
    reference = built["torch"]
    for impl, params in built.items():
        assert list(params) == list(reference), impl
        for name, p in params.items():
            assert torch.equal(p, reference[name]), f"{impl} {name}"
    if not engine:
        with pytest.raises(UsageError, match="no batch norm"):
            models.build(spec, "engine", 784, 10)


@pytest.mark.parametrize("values", [TINY_SPEC, dict(TINY_SPEC, pool="avg", activation="tanh", kernel_size=3)],
                         ids=["max-relu", "avg-tanh"])
def test_engine_cnn_computes_the_same_logits_and_feature_maps_as_torch(values: dict) -> None:
    from scratch.engine import Value

    spec = models.make_spec("cnn", **values)
    torch.manual_seed(0)
    x = torch.randn(3, 784, dtype=torch.float64)
    torch.manual_seed(1)
    engine = models.build(spec, "engine", 784, 10).to(dtype=torch.float64)
    torch.manual_seed(1)
    reference = models.build(spec, "torch", 784, 10).to(dtype=torch.float64)
    torch.testing.assert_close(engine(Value(x)).data, reference(x), rtol=1e-12, atol=1e-12)
    for a, b in zip(engine.feature_maps(x), reference.feature_maps(x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_engine_cnn_learns_a_batch() -> None:
    """A few steps of `train --engine autograd` on one fake batch lower its loss, in step with the hand CNN."""
    config = Config(model=models.make_spec("cnn", **TINY_SPEC), engine="autograd", lr=0.2, dtype="float64")
    engine, reference = build_pair(config)
    hand, _ = build_pair(Config(model=config.model, lr=0.2, dtype="float64"))
    torch.manual_seed(0)
    x, y = torch.randn(16, 784, dtype=torch.float64), torch.randint(0, 10, (16,))
    losses = [(engine.train_step(x, y), hand.train_step(x, y), reference.train_step(x, y)) for _ in range(5)]
    by_step = [loss[0] for loss in losses]
    assert by_step == sorted(by_step, reverse=True) and by_step[-1] < 0.9 * by_step[0], by_step
    for by_engine, by_hand, by_torch in losses:
        assert by_engine == pytest.approx(by_hand, rel=1e-12) and by_engine == pytest.approx(by_torch, rel=1e-12)
    for name, p in engine.named_parameters().items():
        torch.testing.assert_close(p, hand.named_parameters()[name], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------- arithmetic


def test_flops_match_a_count_by_hand() -> None:
    # Batch 2. conv1: 1->2 channels, 3x3, 4x4 outputs: forward and weight gradient only (the images need no
    # gradient): 2 products * 2 FLOPs * (2*16 places) * 2 outputs * (1*9) inputs = 2304.
    # conv2: 2->3, 3x3, 2x2 outputs, with its input gradient: 3 * 2 * (2*4) * 3 * (2*9) = 2592.
    # fc 3->5->10: 3 products each, 3 * 2 * 2 * (3*5 + 5*10) = 780.
    assert flops.cnn_step_flops([flops.ConvShape(1, 2, 3, 4), flops.ConvShape(2, 3, 3, 2)], [3, 5, 10], 2) == 5676
    # The family's count of a spec: 28x28, conv 3x3 pad 1 (1->2, 28x28 outputs) -> pool 14x14, conv 3x3 (2->3,
    # 12x12 outputs) -> pool 6x6, flatten 3*36 = 108 -> fc 5 -> 10:
    # 2*2*(2*784)*2*9 + 3*2*(2*144)*3*18 + 3*2*2*(108*5 + 5*10) = 112896 + 93312 + 7080.
    spec = models.make_spec("cnn", channels=(2, 3), kernel_size=3, padding=(1, 0), fc=(5,))
    count, share = cnn.step_flops(spec, 784, 10, batch_size=2)
    assert count == 112896 + 93312 + 7080
    assert 0 < share < 0.5


def test_bench_rows_come_from_the_family(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "bench.json"
    code, out, _ = run_cli(["bench", "--models", "cnn:channels=2,4/fc=8", "--batch-sizes", "8", "--repeats", "1",
                            "--epoch-images", "64", "--block-seconds", "0.01", "--no-compile", "--no-typical",
                            "--data-root", str(tiny_data_root), "--report", str(report)], capsys)
    assert code == 0, out
    assert "cnn 2,4 fc 8" in out
    results = json.loads(report.read_text())["results"]
    spec = models.make_spec("cnn", **TINY_SPEC)
    assert [r["model"] for r in results] == ["cnn 2,4 fc 8"]
    assert results[0]["flops_per_step"] == cnn.step_flops(spec, 784, 10, 8)[0]


# ---------------------------------------------------------------------- every command


def test_grads_checks_every_coordinate_of_a_small_cnn(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "grads.json"
    code, out, _ = run_cli(["grads", *TINY, "--data-root", str(tiny_data_root), "--report", str(report)], capsys)
    assert code == 0, out
    parameters = json.loads(report.read_text())["parameters"]
    assert [p["name"] for p in parameters] == ["layers.0.weight", "layers.0.bias", "layers.3.weight",
                                               "layers.3.bias", "layers.7.weight", "layers.7.bias",
                                               "layers.9.weight", "layers.9.bias"]
    for p in parameters:
        assert p["passed"] and p["max_rel_error"] <= 1e-10 and p["finite_diff_rel_error"] <= 1e-7, p
        # every coordinate: judged, or left out where a kink of the loss lies within the nudge
        assert p["finite_diff_coordinates"] + p["finite_diff_kinks"] == torch.Size(p["shape"]).numel(), p
        assert p["finite_diff_kinks"] <= p["finite_diff_coordinates"] / 4, p


def test_finite_differences_leave_out_only_the_kinks_that_max_pooling_makes() -> None:
    """Two pooled entries a hair apart: nudging a weight swaps them, and the loss has a kink there."""
    from compare.checking import finite_diff

    weight = torch.tensor([1.0, 1.0 + 1e-7, 0.5], dtype=torch.float64)
    loss_at = lambda: torch.maximum(weight[0], weight[1]).item() * 3.0 + weight[2].item() ** 2  # noqa: E731
    central, disagreement = finite_diff.finite_difference_slopes(loss_at, weight, torch.arange(3), h=1e-6)
    scale = 3.0
    assert (disagreement > finite_diff.KINK_RTOL * scale).tolist() == [True, True, False]
    assert central[2].item() == pytest.approx(1.0, rel=1e-8)  # smooth: the derivative of w^2 at 0.5


def test_train_save_and_evaluate(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    code, out, _ = run_cli(["train", *TINY, "--batch-norm", "--epochs", "1", "--data-root", str(tiny_data_root),
                            "--save", str(folder)], capsys)
    assert code == 0, out
    assert "Model: CNN cnn 2,4 bn fc 8: conv 5x5 1->2 pad 2, conv 5x5 2->4, 2x2 max pool, fc 100-8-10 relu" in out
    # With batch norm the convolutions have no bias: 50 + 200 conv weights, 2 * (2 + 4) batch-norm values,
    # 808 + 90 in the fully connected layers.
    assert "bit-identical (1,160 values in 10 tensors)" in out
    code, out, _ = run_cli(["evaluate", "--checkpoint", str(folder), "--data-root", str(tiny_data_root)], capsys)
    assert code == 0 and "Verdict: PASSED" in out, out


def test_train_with_the_engine(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "train.json"
    code, out, _ = run_cli(["train", *TINY, "--engine", "autograd", "--epochs", "1",
                            "--data-root", str(tiny_data_root), "--report", str(report)], capsys)
    assert code == 0, out
    result = json.loads(report.read_text())
    assert result["scratch"]["implementation"] == "engine" and result["agreement"]["passed"]


def test_autograd_three_ways(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "autograd.json"
    code, out, _ = run_cli(["autograd", *TINY, "--data-root", str(tiny_data_root), "--report", str(report)], capsys)
    assert code == 0, out
    result = json.loads(report.read_text())
    assert max(result["agreement"]["max_rel_error"].values()) <= 1e-10
    assert "unfold" in out and "layers.3.weight (parameter)" in out  # the graph of the convolutions
    code, _, err = run_cli(["autograd", *TINY, "--batch-norm", "--data-root", str(tiny_data_root)], capsys)
    assert code == 2 and "no batch norm" in err


def test_playground_refuses_the_cnn_with_a_reason(capsys) -> None:
    code, _, err = run_cli(["playground", "--model", "cnn", "--epochs", "1", "--samples", "20"], capsys)
    assert code == 2 and "points have 2 coordinates" in err and "--model mlp" in err


def test_train_plots_draw_the_filters_and_feature_maps(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "pics"
    code, out, _ = run_cli(["train", *TINY, "--epochs", "1", "--data-root", str(tiny_data_root),
                            "--plots", str(folder)], capsys)
    assert code == 0, out
    assert_picture(folder / "conv_filters.png", "conv_filters")
    assert_picture(folder / "feature_maps.png", "feature_maps")
    assert not (folder / "first_layer.png").exists()  # an MLP's picture: its first weights are no images


def test_pictures_of_the_engine_cnn(tmp_path: Path) -> None:
    """With --engine autograd the scratch side is the engine's CNN, whose parameters are Values."""
    pytest.importorskip("matplotlib")
    spec = models.make_spec("cnn", **TINY_SPEC)
    built = {}
    for side, impl in (("scratch", "engine"), ("torch", "torch")):
        torch.manual_seed(0)
        built[side] = models.build(spec, impl, 784, 10)
    paths = cnn.pictures(tmp_path, spec, built, torch.rand(4, 784), [str(k) for k in range(10)])
    assert [p.name for p in paths] == ["conv_filters.png", "feature_maps.png"]
    for path in paths:
        assert_picture(path, path.stem)


# ---------------------------------------------------------------------- real data


@pytest.mark.slow
@requires_data
def test_lenet5_learns_a_slice_of_real_mnist() -> None:
    """LeNet-5 with the family's defaults, 6,000 training images, one epoch: both sides learn, in step."""
    from compare.data.mnist import load_dataset

    data = load_dataset("mnist", DATA_ROOT, download=False)
    family = models.family_of("cnn")
    config = Config(model=models.make_spec("cnn"), lr=family.training.lr["sgd"], dtype="float64",
                    batch_size=family.training.batch_size, epochs=1, lr_schedule="none")
    learners = build_pair(config)
    records = train_lockstep(list(learners), data.x_train[:6000].double(), data.y_train[:6000],
                             data.x_test[:1000].double(), data.y_test[:1000], epochs=1,
                             batch_size=config.batch_size, seed=0)
    accuracies = [records[learner.name].history[-1].test_accuracy for learner in learners]
    assert min(accuracies) >= 0.85, accuracies
    assert records["scratch"].predictions.equal(records["torch"].predictions)
    for a, b in zip(records["scratch"].step_losses, records["torch"].step_losses, strict=True):
        assert a == pytest.approx(b, rel=1e-10)
