"""ZeRO by hand (compare/distributed/sharding.py, `ddp --shard`): the flat layout, the bytes it holds and sends,
and every stage against one process and against torch's ZeroRedundancyOptimizer and fully_shard.

The default run holds what needs no process group or one spawn of two processes on random tensors (a few
seconds); the command on fake data, N = 3 and 4, other wraps and collectives, and the failures are slow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from compare.cli import main
from compare.distributed import group
from compare.distributed.collectives import Collectives
from compare.distributed.flat import allocate, allocated, flatten, free, unit_modules
from compare.distributed.launch import EXIT_AFTER_FIRST_STEP, STALL_AFTER_FIRST_STEP
from compare.distributed.memory import MemoryLedger, storage_bytes
from compare.distributed.ring import check_ring_sharding, ring_bytes
from compare.distributed.sharding import ShardedLearner
from compare.models import make_spec
from compare.training.config import Config
from compare.training.learners import build_scratch


def lesson(**overrides) -> Config:
    return Config(dtype="float64", epochs=1, **overrides)


def vit_config(**overrides) -> Config:
    return Config(model=make_spec("vit", depth=2, dim=16, heads=2, mlp_dim=32), dtype="float64", epochs=1,
                  **overrides)


def test_units_are_the_layers_inside_sequentials_or_the_whole_model():
    mlp = build_scratch(lesson()).model
    assert [path for path, _ in unit_modules(mlp, "layer")] == ["layers.0", "layers.2", "layers.4"]
    assert unit_modules(mlp, "model") == []
    vit = build_scratch(vit_config()).model
    assert [path for path, _ in unit_modules(vit, "layer")] == ["blocks.0", "blocks.1"]


def test_flattening_keeps_every_value_and_the_layers_compute_on_the_flat_buffer():
    learner = build_scratch(vit_config())
    before = {n: p.clone() for n, p in learner.model.named_parameters()}
    units = flatten(learner.model, unit_modules(learner.model, "layer"), world_size=3)
    assert [u.path for u in units] == ["", "blocks.0", "blocks.1"]  # the root's unit: embeddings, norm, head
    assert sum(u.numel for u in units) == sum(p.numel() for p in before.values())
    assert all(u.size % 3 == 0 and u.size - u.numel < 3 for u in units)
    after = dict(learner.model.named_parameters())
    assert list(after) == list(before) and all(torch.equal(after[n], before[n]) for n in before)
    units[1].params.zero_()  # the layers read the flat buffer: a block's weights are its views
    assert learner.model.blocks.layers[0].linear1.weight.abs().sum() == 0
    x = torch.rand(4, 784, dtype=torch.float64)
    learner.model.forward(x)
    learner.model.backward(torch.randn(4, 10, dtype=torch.float64), input_grad=False)
    assert units[2].grads.abs().sum() > 0  # and backward writes into the flat gradient buffer


def test_a_freed_buffer_holds_no_bytes_and_its_views_come_back():
    flat = torch.arange(10, dtype=torch.float64)
    view = flat[2:5]
    assert storage_bytes([flat, view]) == 80  # one storage, counted once
    free(flat)
    assert not allocated(flat) and storage_bytes([flat, view]) == 0
    allocate(flat, zero=True)
    view.fill_(7.0)
    assert storage_bytes([flat]) == 80 and flat.tolist() == [0, 0, 7, 7, 7, 0, 0, 0, 0, 0]


def test_the_memory_check_fails_where_a_rank_holds_other_bytes_than_the_layout_predicts():
    from compare.distributed.accounting import memory_checks

    expected = {kind: dict(peak=300, at_rest=100) for kind in ("parameters", "gradients", "optimizer_state")}
    rank = {"peak": {k: v["peak"] for k, v in expected.items()},
            "at_rest": {k: v["at_rest"] for k, v in expected.items()}}
    other = {"peak": dict(rank["peak"]), "at_rest": dict(rank["at_rest"], gradients=200)}  # kept its full gradients
    checks = memory_checks(dict(expected=expected, ranks=[rank, other]))
    assert [ok for name, ok in checks.items()] == [True, False, True]
    assert all(memory_checks(dict(expected=expected, ranks=[rank, rank])).values())


def test_the_ledger_keeps_the_peak_and_the_last_sample():
    held = [torch.zeros(4, dtype=torch.float64)]
    ledger = MemoryLedger(parameters=lambda: held, gradients=lambda: [], optimizer_state=lambda: [])
    ledger.sample()
    held.append(torch.zeros(6, dtype=torch.float64))
    ledger.sample()
    held.pop()
    ledger.sample()
    assert ledger.to_dict()["peak"]["parameters"] == 80 and ledger.to_dict()["at_rest"]["parameters"] == 32


@pytest.fixture
def one_process_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("stage", ["optimizer", "gradients", "parameters"])
def test_one_process_of_one_takes_the_same_steps_as_the_plain_learner(stage, one_process_group):
    """N = 1: the hooks gather, free and reduce around every unit, and the flat optimizer steps the whole model."""
    config = lesson(optimizer="adam", lr=1e-3)
    sharded = ShardedLearner(build_scratch(config), 0, 1, stage, "layer", Collectives("ring"), config)
    plain = build_scratch(config)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.rand(8, 784, generator=generator, dtype=torch.float64), torch.randint(0, 10, (8,))
        assert sharded.train_step(x, y) == plain.train_step(x, y)
    gathered = sharded.gathered_parameters()
    for name, p in plain.named_parameters().items():
        torch.testing.assert_close(gathered[name], p, rtol=1e-15, atol=0)
    assert all(allocated(u.params) for u in sharded.units) == (stage != "parameters")  # stage 3 frees them


def _stages_worker(out: str) -> None:
    """In each of 2 processes: the hand rings against the library's, and each stage on 3 random batches against
    one process on the whole batches, with its bytes sent and held."""
    member = group.join("gloo", timeout_s=30)
    try:
        results: dict = {"rings": [check_ring_sharding(n, torch.float64, seed=n) for n in (1200, 26)]}
        generator = torch.Generator().manual_seed(0)
        batches = [(torch.rand(12, 784, generator=generator, dtype=torch.float64),
                    torch.randint(0, 10, (12,), generator=generator)) for _ in range(3)]
        for stage, optimizer, wrap in [("optimizer", "momentum", "layer"), ("gradients", "adam", "model"),
                                       ("parameters", "adam", "layer")]:
            config = lesson(optimizer=optimizer, lr=1e-2, momentum=0.9 if optimizer == "momentum" else 0.0)
            learner = ShardedLearner(build_scratch(config), member.rank, 2, stage, wrap, Collectives("ring"), config)
            single = build_scratch(config)
            losses = [(learner.train_step(x, y), single.train_step(x, y)) for x, y in batches]
            gathered = learner.gathered_parameters()
            worst = max(((gathered[n] - p).abs().max() / p.abs().max()).item()
                        for n, p in single.named_parameters().items())
            results[stage] = dict(losses=losses, worst=worst, step_bytes=learner.step_bytes,
                                  expected_bytes=learner.expected_step_bytes(), ledger=learner.ledger.to_dict(),
                                  layout=learner.shard_bytes())
        Path(out, f"rank{member.rank}.json").write_text(json.dumps(results))
    finally:
        group.leave()


def test_two_processes_every_stage_equals_one_process_and_counts_its_bytes(tmp_path):
    group.spawn(_stages_worker, 2, (str(tmp_path),), run_timeout_s=120)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        for ring in r["rings"]:
            for what in ("reduce_scatter", "all_gather"):
                assert ring[what]["max_rel_diff"] <= 1e-15
                assert ring[what]["bytes_sent"] == ring[what]["formula_bytes"] == ring_bytes(ring["numel"], 8, 2, 1)
    value = 8
    for stage, phases in (("optimizer", 2), ("gradients", 2), ("parameters", 3)):
        for r in ranks:
            result = r[stage]
            assert result["worst"] <= 1e-13, (stage, result["worst"])
            assert all(abs(a - b) <= 1e-13 * abs(b) for a, b in result["losses"])
            flat = result["layout"]["flat_size"]
            assert flat == 13_002 and result["expected_bytes"] == phases * flat * value / 2
            assert result["step_bytes"] == [result["expected_bytes"]] * 3  # measured by the ring, every step
            peak, rest = result["ledger"]["peak"], result["ledger"]["at_rest"]
            shard = flat // 2 * value
            states = 1 if stage == "optimizer" else 2  # momentum; Adam's two moments
            assert rest["optimizer_state"] == peak["optimizer_state"] == states * shard
            largest = max(u["size"] for u in result["layout"]["units"]) * value
            if stage == "optimizer":
                assert peak["parameters"] == rest["parameters"] == peak["gradients"] == flat * value
            if stage == "gradients":  # one unit (--wrap model): its full gradients during backward
                assert rest["gradients"] == shard and peak["gradients"] == shard + flat * value
                assert rest["parameters"] == flat * value
            if stage == "parameters":  # each layer gathered alone: the largest is the first, 784 x 16 + 16
                assert largest == 12_560 * value
                assert rest["parameters"] == rest["gradients"] == shard
                assert peak["parameters"] == peak["gradients"] == shard + largest


def run_ddp(tmp_path: Path, data_root: Path, *options: str) -> tuple[int, dict]:
    report = tmp_path / "report.json"
    code = main(["ddp", *options, "--dtype", "float64", "--data-root", str(data_root), "--report", str(report),
                 "--run-timeout", "240"])
    return code, json.loads(report.read_text()) if report.exists() else {}


def assert_agrees(result: dict) -> None:
    agreement = result["agreement"]
    assert agreement["passed"], [name for name, ok in agreement["checks"].items() if not ok]
    for pair in ("scratch_vs_single", "scratch_vs_torch", "torch_vs_single"):
        assert 0 <= agreement[pair]["max_param_rel_diff"] <= 1e-12, pair
        assert agreement[pair]["max_step_loss_rel_diff"] <= 1e-12, pair


@pytest.mark.slow
@pytest.mark.parametrize("stage,nproc,torch_side", [
    ("optimizer", 2, "ZeroRedundancyOptimizer"), ("gradients", 2, "reshard_after_forward=False"),
    ("parameters", 2, "reshard_after_forward=True"), ("optimizer", 3, "ZeroRedundancy"),
    ("gradients", 4, "False"), ("parameters", 3, "True"), ("parameters", 4, "True")])
def test_every_stage_agrees_with_torchs_own_and_one_process(stage, nproc, torch_side, tiny_data_root, tmp_path):
    code, result = run_ddp(tmp_path, tiny_data_root, "--nproc", str(nproc), "--shard", stage, "--batch-size",
                           str(12 * nproc), "--optimizer", "adam", "--epochs", "2")
    assert code == 0
    assert_agrees(result)
    assert torch_side in result["torch"]["implementation"]
    sharding = result["sharding"]
    one, ranks = sharding["memory"]["one_process"], sharding["memory"]["ranks"]
    assert len(ranks) == nproc
    for r in ranks:  # each rank's Adam state is its 1/N of the (padded) flat buffer
        assert r["peak"]["optimizer_state"] * nproc <= one["optimizer_state"] + 2 * 8 * 3 * nproc
    assert all(r["min"] == r["max"] == sharding["bytes"]["formula_bytes"] for r in sharding["bytes"]["ranks"])


@pytest.mark.slow
def test_whole_model_units_and_library_collectives_agree_too(tiny_data_root, tmp_path):
    code, result = run_ddp(tmp_path, tiny_data_root, "--nproc", "2", "--shard", "parameters", "--wrap", "model",
                           "--collectives", "library", "--optimizer", "momentum")
    assert code == 0
    assert_agrees(result)
    memory = result["sharding"]["memory"]
    assert [u["path"] for u in memory["layout"]["units"]] == ["(root)"]
    assert all(r["peak"]["parameters"] == 13_002 * 8 * 3 // 2 for r in memory["ranks"])  # shard + the whole model
    assert result["sharding"]["bytes"]["ranks"] == [None, None]  # the library's bytes are not counted


@pytest.mark.slow
def test_the_vit_is_sharded_by_blocks(tiny_data_root, tmp_path):
    code, result = run_ddp(tmp_path, tiny_data_root, "--nproc", "2", "--shard", "parameters", "--model", "vit",
                           "--depth", "2", "--dim", "16", "--heads", "2", "--mlp-dim", "32", "--optimizer",
                           "momentum")
    assert code == 0
    assert_agrees(result)
    paths = [u["path"] for u in result["sharding"]["memory"]["layout"]["units"]]
    assert paths == ["(root)", "blocks.0", "blocks.1"]


@pytest.mark.parametrize("options,message", [
    (["--wrap", "model"], "--wrap apply to --shard optimizer, gradients or parameters"),
    (["--collectives", "library"], "--collectives apply to --shard"),
])
def test_sharding_options_without_shard_are_refused(options, message, tiny_data_root, capsys):
    assert main(["ddp", "--nproc", "2", *options, "--data-root", str(tiny_data_root)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("variable,expected", [(EXIT_AFTER_FIRST_STEP, "rank 1 exited with status 3"),
                                               (STALL_AFTER_FIRST_STEP, "lost the other processes")])
def test_a_failed_process_ends_a_sharded_run_with_status_3(variable, expected, tiny_data_root, monkeypatch, capfd):
    monkeypatch.setenv(variable, "1")
    code = main(["ddp", "--nproc", "2", "--shard", "parameters", "--timeout", "5", "--run-timeout", "90",
                 "--data-root", str(tiny_data_root)])
    assert code == 3
    assert expected in capfd.readouterr().err


def test_the_test_hooks_are_off():
    assert EXIT_AFTER_FIRST_STEP not in os.environ and STALL_AFTER_FIRST_STEP not in os.environ


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_killing_a_rank_mid_run_ends_it_within_a_minute_and_leaves_no_process(tiny_data_root):
    """SIGKILL to one of the two workers of `ddp --shard parameters` while the other waits for it in a collective:
    one error line, exit status 3, well within --timeout, and every process of the run gone."""
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "compare", "ddp", "--nproc", "2", "--shard", "parameters", "--timeout", "60",
               "--data-root", str(tiny_data_root)]
    run = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, STALL_AFTER_FIRST_STEP: "1", "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = [p for p in children_of(run.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2, "the two workers did not start"
        time.sleep(8)  # the workers import torch, join and train one step; rank 1 then stalls
        everything = [run.pid, *children_of(run.pid)]
        killed = time.monotonic()
        os.kill(workers[-1], signal.SIGKILL)
        _, err = run.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, err
    assert took < 60
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the process of rank") and "killed by signal SIGKILL" in \
        lines[0], err  # the cause, once: not the other rank's lost contact first
    time.sleep(1)
    assert not [pid for pid in everything if alive(pid)]
