"""`--model vit` and `--model lstm`: the registry builds the three variants bit-identical, and every command
works with them (grads, train, evaluate, autograd, bench, pictures), on tiny fake data with small sizes.

    pytest tests/test_sequence_families.py -q                       # about half a minute
    MNIST_DATA_ROOT=/work/shared/data pytest tests/test_sequence_families.py -q -m slow   # real MNIST
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import DATA_ROOT, requires_data
from torch.utils.flop_counter import FlopCounterMode

import scratch
from compare import models
from compare.base.errors import UsageError
from compare.cli import main
from compare.options.groups import BASE
from compare.pictures import canvas
from compare.training.learners import build_engine

# Small sizes, so that every command runs in a second or two on fake data.
SMALL = {
    "vit": ["--model", "vit", "--depth", "1", "--dim", "8", "--heads", "2", "--mlp-dim", "8"],
    "vit-cls": ["--model", "vit", "--depth", "1", "--dim", "8", "--heads", "2", "--mlp-dim", "8", "--readout", "cls",
                "--patch-size", "14"],
    "lstm": ["--model", "lstm", "--hidden-size", "4"],
}
SMALL_SPECS = {
    "vit": ("vit", dict(depth=2, dim=8, heads=2, mlp_dim=12)),
    "vit-cls": ("vit", dict(depth=1, dim=8, heads=2, mlp_dim=12, readout="cls", patch_size=14)),
    "lstm": ("lstm", dict(hidden_size=5)),
}
PICTURES = {"vit": "attention", "vit-cls": "attention", "lstm": "hidden_states"}


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def built(name: str, impl: str, seed: int = 0):
    family, options = SMALL_SPECS[name]
    torch.manual_seed(seed)
    return models.build(models.make_spec(family, **options), impl, 784, 10)


# ---------------------------------------------------------------- the registry


def test_both_families_are_registered_with_their_own_options() -> None:
    assert {"vit", "lstm"} <= set(models.FAMILIES)
    assert set(models.FAMILIES["vit"].defaults) == {"patch_size", "dim", "depth", "heads", "mlp_dim", "readout"}
    assert set(models.FAMILIES["lstm"].defaults) == {"hidden_size"}
    for name in ("vit", "lstm"):
        family = models.FAMILIES[name]
        assert family.training.optimizer == "adam" and family.training.batch_size == 64
        assert not family.kinked(models.make_spec(name)) and not family.any_input_size
        assert family.step_flops is not None and family.pictures is not None and family.bench_specs
    assert models.FAMILIES["mlp"].training.optimizer == BASE.optimizer == "sgd"


@pytest.mark.parametrize("values, problem", [
    (dict(patch_size=5), "--patch-size 5 does not divide"),
    (dict(dim=30, heads=4), "--heads 4 does not divide --dim 30"),
])
def test_impossible_vit_sizes_are_usage_errors(values: dict, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        models.make_spec("vit", **values)


@pytest.mark.parametrize("family", ["vit", "lstm"])
def test_inputs_that_are_not_28x28_images_are_refused(family: str) -> None:
    with pytest.raises(UsageError, match="28x28"):
        models.build(models.make_spec(family), "scratch", 2, 2)


@pytest.mark.parametrize("name", SMALL_SPECS)
def test_scratch_torch_and_engine_start_bit_identical_with_the_same_names(name: str) -> None:
    hand, twin, engine = (built(name, impl) for impl in ("scratch", "torch", "engine"))
    ph, pt, pe = dict(hand.named_parameters()), dict(twin.named_parameters()), dict(engine.named_parameters())
    assert list(ph) == list(pt) == list(pe)
    for n in ph:
        assert torch.equal(ph[n], pt[n].detach()) and torch.equal(ph[n], pe[n].data), n
    assert not torch.equal(ph[n], dict(built(name, "scratch", seed=1).named_parameters())[n])  # the seed matters


def test_the_default_optimizer_is_the_familys_unless_given(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "r.json"
    train = ["train", "--epochs", "1", "--data-root", str(tiny_data_root), "--report", str(report)]
    code, out, _ = run_cli([*train, *SMALL["lstm"]], capsys)
    config = json.loads(report.read_text())["config"]
    assert code == 0 and config["optimizer"] == "adam" and config["lr"] == 2e-3 and config["batch_size"] == 64, out
    code, out, _ = run_cli([*train, *SMALL["lstm"], "--optimizer", "momentum"], capsys)
    config = json.loads(report.read_text())["config"]
    assert code == 0 and config["optimizer"] == "momentum" and config["lr"] == 0.01
    code, out, _ = run_cli([*train, "--hidden", "8"], capsys)
    assert code == 0 and json.loads(report.read_text())["config"]["optimizer"] == "sgd"  # mlp keeps plain SGD
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0 and "(default: the family's: mlp: sgd; cnn: sgd; vit: adam; lstm: adam)" in " ".join(out.split())


def test_the_playground_refuses_image_families(capsys) -> None:
    code, _, err = run_cli(["playground", "--model", "vit"], capsys)
    assert code == 2 and "--model vit reads only 1x28x28 images" in err and "choose --model mlp" in err


# ---------------------------------------------------------------- FLOPs


@pytest.mark.parametrize("name", SMALL_SPECS)
def test_step_flops_count_every_matrix_product_of_the_scratch_step(name: str) -> None:
    """torch's own counter, watching the hand-written forward and backward, finds the same matrix products."""
    model = built(name, "scratch")
    loss = scratch.CrossEntropyLoss()
    x, y = torch.randn(3, 784), torch.tensor([1, 2, 3])
    with FlopCounterMode(display=False) as counter:
        loss.forward(model.forward(x), y)
        model.backward(loss.backward(), input_grad=False)
    family, options = SMALL_SPECS[name]
    spec = models.make_spec(family, **options)
    counted, share = models.family_of(spec).step_flops(spec, 784, 10, 3)
    if family == "lstm":  # scratch/rnn.py's products: the biases ride in them (a column of ones in each step's
        # product, a row of its gradients' product), and no gradient is carried into h_0, which is no parameter
        batch, steps, gates = 3, 28, 4 * options["hidden_size"]
        counted += 2 * (2 * batch * steps * gates) - 2 * batch * gates * options["hidden_size"]
    assert counted == counter.get_total_flops() and 0 < share < 1


def test_lstm_flops_by_hand() -> None:
    from compare.models.flops import lstm_step_flops

    # B=2, T=3, I=4, H=5, C=6: input projection 2 x 2*2*3*4*20, recurrence 3 x 2*2*3*5*20, head 3 x 2*2*5*6
    assert lstm_step_flops(2, 3, 4, 5, 6) == 1920 + 3600 + 360


# ---------------------------------------------------------------- the commands


@pytest.mark.parametrize("name", SMALL)
def test_grads_passes_in_float64(name: str, tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "grads.json"
    code, out, _ = run_cli(["grads", *SMALL[name], "--dtype", "float64", "--batch-size", "4", "--data-root",
                            str(tiny_data_root), "--report", str(report)], capsys)
    assert code == 0, out
    agreement = json.loads(report.read_text())["agreement"]
    assert agreement["max_rel_error"] <= 1e-10 and agreement["max_finite_diff_rel_error"] <= 1e-7
    # smooth networks take the larger finite-difference step; a class token, near zero at first, the small one
    assert ("h=1e-06" if name == "vit-cls" else "h=1e-05") in out


@pytest.mark.parametrize("name", SMALL)
def test_autograd_three_ways_in_float64(name: str, tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "autograd.json"
    code, out, _ = run_cli(["autograd", *SMALL[name], "--dtype", "float64", "--batch-size", "8", "--data-root",
                            str(tiny_data_root), "--report", str(report)], capsys)
    assert code == 0, out
    result = json.loads(report.read_text())
    assert result["agreement"]["identical_start"] and max(result["agreement"]["max_rel_error"].values()) <= 1e-10
    assert {p["name"] for p in result["parameters"]} >= {"loss", "head.weight"}


@pytest.mark.parametrize("name", SMALL)
def test_train_save_and_evaluate(name: str, tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    code, out, _ = run_cli(["train", *SMALL[name], "--dtype", "float64", "--epochs", "1", "--data-root",
                            str(tiny_data_root), "--save", str(folder)], capsys)
    assert code == 0, out
    assert "Verdict: PASSED" in out and "trajectories identical for all 4 steps" in out
    code, out, _ = run_cli(["evaluate", "--checkpoint", str(folder), "--data-root", str(tiny_data_root)], capsys)
    assert code == 0 and "Verdict: PASSED" in out, out


@pytest.mark.parametrize("name", SMALL_SPECS)
def test_the_familys_picture_is_drawn_from_both_sides(name: str, tmp_path: Path) -> None:
    from PIL import Image

    family, options = SMALL_SPECS[name]
    spec = models.make_spec(family, **options)
    trained = {"scratch": built(name, "scratch"), "torch": built(name, "torch")}
    paths = models.family_of(spec).pictures(tmp_path, spec, trained, torch.randn(8, 784), [str(i) for i in range(10)])
    assert [p.name for p in paths] == [f"{PICTURES[name]}.png"]
    assert Image.open(paths[0]).size == canvas.pixels(PICTURES[name])


def test_train_plots_include_the_familys_picture(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = run_cli(["train", *SMALL["lstm"], "--epochs", "1", "--data-root", str(tiny_data_root),
                            "--plots", str(tmp_path)], capsys)
    assert code == 0 and (tmp_path / "hidden_states.png").is_file(), out


@pytest.mark.parametrize("name", ["vit", "lstm"])
def test_train_in_float32_passes(name: str, tiny_data_root: Path, capsys) -> None:
    code, out, _ = run_cli(["train", *SMALL[name], "--epochs", "1", "--data-root", str(tiny_data_root)], capsys)
    assert code == 0 and "Verdict: PASSED" in out, out


@pytest.mark.parametrize("name", ["vit", "lstm"])
def test_the_engine_trains_in_lockstep_with_torch(name: str, tiny_data_root: Path, capsys) -> None:
    code, out, _ = run_cli(["train", "--engine", "autograd", *SMALL[name], "--dtype", "float64", "--epochs", "1",
                            "--data-root", str(tiny_data_root)], capsys)
    assert code == 0 and "scratch (engine)" in out and "Verdict: PASSED" in out, out


def test_the_engine_lstm_learns_fake_data() -> None:
    """A few Adam steps on one fixed batch of fake images lower the engine LSTM's loss."""
    from compare.training.config import Config

    config = Config(model=models.make_spec("lstm", hidden_size=16), optimizer="adam", lr=1e-2, batch_size=16)
    learner = build_engine(config)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 784, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    losses = [learner.train_step(x, y) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_bench_has_a_row_for_each(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--no-typical", "--models", "vit:depth=1/dim=8/heads=2/mlp-dim=8",
                 "lstm:hidden-size=4", "--batch-sizes", "16", "--repeats", "1", "--block-seconds", "0.005",
                 "--threads", "1", "--epoch-images", "64", "--data-root", str(tiny_data_root), "--report", str(report)])
    out = capsys.readouterr().out
    results = json.loads(report.read_text())["results"]
    assert code == 0, out
    assert [r["model"] for r in results] == ["vit p7 d8x1", "lstm h4"]
    assert all(r["scratch_step_s"] > 0 and r["torch_step_s"] > 0 for r in results)


# ---------------------------------------------------------------- real MNIST (slow)


@pytest.mark.slow
@requires_data
@pytest.mark.parametrize("family", ["vit", "lstm"])
def test_default_model_gradients_on_real_mnist(family: str, tmp_path: Path, capsys) -> None:
    """Every parameter tensor of the default model within 1e-10 of autograd and 1e-7 of finite differences
    (sampled, every tensor), in float64, on the first batch of real MNIST."""
    report = tmp_path / "grads.json"
    code, out, _ = run_cli(["grads", "--model", family, "--dtype", "float64", "--data-root", DATA_ROOT,
                            "--report", str(report)], capsys)
    assert code == 0, out
    result = json.loads(report.read_text())
    assert all(p["passed"] and p["finite_diff_coordinates"] >= min(20, math.prod(p["shape"]))
               for p in result["parameters"]), result["parameters"]


@pytest.mark.slow
@requires_data
@pytest.mark.parametrize("family", ["vit", "lstm"])
def test_default_model_three_ways_on_real_mnist(family: str, tmp_path: Path, capsys) -> None:
    report = tmp_path / "autograd.json"
    code, out, _ = run_cli(["autograd", "--model", family, "--dtype", "float64", "--data-root", DATA_ROOT,
                            "--report", str(report)], capsys)
    assert code == 0, out
    assert max(json.loads(report.read_text())["agreement"]["max_rel_error"].values()) <= 1e-10


@pytest.mark.slow
@requires_data
@pytest.mark.parametrize("family", ["vit", "lstm"])
def test_small_models_learn_a_slice_of_real_mnist_in_lockstep(family: str, mnist64) -> None:
    """Float64, the family's default optimizer, 300 steps of batch 64 on the first 19,200 images: both sides
    take identical steps (losses within 1e-9) and, with small sizes, classify well above chance."""
    from compare.training.config import Config
    from compare.training.learners import build_pair
    from compare.training.loop import train_lockstep

    small = dict(depth=1, dim=32, heads=2, mlp_dim=64) if family == "vit" else dict(hidden_size=32)
    config = Config(model=models.make_spec(family, **small), optimizer="adam", lr=2e-3, batch_size=64, epochs=1,
                    dtype="float64")
    learners = build_pair(config)
    n = 300 * 64
    records = train_lockstep(list(learners), mnist64.x_train[:n], mnist64.y_train[:n], mnist64.x_test[:2000],
                             mnist64.y_test[:2000], epochs=1, batch_size=64, seed=0, progress=False)
    s, t = records["scratch"], records["torch"]
    assert max(abs(a - b) / abs(b) for a, b in zip(s.step_losses, t.step_losses, strict=True)) <= 1e-9
    assert s.history[-1].test_accuracy >= 0.7 and torch.equal(s.predictions, t.predictions)  # measured 73%, 81%
