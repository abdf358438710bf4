"""`python -m compare bench`'s plausibility gate: the least traffic of a step, the probes of the machine's limits,
and a figure above a limit reported as implausible (never as a result), with exit status 1.

    pytest tests/test_bench_plausibility.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import compare.commands.bench.point as point
from compare import models
from compare.cli import main
from compare.commands.bench import timing
from compare.commands.bench.contenders import step_arithmetic
from compare.commands.bench.point import Limits
from compare.models import traffic
from compare.training.config import Config

ONE_POINT = ["--quick", "--no-typical", "--models", "mlp:hidden=8", "--batch-sizes", "32", "--repeats", "2",
             "--block-seconds", "0.005", "--threads", "1"]


def test_a_figure_above_either_measured_limit_is_implausible_and_says_which() -> None:
    limits = Limits(gflops=100.0, gbytes_per_s=10.0)
    assert limits.implausible(99.9, 9.9) is None
    assert limits.implausible(100.0, 10.0) is None  # at the limit: the best probe round itself
    assert limits.implausible(150.0, 1.0) == "150.0 GFLOP/s above the 100.0 GFLOP/s matrix-product peak of this run"
    assert limits.implausible(1.0, 12.5) == "12.5 GB/s above the 10.0 GB/s copy bandwidth of this run"
    assert "GFLOP/s" in limits.implausible(101.0, 11.0) and "GB/s" in limits.implausible(101.0, 11.0)
    assert limits.implausible(float("nan"), 1.0) is not None  # a time of 0 or a NaN is no result either


def test_the_least_traffic_of_a_step_counts_input_parameters_gradients_and_activations() -> None:
    # LeNet-5: conv 6x28x28 and its pooled 6x14x14, conv 16x10x10 and its pooled 16x5x5, then 120, 84, 10
    lenet = models.make_spec("cnn")
    assert models.family_of(lenet).step_activations(lenet, 784, 10) == 4704 + 1176 + 1600 + 400 + 120 + 84 + 10
    with_bn = models.make_spec("cnn", batch_norm=True)  # batch norm's output as large as each conv's
    assert models.family_of(with_bn).step_activations(with_bn, 784, 10) == 4704 * 2 + 1176 + 1600 * 2 + 400 + 214
    lstm = models.make_spec("lstm")  # h_t and c_t of 28 steps, 128 each, and the logits
    assert models.family_of(lstm).step_activations(lstm, 784, 10) == 28 * 2 * 128 + 10
    mlp = models.make_spec("mlp", hidden=(16, 16))
    assert models.family_of(mlp).step_activations(mlp, 784, 10) == 16 + 16 + 10
    # 4 bytes x (32 images of 784 read, 12,730 parameters read and written, their gradients written,
    # 42 activations of 32 images written and read)
    assert traffic.step_bytes(12_730, 784, 42, 32, 4) == 4 * (32 * 784 + 3 * 12_730 + 2 * 32 * 42)
    with pytest.raises(ValueError, match="must be positive"):
        traffic.step_bytes(0, 784, 42, 32, 4)


@pytest.mark.parametrize("family", list(models.FAMILIES))
def test_every_family_counts_its_traffic_and_bench_uses_the_built_networks_parameters(family: str) -> None:
    spec = models.make_spec(family)
    arithmetic = step_arithmetic(Config(model=spec, batch_size=32, dtype="float64"), 784)
    parameters = sum(p.numel() for p in models.build(spec, "torch", 784, 10).parameters())
    activations = models.family_of(spec).step_activations(spec, 784, 10)
    assert arithmetic.bytes == traffic.step_bytes(parameters, 784, activations, 32, 8)  # float64: 8 bytes a value


def test_the_copy_probe_moves_as_many_bytes_as_the_step_and_says_how_many() -> None:
    for step_bytes, copied in ((2**21, 2**20), (10, timing.COPY_MIN_BYTES), (2**40, timing.COPY_MAX_BYTES[False])):
        copy, moved = timing.copy_probe(torch.float32, "cpu", step_bytes)
        repeats = -(-timing.COPY_CALL_BYTES // (2 * copied))
        assert moved == repeats * 2 * copied  # read and written, as often as one call repeats it
        assert moved >= timing.COPY_CALL_BYTES
    copy()
    probe, flops = timing.matmul_probe(torch.float64, "cpu", size=8)
    assert flops == 2 * 8 ** 3
    probe()


def run_bench(args: list[str], tmp_path: Path) -> tuple[int, dict]:
    report = tmp_path / "bench.json"
    code = main(["bench", *args, "--report", str(report)])
    return code, json.loads(report.read_text())


def test_plausible_run_reports_throughput_beside_the_limits(tiny_data_root: Path, tmp_path: Path, capsys) -> None:
    code, report = run_bench(["--data-root", str(tiny_data_root), *ONE_POINT], tmp_path)
    out = capsys.readouterr().out
    assert code == 0 and report["plausibility"] == dict(passed=True, implausible=[])
    (r,) = report["results"]
    for name in ("scratch", "torch"):
        c = r["contenders"][name]
        assert c["plausible"] is True and c["gflops"] == pytest.approx(r["flops_per_step"] / c["step_s"] / 1e9)
        assert c["gbytes_per_s"] == pytest.approx(r["bytes_per_step"] / c["step_s"] / 1e9)
        assert c["gflops"] <= r["matmul_best_gflops"] and c["gbytes_per_s"] <= r["copy_gbytes_per_s"]
    assert r["matmul_best_gflops"] >= r["matmul_gflops"]  # the best round against the median
    assert "Throughput: GFLOP/s" in out and "scratch GB/s" in out and "copy GB/s" in out
    assert "Plausibility: every figure within the run's measured limits: PASSED" in out


def test_an_impossibly_fast_contender_is_reported_implausible_and_fails_the_run(monkeypatch, tiny_data_root: Path,
                                                                                tmp_path: Path, capsys) -> None:
    """torch's timed steps made a million times shorter (as a GPU timed without synchronizing would be): its
    figures, the ratio and the target that reads them are not printed as results, and the exit status is 1."""
    rounds = point.interleaved_rounds

    def torch_too_fast(*args, **kwargs):
        seconds = rounds(*args, **kwargs)
        seconds["torch"] = [s * 1e-6 for s in seconds["torch"]]
        return seconds

    monkeypatch.setattr(point, "interleaved_rounds", torch_too_fast)
    code, report = run_bench(["--data-root", str(tiny_data_root), *ONE_POINT], tmp_path)
    out = capsys.readouterr().out
    assert code == 1
    (r,) = report["results"]
    assert r["contenders"]["torch"]["plausible"] is False and r["contenders"]["scratch"]["plausible"] is True
    assert r["contenders"]["torch"]["status"].startswith("implausible: ") and "above the" in \
        r["contenders"]["torch"]["status"]
    assert r["ratio"] is None and r["torch_step_s"] is None and r["scratch_step_s"] > 0
    assert report["plausibility"] == dict(passed=False, implausible=["784-8-10 batch 32 torch"])
    assert report["agreement"]["passed"] is True  # the losses still agreed: only the timing is distrusted
    table = out[out.index("Step time"):out.index("One epoch")]
    assert "implausible" in table and "n/a (implausible)" in table
    assert "implausible = 784-8-10 batch 32, torch: " in out
    assert "Plausibility: every figure within the run's measured limits: FAILED, 784-8-10 batch 32 torch" in out
    assert "[n/a ] scratch/torch <= 1.0 at every grid point" in out
    assert main(["bench", "--show", str(tmp_path / "bench.json")]) == 1  # the saved report says so too
