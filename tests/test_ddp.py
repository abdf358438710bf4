"""Data parallelism (compare/distributed, `python -m compare ddp`): sharding, bucketed averaging, the hand ring
all-reduce against torch.distributed.all_reduce, agreement with DDP and one process, and failures that end
the run instead of hanging. Tests that start processes are marked slow (each process imports torch: seconds)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from compare.base.errors import DistributedError
from compare.cli import main
from compare.distributed import group
from compare.distributed.buckets import GradientBuckets
from compare.distributed.launch import EXIT_AFTER_FIRST_STEP, STALL_AFTER_FIRST_STEP
from compare.distributed.learners import shard
from compare.distributed.ring import check_ring, ring_bytes

WORLD = 4


@pytest.mark.parametrize("n,world", [(32, 2), (30, 4), (7, 3), (5, 5)])
def test_shards_cover_the_batch_in_order(n, world):
    slices = [shard(n, r, world) for r in range(world)]
    assert [i for s in slices for i in range(s.start, s.stop)] == list(range(n))
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == [len(t) for t in torch.arange(n).tensor_split(world)]


def test_buckets_follow_backward_order_and_the_cap():
    grads = [torch.zeros(10, dtype=torch.float64), torch.zeros(3), torch.zeros(2, 4, dtype=torch.float64),
             torch.zeros(5, dtype=torch.float64)]
    grads[1] = torch.zeros(3, dtype=torch.float64)
    buckets = GradientBuckets(grads, cap_bytes=8 * 9)  # 9 float64 values
    members = [[g for g, _ in b.members] for b in buckets.buckets]
    assert [[id(g) for g in m] for m in members] == [[id(grads[3])], [id(grads[2])], [id(grads[1])],
                                                     [id(grads[0])]]
    assert [b.flat.numel() for b in GradientBuckets(grads, cap_bytes=8 * 13).buckets] == [13, 13]


@pytest.fixture
def one_process_group():
    """A group of one process (this one), for the collective calls that need a group at all."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_bucketed_all_reduce_puts_every_value_back_scaled(one_process_group):
    torch.manual_seed(0)
    grads = [torch.randn(4, 3, dtype=torch.float64), torch.randn(7, dtype=torch.float64), torch.randn(2, 2, 2)
             .double()]
    before = [g.clone() for g in grads]
    GradientBuckets(grads, cap_bytes=8 * 10).all_reduce_mean_(scale=0.25)
    for g, b in zip(grads, before, strict=True):
        assert torch.equal(g, b * 0.25)


def _collectives_worker(out: str) -> None:
    """In each of WORLD processes: the ring against all_reduce in groups of 2, 3 and 4; bucketed averaging."""
    member = group.join("gloo", timeout_s=30)
    try:
        results = {}
        for size in (2, 3, 4):
            sub = dist.new_group(list(range(size)))  # every process must take part in creating each group
            if member.rank < size:
                results[f"ring{size}"] = check_ring(1200, torch.float64, seed=size, group=sub)
                results[f"ring{size}_uneven"] = check_ring(1001, torch.float64, seed=10 + size, group=sub)
        grads = [torch.full((3, 5), float(member.rank), dtype=torch.float64),
                 torch.arange(7, dtype=torch.float64) * (member.rank + 1)]
        GradientBuckets(grads, cap_bytes=8 * 8).all_reduce_mean_(scale=1 / WORLD)
        results["mean"] = [g.tolist() for g in grads]
        Path(out, f"rank{member.rank}.json").write_text(json.dumps(results))
    finally:
        group.leave()


@pytest.mark.slow
def test_ring_all_reduce_equals_all_reduce_with_the_formulas_bytes(tmp_path):
    group.spawn(_collectives_worker, WORLD, (str(tmp_path),), run_timeout_s=120)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for size in (2, 3, 4):
        for r in range(size):
            ring = results[r][f"ring{size}"]
            assert ring["world_size"] == size
            assert ring["max_rel_diff"] <= 1e-15, (size, r, ring)
            assert ring["bytes_sent"] == ring["formula_bytes"] == ring_bytes(1200, 8, size)
            uneven = results[r][f"ring{size}_uneven"]
            assert uneven["max_rel_diff"] <= 1e-15
            # 1001 values do not split evenly: 2(N-1) chunks of 1001/N values, give or take one value each
            assert abs(uneven["bytes_sent"] - uneven["formula_bytes"]) <= 2 * (size - 1) * 8
    expected = [[[1.5] * 5] * 3, [k * 2.5 for k in range(7)]]  # the mean of ranks 0..3; of (r+1) * k
    assert all(res["mean"] == expected for res in results)


def test_joining_on_a_port_in_use_is_one_clear_error(monkeypatch):
    with socket.socket() as holder:
        holder.bind((group.LOCALHOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv("MASTER_ADDR", group.LOCALHOST)
        monkeypatch.setenv("MASTER_PORT", str(port))
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "2")
        with pytest.raises(DistributedError, match="already in use|in use"):
            group.join("gloo", timeout_s=5)


def test_nproc_with_a_port_in_use_stops_before_starting(tiny_data_root, capsys):
    with socket.socket() as holder:
        holder.bind((group.LOCALHOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(["ddp", "--nproc", "2", "--port", str(port), "--data-root", str(tiny_data_root)])
    assert code == 2
    assert f"127.0.0.1:{port} is already in use" in capsys.readouterr().err


@pytest.mark.parametrize("option,message", [
    (["--batch-norm"], "each process's shard"),
    (["--dropout", "0.2"], "dropout masks"),
    (["--batch-size", "33"], "cannot be split into 2 equal shards"),
])
def test_refused_before_any_process_starts(option, message, tiny_data_root, capsys):
    assert main(["ddp", "--nproc", "2", *option, "--data-root", str(tiny_data_root)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_agree_with_ddp_and_one_process_in_float64(tiny_data_root, tmp_path):
    report = tmp_path / "r.json"
    assert main(["ddp", "--nproc", "2", "--dtype", "float64", "--epochs", "2", "--data-root", str(tiny_data_root),
                 "--report", str(report), "--run-timeout", "120"]) == 0
    result = json.loads(report.read_text())
    agreement = result["agreement"]
    assert agreement["passed"] and result["world_size"] == 2
    for pair in ("scratch_vs_single", "scratch_vs_torch", "torch_vs_single"):
        assert 0 <= agreement[pair]["max_param_rel_diff"] <= 1e-12, pair
        assert agreement[pair]["max_step_loss_rel_diff"] <= 1e-12, pair
    # 200 images in batches of 32: the last batch of 8 goes out as two shards of 4
    assert len(result["scratch"]["history"]) == 2 and result["ring"]["bytes_sent"] == result["ring"]["tensor_bytes"]


@pytest.mark.slow
def test_a_process_that_dies_ends_the_run_with_an_error(tiny_data_root, monkeypatch, capsys):
    monkeypatch.setenv(EXIT_AFTER_FIRST_STEP, "1")
    code = main(["ddp", "--nproc", "2", "--timeout", "10", "--run-timeout", "90", "--data-root",
                 str(tiny_data_root)])
    assert code == 3
    err = capsys.readouterr().err
    assert "rank 1 exited with status 3" in err or "lost the other processes" in err, err


@pytest.mark.slow
def test_a_process_that_stops_answering_ends_the_run_after_the_timeout(tiny_data_root, monkeypatch, capfd):
    monkeypatch.setenv(STALL_AFTER_FIRST_STEP, "1")
    code = main(["ddp", "--nproc", "2", "--timeout", "5", "--run-timeout", "90", "--data-root",
                 str(tiny_data_root)])
    assert code == 3
    err = capfd.readouterr().err  # the processes' own lines too (they write to the file descriptor)
    assert "rank 0 of 2: lost the other processes during training" in err, err
    assert "rank 0 exited with status 3" in err, err


@pytest.mark.slow
def test_an_error_every_process_finds_is_said_once_with_status_2(tiny_data_root, capfd):
    """A last batch of 2 of the 200 images for 3 processes: each process refuses it; the run says it once."""
    assert main(["ddp", "--nproc", "3", "--batch-size", "66", "--data-root", str(tiny_data_root)]) == 2
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "leaves a last batch of 2 of the 200 training images" in lines[0], lines


def test_the_test_hooks_are_off_by_default():
    assert EXIT_AFTER_FIRST_STEP not in os.environ and STALL_AFTER_FIRST_STEP not in os.environ


@pytest.mark.slow
def test_a_failed_run_ends_with_its_own_error_line(tiny_data_root):
    """What a person sees in the terminal: torch's "Terminating process" log line and the resource tracker's
    leaked-semaphore warning do not come after (or at all), the run's own error is the last line."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    command = ["ddp", "--nproc", "3", "--batch-size", "30", "--timeout", "10", "--run-timeout", "90",
               "--data-root", str(tiny_data_root)]
    run = subprocess.run([sys.executable, "-m", "compare", *command], cwd=root, capture_output=True, text=True,
                         env={**os.environ, EXIT_AFTER_FIRST_STEP: "1", "OMP_NUM_THREADS": "1"}, timeout=180)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 3 and lines, run.stderr
    assert lines[-1].startswith("error: the process of rank 1 exited with status 3"), run.stderr
    assert "Terminating process" not in run.stderr and "resource_tracker" not in run.stderr, run.stderr
