"""`python -m compare bench`: the report contract, the FLOP count, the memory measure, and the
speed changes in scratch/ (which must not change a single gradient).

No test here asserts a time: timings on shared machines drift. Run:

    pytest tests/test_bench.py -q                    # under a minute; real MNIST via $MNIST_DATA_ROOT
    pytest tests/test_bench.py -q -m "not slow"      # without torch.compile (tens of seconds to compile)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import requires_data

import compare.commands.bench as bench
import scratch
from compare import models
from compare.base import agreement
from compare.cli import build_parser, main, resolve
from compare.commands import COMMANDS
from compare.commands.bench import contenders, memory, timing
from compare.models import make_spec
from compare.models.flops import elementwise_share, step_flops
from compare.options import groups
from compare.training.config import Config
from compare.training.learners import build_pair

REQUIRED_KEYS = {"model", "batch_size", "dtype", "device", "scratch_step_s", "torch_step_s", "ratio",
                 "scratch_peak_fraction"}
# A small, fast grid: tiny data root of 200 images, two rounds of short blocks.
FAST = ["--models", "mlp:hidden=16,16", "mlp:hidden=8", "--batch-sizes", "32", "64", "--repeats", "2",
        "--block-seconds", "0.005", "--threads", "1"]
# One grid point, one round, no DataLoader: the fastest run there is (about a second).
ONE_POINT = ["--quick", "--no-typical", "--models", "mlp:hidden=8", "--batch-sizes", "32", "--repeats", "1",
             "--block-seconds", "0.005", "--threads", "1"]


def run_bench(args: list[str], tmp_path: Path) -> tuple[int, dict]:
    report = tmp_path / "bench.json"
    code = main(["bench", *args, "--report", str(report)])
    return code, json.loads(report.read_text())


def resolved(*args: str) -> dict:
    """The options a `bench` command line runs with, its defaults filled in, as `run` resolves them."""
    parsed = build_parser().parse_args(["bench", *args])
    resolve(COMMANDS["bench"], parsed)
    return bench.resolve_options(groups.make_config(parsed, bench.CONFIG_KEYS))


def test_quick_is_each_familys_first_model_at_one_small_batch_size_without_compile() -> None:
    quick, full = resolved("--quick"), resolved()
    first_of_each = [next(spec for spec in full["models"] if models.family_of(spec) is family)
                     for family in models.FAMILIES.values()]
    assert quick["models"] == first_of_each  # every family, once, by the first model of its full grid
    assert quick["batch_sizes"] == [min(full["batch_sizes"])]
    assert quick["compile"] is False and full["compile"] is True
    assert quick["typical"] is True  # every contender but the compiled one still runs
    assert quick["repeats"] < full["repeats"] and quick["block_seconds"] < full["block_seconds"]
    assert quick["epoch_images"] < full["epoch_images"] and quick["epoch_images"] % quick["batch_sizes"][0]
    assert len(full["models"]) > len(models.FAMILIES)  # the full grid has more than one model of some family


def test_help_states_the_grid_that_runs_with_and_without_quick(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside the help
    assert main(["bench", "--help"]) == 0
    shown = capsys.readouterr().out
    quick, full = resolved("--quick"), resolved()
    for key in ("models", "batch_sizes", "repeats", "compile", "epoch_images", "block_seconds"):
        stated = f"(default: {bench.words(full[key])}; with --quick: {bench.words(quick[key])})"
        assert stated in shown, f"--{key.replace('_', '-')}: {stated} not in the help"
    assert (f"first bench model at batch {bench.words(quick['batch_sizes'])}, {quick['repeats']} rounds of "
            f"{bench.words(quick['block_seconds'])} s blocks, an epoch of {quick['epoch_images']} images, "
            "no torch.compile") in shown


def test_quick_report_contract(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    code, report = run_bench(["--quick", "--data-root", str(tiny_data_root), *FAST], tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    assert report["command"] == "bench" and report["config"]["quick"] is True
    assert report["config"]["models"] == ["mlp", "mlp:hidden=8"] and report["config"]["batch_sizes"] == [32, 64]
    assert report["agreement"]["passed"] is True
    assert len(report["results"]) == 4  # 2 models x 2 batch sizes
    for r in report["results"]:
        assert REQUIRED_KEYS <= set(r), sorted(REQUIRED_KEYS - set(r))
        assert r["dtype"] == "float32" and r["device"] == "cpu" and r["threads"] == 1
        assert r["model"] in ("784-16-16-10", "784-8-10")
        assert r["scratch_step_s"] > 0 and r["torch_step_s"] > 0
        # ratio is the median of per-round paired ratios, so it lies within them
        rounds = [s / t for s, t in zip(r["contenders"]["scratch"]["step_s_rounds"],
                                        r["contenders"]["torch"]["step_s_rounds"], strict=True)]
        assert min(rounds) <= r["ratio"] <= max(rounds)
        assert 0 < r["scratch_peak_fraction"] < 2  # a fraction of a measured peak (noise may pass 1 a little)
        assert r["flops_per_step"] == step_flops([int(n) for n in r["model"].split("-")], r["batch_size"])
        typical = r["contenders"]["typical"]
        assert typical["status"] == "ok" and typical["epoch_images"] == 200  # the tiny root holds 200 images
        assert r["contenders"]["compile"]["status"].startswith("skipped")
        assert r["contenders"]["scratch"]["peak_memory_bytes"] > 0
    assert "Step time" in out and "ratio" in out and "n/a = compile: skipped" in out


@pytest.fixture
def three_threads():
    """torch at 3 threads (not bench's --threads 1) for the test, then the count it had before."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def test_thread_count_is_restored_after_a_run_and_after_an_error(three_threads, tiny_data_root: Path,
                                                                 tmp_path: Path) -> None:
    code, report = run_bench(["--data-root", str(tiny_data_root), *ONE_POINT], tmp_path)
    assert code == 0 and report["results"][0]["threads"] == 1  # the run itself used one thread
    assert torch.get_num_threads() == 3
    # a batch larger than the 200 images fails after the thread count was set
    assert main(["bench", "--quick", "--no-typical", "--data-root", str(tiny_data_root), "--batch-sizes", "256",
                 "--threads", "1"]) == 2
    assert torch.get_num_threads() == 3


def test_float64_losses_agree_on_every_benchmarked_step(tiny_data_root: Path, tmp_path: Path) -> None:
    code, report = run_bench(["--quick", "--dtype", "float64", "--no-typical", "--data-root", str(tiny_data_root),
                              *FAST], tmp_path)
    assert code == 0
    for point in report["agreement"]["points"]:
        assert point["passed"] and point["max_step_rel_diff"] <= agreement.LOCKSTEP_LOSS_FLOAT64
        assert point["steps"] > 10  # warm-up, timed blocks and an epoch, all compared


def test_quick_without_files_uses_random_images(tmp_path: Path, capsys) -> None:
    code, report = run_bench(["--quick", "--data-root", str(tmp_path / "none"), *FAST[:2], "--batch-sizes", "32",
                              "--repeats", "1", "--block-seconds", "0.005", "--epoch-images", "256"], tmp_path)
    assert code == 0
    assert report["data"].startswith("random images")
    assert report["results"][0]["contenders"]["typical"]["status"].startswith("random images")


def test_full_run_without_files_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["bench", "--data-root", str(tmp_path)]) == 2
    assert "--quick runs on random images" in capsys.readouterr().err


@pytest.mark.parametrize("args, problem", [
    (["--batch-sizes", "0"], "--batch-sizes"), (["--repeats", "0"], "--repeats"), (["--threads", "0"], "--threads"),
    (["--epoch-images", "70000"], "--epoch-images"), (["--batch-sizes", "256"], "larger than the 200 images"),
])
def test_bad_options_are_usage_errors(args: list[str], problem: str, tiny_data_root: Path, capsys) -> None:
    assert main(["bench", "--quick", "--no-typical", "--data-root", str(tiny_data_root), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and problem in err, err


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# (--batch-size is not among them: argparse reads it as an abbreviation of --batch-sizes, which it is.)
@pytest.mark.parametrize("option", [["--epochs", "3"], ["--hidden", "16"], ["--lr", "0.5"], ["--activation", "tanh"],
                                    ["--loss", "mse"]])
def test_options_bench_does_not_use_are_refused(option: list[str], capsys) -> None:
    assert main(["bench", "--quick", *option]) == 2
    assert f"unrecognized arguments: {' '.join(option)}" in one_line_error(capsys)


def test_a_bad_model_names_models_not_hidden(capsys) -> None:
    assert main(["bench", "--models", "mlp:hidden=16,x"]) == 2
    assert "--models" in (err := one_line_error(capsys)) and "--hidden expects comma-separated integers" in err


def test_show_prints_the_tables_of_a_saved_report(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    code, report = run_bench(["--data-root", str(tiny_data_root), *ONE_POINT], tmp_path)
    ran = capsys.readouterr().out
    assert main(["bench", "--show", str(tmp_path / "bench.json")]) == 0
    shown = capsys.readouterr().out
    def tables_of(out: str) -> str:
        return out[out.index("Step time"):out.index("Report written") if "Report" in out else None]

    assert tables_of(shown) == tables_of(ran)  # the same tables, targets and agreement as the run printed
    assert shown.startswith(f"{tmp_path / 'bench.json'}: ") and "torch thread(s)" in shown.splitlines()[0]


def test_show_refuses_what_is_not_a_bench_report(tmp_path: Path, capsys) -> None:
    missing, broken, train = tmp_path / "missing.json", tmp_path / "broken.json", tmp_path / "train.json"
    broken.write_text("{not json")
    train.write_text(json.dumps({"command": "train", "config": {}, "agreement": {"passed": True}}))
    for path, problem in [(missing, "no file"), (broken, "is not a JSON report"), (train, "a report of `train`"),
                          (tmp_path, "cannot read")]:
        assert main(["bench", "--show", str(path)]) == 2, path
        err = one_line_error(capsys)
        assert err.startswith("error: --show: ") and problem in err and str(path) in err, err
    assert main(["bench", "--show"]) == 2  # no path
    assert "--show: expected one argument" in one_line_error(capsys)
    assert main(["bench", "--show", str(train), "--quick", "--models", "mlp:hidden=8"]) == 2
    assert "takes no other bench option; got --models, --quick" in one_line_error(capsys)


def test_memory_is_unavailable_not_a_crash_without_the_private_profiler_api(monkeypatch) -> None:
    contender = contenders.Contender("probe", lambda x, y: x.sum(), lambda: (torch.zeros(8), torch.zeros(1)), None,
                                     lambda: 0)
    assert memory.peak_memory(contender, torch.device("cpu")) > 0
    monkeypatch.delattr(torch._C._profiler, "_EventType")  # as if a torch release renamed it
    with pytest.raises(memory.MemoryUnavailableError, match="private profiler API .*AttributeError.*_EventType"):
        memory.peak_memory(contender, torch.device("cpu"))


def test_bench_runs_on_and_says_why_when_memory_is_unavailable(monkeypatch, tiny_data_root: Path, tmp_path: Path,
                                                              capsys) -> None:
    monkeypatch.delattr(torch._C._autograd._ProfilerResult, "experimental_event_tree")
    code, report = run_bench(["--data-root", str(tiny_data_root), *ONE_POINT], tmp_path)
    out = capsys.readouterr().out
    assert code == 0 and report["agreement"]["passed"]
    for name in ("scratch", "torch"):
        c = report["results"][0]["contenders"][name]
        assert c["peak_memory_bytes"] is None and c["memory_status"].startswith("unavailable: torch "), c
    assert "| unavailable | unavailable |" in out
    assert "memory unavailable: torch " in out and "experimental_event_tree" in out


def test_bench_text_speaks_for_itself() -> None:
    """What is measured, where, and what is not measured yet; not an issue's goals or who wrote it when."""
    root = Path(__file__).parent.parent
    files = [*sorted((root / "compare" / "commands" / "bench").glob("*.py")), root / "docs" / "benchmarks.md"]
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = re.search(r"\b(issue|goals?|session|engineers?|today)\b", line, re.IGNORECASE)
            assert found is None, f"{path.relative_to(root)}:{number} says {found.group(0)!r}: {line.strip()}"


def test_step_flops_by_hand_and_against_torch_flop_counter() -> None:
    # 4-3-2 at batch 5: layer 0 forward + weight grad 2 * (2*5*4*3); layer 1 also its input grad, 3 * (2*5*3*2)
    assert step_flops([4, 3, 2], 5) == 2 * 120 + 3 * 60
    # torch's own counter, on the torch twin's training step (autograd skips the images' gradient too)
    config = Config(batch_size=32, model=make_spec(hidden=(16, 16)))
    _, t = build_pair(config)
    x, y = torch.randn(32, 784), torch.randint(0, 10, (32,))
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        t.loss_fn(t.model(x), y).backward()
    assert counter.get_total_flops() == step_flops([784, 16, 16, 10], 32)
    assert elementwise_share([784, 16, 16, 10], 32) < 0.03
    with pytest.raises(ValueError, match="positive"):
        step_flops([784], 32)


def test_peak_memory_sees_a_temporary_tensor() -> None:
    mib = 2**20

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.ones(mib // 4).sum()  # a 1 MiB float32 temporary, freed at once

    held = torch.zeros(mib // 4)
    contender = contenders.Contender("probe", step, lambda: (torch.zeros(1), torch.zeros(1)), None,
                                lambda: held.numel() * held.element_size())
    measured = memory.peak_memory(contender, torch.device("cpu"))
    assert 2 * mib <= measured < 2 * mib + 4096  # held 1 MiB + the temporary 1 MiB (+ a scalar)


def test_a_failing_contender_is_reported_not_raised() -> None:
    def broken(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no C++ compiler found\nmore detail")

    contender = contenders.Contender("compile", broken, lambda: (torch.zeros(1), torch.zeros(1)), None, None)
    assert math.isnan(timing.warm_up(contender, torch.device("cpu"), None))
    assert contender.unavailable == "unavailable: RuntimeError: no C++ compiler found"
    contender.name = "scratch"  # but the two being compared must not fail quietly
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        timing.warm_up(contender, torch.device("cpu"), None)


def test_targets_are_judged_on_the_named_grid_points() -> None:
    results = [dict(model="784-16-16-10", batch_size=32, ratio=0.4, scratch_peak_fraction=0.05),
               dict(model="784-512-512-10", batch_size=512, ratio=1.1, scratch_peak_fraction=0.8)]
    g = bench.targets(results)
    assert [v["met"] for v in g.values()] == [False, True, True]
    assert "1.100 at 784-512-512-10 batch 512" in list(g.values())[0]["figure"]
    assert list(bench.targets(results[:1]).values())[2] is None  # not in the grid: not judged


def test_torchvision_layout_holds_the_same_images(tiny_data_root: Path, tmp_path: Path) -> None:
    from compare.data.mnist import load_dataset

    data = load_dataset("mnist", tiny_data_root, download=False)
    config = Config(data_root=str(tiny_data_root))
    typical = contenders.TypicalPipeline(config, tmp_path, data.mean, data.std, len(data.x_train))
    image, label = typical.dataset[3]
    assert int(label) == int(data.y_train[3])
    torch.testing.assert_close(image.flatten(), data.x_train[3])  # ToTensor + Normalize == our loader


@pytest.mark.parametrize("hidden", [(16, 16), (8,)])
def test_training_without_the_input_gradient_changes_no_parameter_gradient(hidden: tuple[int, ...]) -> None:
    model = scratch.MLP(hidden_sizes=hidden).to(dtype=torch.float64)
    x, y = torch.randn(16, 784, dtype=torch.float64), torch.randint(0, 10, (16,))
    loss = scratch.CrossEntropyLoss()
    loss.forward(model.forward(x), y)
    dx = model.backward(loss.backward())
    with_dx = {n: g.clone() for n, g in model.named_gradients()}
    loss.forward(model.forward(x), y)
    assert model.backward(loss.backward(), input_grad=False) is None
    assert dx.shape == x.shape
    for name, g in model.named_gradients():
        assert torch.equal(g, with_dx[name]), name


def test_scratch_learner_still_matches_autograd_in_float64() -> None:
    s, t = build_pair(Config(dtype="float64", model=make_spec(hidden=(16, 16))))
    x, y = torch.randn(32, 784, dtype=torch.float64), torch.randint(0, 10, (32,))
    s.forward_backward(x, y), t.forward_backward(x, y)
    for name, g in s.named_gradients().items():
        agreement.assert_agree(name, g, t.named_gradients()[name], agreement.AUTOGRAD_FLOAT64)


@requires_data
@pytest.mark.slow
def test_quick_on_real_mnist_runs_every_family_with_every_contender_but_compile(tmp_path: Path) -> None:
    code, report = run_bench(["--quick"], tmp_path)  # the smoke test as a user runs it
    assert code == 0 and report["data"] == "mnist training images" and report["agreement"]["passed"]
    quick = resolved("--quick")
    assert [(r["spec"], r["batch_size"]) for r in report["results"]] == [
        (spec.to_dict(), b) for spec in quick["models"] for b in quick["batch_sizes"]]
    for r in report["results"]:
        status = {name: c["status"] for name, c in r["contenders"].items()}
        assert status == dict(scratch="ok", torch="ok", compile="skipped (--no-compile)", typical="ok"), r["model"]
        assert r["contenders"]["scratch"]["epoch_images"] == quick["epoch_images"]


@pytest.mark.slow
def test_torch_compile_runs_or_says_why(tiny_data_root: Path, tmp_path: Path) -> None:
    code, report = run_bench(["--quick", "--compile", "--no-typical", "--data-root", str(tiny_data_root),
                              "--models", "mlp:hidden=8", "--batch-sizes", "32", "--repeats", "1"], tmp_path)
    assert code == 0
    status = report["results"][0]["contenders"]["compile"]["status"]
    assert status == "ok" or status.startswith("unavailable: "), status


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quick_on_cuda(tiny_data_root: Path, tmp_path: Path) -> None:
    code, report = run_bench(["--quick", "--device", "cuda", "--data-root", str(tiny_data_root), *FAST], tmp_path)
    assert code == 0 and report["agreement"]["passed"]
    r = report["results"][0]
    assert r["device"] == "cuda" and r["contenders"]["scratch"]["peak_memory_bytes"] > 0
    assert "gpu" in report["machine"]


# ---------------------------------------------------------------------- --autograd-modes

MODES_FAST = ["--autograd-modes", "--quick", "--batch-sizes", "8", "--repeats", "1", "--block-seconds", "0.002",
              "--threads", "1"]


def test_autograd_modes_report_contract(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    """Each network: the four timings on both sides, the two ratios, and the two sides' jvp and hvp agreeing."""
    code, report = run_bench([*MODES_FAST, "--models", "mlp", "cnn", "--data-root", str(tiny_data_root)], tmp_path)
    out = capsys.readouterr().out
    assert code == 0 and report["agreement"]["passed"], out
    assert [r["model"] for r in report["autograd_modes"]] == ["mlp", "cnn"] and report["batch_size"] == 8
    for r in report["autograd_modes"]:
        for side in ("engine", "torch.func"):
            s = r[side]
            assert all(s[f"{m}_seconds"] > 0 for m in ("forward", "jvp", "gradient", "hvp"))
            assert s["jvp_over_forward"] == pytest.approx(s["jvp_seconds"] / s["forward_seconds"])
            assert s["hvp_over_gradient"] == pytest.approx(s["hvp_seconds"] / s["gradient_seconds"])
        assert r["agreement"]["max_rel_error"] < 1e-4
    assert "jvp/forward" in out and "hvp/gradient" in out and "agree" in out


def test_autograd_modes_default_to_each_familys_default_network() -> None:
    resolved_models = [models.spec_text(s) for s in resolved("--autograd-modes")["models"]]
    assert resolved_models[0] == models.spec_text(make_spec("mlp"))  # the grid's defaults are not the modes' ones
    assert "784-512-512-10" not in " ".join(resolved_models)


def test_autograd_modes_fail_when_the_engines_tangent_rule_is_wrong(tiny_data_root: Path, tmp_path: Path,
                                                                     monkeypatch, capsys) -> None:
    """A relu whose tangent ignores the mask: the engine's jvp and hvp then disagree with torch.func's; exit 1."""
    relu = scratch.engine.Value.relu

    def relu_without_mask(self):
        out = relu(self)
        if out.tangent is not None:
            out.tangent = self.tangent.expand(out.shape)
        return out

    monkeypatch.setattr(scratch.engine.Value, "relu", relu_without_mask)
    code, report = run_bench([*MODES_FAST, "--models", "mlp", "--data-root", str(tiny_data_root)], tmp_path)
    assert code == 1 and not report["agreement"]["passed"]
    assert "DISAGREE" in capsys.readouterr().out
