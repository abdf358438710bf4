"""Tensor parallelism by hand (compare/distributed/tensor_parallel.py, `python -m compare tp`): the column- and
row-parallel Linear layers with f and g, against the whole layers in one process and against torch's
parallelize_module; the plans of the families; refusals before any process starts.

The default run spawns two processes once, on random tensors; the command on fake data and its failures are slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compare.cli import main
from compare.distributed import group
from compare.distributed.collectives import Collectives
from compare.distributed.launch import EXIT_AFTER_FIRST_STEP
from compare.distributed.ring import ring_all_reduce_bytes, ring_bytes
from compare.distributed.tensor_parallel import ColumnParallelLinear, RowParallelLinear, gather_parameters, split
from compare.models import family_of, make_spec
from compare.training.config import Config
from compare.training.learners import build_scratch

TINY_VIT = make_spec("vit", depth=2, dim=16, heads=2, mlp_dim=32)


def test_the_plans_name_the_mlps_first_pair_and_every_blocks_feed_forward():
    mlp = make_spec("mlp", hidden=(24, 16))
    assert [(p.column, p.row, p.size) for p in family_of(mlp).tensor_parallel(mlp)] == [("layers.0", "layers.2", 24)]
    assert [(p.column, p.row, p.size) for p in family_of(TINY_VIT).tensor_parallel(TINY_VIT)] == [
        ("blocks.0.linear1", "blocks.0.linear2", 32), ("blocks.1.linear1", "blocks.1.linear2", 32)]
    assert family_of("cnn").tensor_parallel is None


@pytest.mark.parametrize("numel,world", [(512, 2), (512, 3), (1001, 4), (7, 4)])
def test_the_exact_ring_bytes_add_up_to_the_formula_over_the_ranks(numel, world):
    per_rank = [ring_all_reduce_bytes(numel, 8, world, r) for r in range(world)]
    assert sum(per_rank) == pytest.approx(world * ring_bytes(numel, 8, world))  # every chunk sent N-1 times twice
    if numel % world == 0:
        assert per_rank == [ring_bytes(numel, 8, world)] * world


@pytest.mark.parametrize("options,message", [
    (["--nproc", "3"], "--hidden's first size 16 cannot be split across 3 processes"),
    (["--nproc", "2", "--hidden", "15,16"], "--hidden's first size 15 cannot be split across 2 processes"),
    (["--nproc", "3", "--model", "vit", "--mlp-dim", "32"], "--mlp-dim 32 cannot be split across 3 processes"),
    (["--nproc", "2", "--model", "cnn"], "--model cnn has no layers that tp splits"),
    (["--nproc", "2", "--dropout", "0.1"], "--batch-norm and --dropout are refused by tp"),
])
def test_a_split_that_cannot_be_made_is_refused_before_any_process_starts(options, message, tiny_data_root, capsys):
    assert main(["tp", *options, "--data-root", str(tiny_data_root)]) == 2
    assert message in capsys.readouterr().err


def _layers_worker(out: str) -> None:
    """In each of 2 processes: one forward and backward of the split MLP and ViT (dx wanted, so f's all-reduce
    runs) against the whole network on the same batch, and the bytes the ring sent."""
    member = group.join("gloo", timeout_s=30)
    try:
        results = {}
        for name, spec in (("mlp", make_spec("mlp", hidden=(16, 12))), ("vit", TINY_VIT)):
            config = Config(model=spec, dtype="float64")
            whole, parted = build_scratch(config).model, build_scratch(config).model
            comm = Collectives("ring")
            layers = split(parted, family_of(spec).tensor_parallel(spec), member.rank, 2, comm)
            generator = torch.Generator().manual_seed(3)
            x = torch.rand(6, 784, generator=generator, dtype=torch.float64)
            dlogits = torch.randn(6, 10, generator=generator, dtype=torch.float64)
            shaped = x if name == "mlp" else x.view(6, 1, 28, 28)
            logits = (whole.forward(shaped), parted.forward(shaped))
            dx = (whole.backward(dlogits), parted.backward(dlogits))
            gathered = gather_parameters(parted, layers, 2, gradients=True)
            worst_grad = max(((gathered[n] - g).abs().max() / g.abs().max()).item()
                             for n, g in whole.named_gradients())
            results[name] = dict(
                logits=((logits[0] - logits[1]).abs().max() / logits[0].abs().max()).item(),
                dx=((dx[0] - dx[1]).abs().max() / dx[0].abs().max()).item(), grads=worst_grad,
                shapes={p: list(layer.weight.shape) for p, layer in layers.items()},
                calls=comm.calls, sent=comm.bytes_sent,
                kinds=sorted({type(layer).__name__ for layer in layers.values()}))
        Path(out, f"rank{member.rank}.json").write_text(json.dumps(results))
    finally:
        group.leave()


def test_two_processes_split_layers_equal_the_whole_ones_forward_and_backward(tmp_path):
    group.spawn(_layers_worker, 2, (str(tmp_path),), run_timeout_s=120)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        for name in ("mlp", "vit"):
            result = r[name]
            assert result["logits"] <= 1e-14 and result["dx"] <= 1e-14 and result["grads"] <= 1e-13, (name, result)
            assert result["kinds"] == sorted([ColumnParallelLinear.__name__, RowParallelLinear.__name__])
            # g all-reduces the row layer's output in forward, f the column layer's input gradient in backward
            blocks = 1 if name == "mlp" else 2
            assert [what for what, _ in result["calls"]] == ["g (forward)"] * blocks + ["f (backward)"] * blocks
            assert result["sent"] == sum(ring_all_reduce_bytes(n, 8, 2, 0) for _, n in result["calls"])
        assert r["mlp"]["shapes"] == {"layers.0": [8, 784], "layers.2": [12, 8]}
        assert r["mlp"]["calls"] == [["g (forward)", 6 * 12], ["f (backward)", 6 * 784]]
        assert r["vit"]["shapes"]["blocks.1.linear1"] == [16, 16] and r["vit"]["shapes"]["blocks.1.linear2"] == [16, 16]


def run_tp(tmp_path: Path, data_root: Path, *options: str) -> tuple[int, dict]:
    report = tmp_path / "report.json"
    code = main(["tp", *options, "--dtype", "float64", "--data-root", str(data_root), "--report", str(report),
                 "--run-timeout", "240"])
    return code, json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    ("--nproc", "2", "--epochs", "2"),
    ("--nproc", "4", "--optimizer", "adam"),
    ("--nproc", "2", "--collectives", "library"),
    ("--nproc", "2", "--model", "vit", "--depth", "2", "--dim", "16", "--heads", "2", "--mlp-dim", "32",
     "--optimizer", "momentum"),
])
def test_tp_agrees_with_parallelize_module_and_one_process(options, tiny_data_root, tmp_path):
    code, result = run_tp(tmp_path, tiny_data_root, *options)
    assert code == 0
    agreement = result["agreement"]
    assert agreement["passed"], [name for name, ok in agreement["checks"].items() if not ok]
    for pair in ("scratch_vs_single", "scratch_vs_torch", "torch_vs_single"):
        assert 0 <= agreement[pair]["max_param_rel_diff"] <= 1e-12, pair
    assert "parallelize_module" in result["torch"]["implementation"]
    figures = result["tensor_parallel"]
    world = result["world_size"]
    assert all(h["parameters"] == figures["expected_parameter_bytes"] < figures["one_process"]["parameters"]
               for h in figures["held"])
    assert len(figures["held"]) == world
    if "--collectives" not in options:
        assert all(s["every_step"] and s["bytes"] == s["formula"] > 0 for s in figures["sent"])


@pytest.mark.slow
def test_a_dead_process_ends_a_tp_run_with_status_3(tiny_data_root, monkeypatch, capfd):
    monkeypatch.setenv(EXIT_AFTER_FIRST_STEP, "1")
    code = main(["tp", "--nproc", "2", "--timeout", "5", "--run-timeout", "90", "--data-root", str(tiny_data_root)])
    assert code == 3
    assert "rank 1 exited with status 3" in capfd.readouterr().err
