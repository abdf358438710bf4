"""`python -m compare ddp`: data parallelism by hand, proven equal to DistributedDataParallel and to one process.

    python -m compare ddp --nproc 2 --dtype float64 --epochs 1      # spawns 2 processes on this machine
    torchrun --nproc-per-node 2 -m compare ddp --dtype float64 --epochs 1    # the same, started by torchrun

Each of N processes holds a replica of the network and takes its shard (1/N) of every global batch
(--batch-size); the gradients are averaged across processes before every optimizer step:

- scratch: the hand-written backward, then the gradient buffers averaged with torch.distributed.all_reduce,
  in buckets (compare/distributed/buckets.py);
- torch: the torch twin inside DistributedDataParallel;
- single: rank 0 also trains the scratch network in one process on the whole global batch (--reference).

All see the same global batches in the same order whatever N is. In float64 their parameters must end
equal to rounding (TRAINED_PARAMETERS_FLOAT64). Before training, the hand ring all-reduce
(compare/distributed/ring.py) is checked against all_reduce on a tensor the size of the gradients.
Only rank 0 prints and writes the report. Batch norm and dropout are refused (see `check`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import torch

from compare import models
from compare.base import agreement, argtypes
from compare.base.errors import DistributedError, UsageError
from compare.base.report import plural, table
from compare.data.mnist import load_dataset
from compare.distributed import group
from compare.distributed.learners import (
    DataParallelLearner,
    ScratchDataParallel,
    TorchDataParallel,
    replicas_identical,
)
from compare.distributed.ring import check_ring
from compare.options.command import Command
from compare.options.groups import BATCH, DATA, DIVERGENCE, EPOCHS, LOSS, MODEL, OPTIMIZER, RUN
from compare.training.config import Config
from compare.training.learners import Learner, build_scratch, build_torch, parameter_mismatches
from compare.training.loop import BeforeStep, EpochStats, RunRecord, train_lockstep
from compare.training.optimizers import describe_training
from compare.training.resync import relative_difference
from compare.training.verdict import print_summary, training_behaviour

# For tests only: the rank named in the first ends its process abruptly (status 3) after its first step, as a
# crashed or killed process would; the rank named in the second stops answering (sleeps) instead, as a hung
# one would. The others must then end with an error, not hang.
EXIT_AFTER_FIRST_STEP = "COMPARE_DDP_TEST_EXIT_RANK"
STALL_AFTER_FIRST_STEP = "COMPARE_DDP_TEST_STALL_RANK"
DDP_DEFAULT_BUCKET_MB = 25.0  # DistributedDataParallel's bucket_cap_mb


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("processes")
    g.add_argument("--nproc", type=argtypes.positive_int, default=None, metavar="N",
                   help="start N processes on this machine (127.0.0.1); leave it out under torchrun, which starts "
                        "them itself (default: 1, or torchrun's --nproc-per-node)")
    g.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto",
                   help="torch.distributed backend: gloo for CPU tensors, nccl for GPU tensors (one GPU per "
                        "process); auto: nccl with --device cuda, else gloo (default: auto)")
    g.add_argument("--bucket-mb", type=float, default=DDP_DEFAULT_BUCKET_MB, metavar="MB",
                   help="gradient bucket size of both the scratch all-reduce and DDP's bucket_cap_mb "
                        f"(default: {DDP_DEFAULT_BUCKET_MB:g}, DDP's)")
    g.add_argument("--port", type=int, default=0,
                   help="with --nproc: the TCP port rank 0 listens on; 0 picks a free one (default: 0)")
    g.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long a process waits to join the group, and in each collective operation, before "
                        "it gives up with an error (default: 60)")
    g.add_argument("--run-timeout", type=float, default=None, metavar="SECONDS",
                   help="with --nproc: stop every process when the whole run takes longer (default: no limit; "
                        "--timeout already ends a run whose processes stop answering)")
    g.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                   help="rank 0 also trains the scratch network in one process on whole batches, to compare "
                        "with; --no-reference for timings of the data-parallel runs alone (default: on)")


def world_size(args: argparse.Namespace) -> int:
    return int(os.environ["WORLD_SIZE"]) if group.launched() else (args.nproc or 1)


def check(args: argparse.Namespace) -> None:
    spec = args.model_spec
    if spec.get("batch_norm"):
        raise UsageError("--batch-norm is refused by ddp: DistributedDataParallel normalizes each process's shard "
                         "with that shard's own mean and variance (and copies rank 0's running statistics to the "
                         "others at each forward), while one process normalizes the whole batch, so the runs would "
                         "differ by design, not by rounding; drop --batch-norm (SyncBatchNorm would match)")
    if spec.get("dropout", 0.0) > 0:
        raise UsageError("--dropout is refused by ddp: each process would draw its own dropout masks for its shard, "
                         "unlike one process over the whole batch; drop --dropout")
    if group.launched() and args.nproc is not None:
        raise UsageError("--nproc is for starting the processes here; under torchrun leave it out (torchrun's "
                         "--nproc-per-node says how many)")
    n = world_size(args)
    if args.batch_size % n:
        raise UsageError(f"--batch-size {args.batch_size} cannot be split into {n} equal shards; choose a multiple "
                         f"of {n}")
    if not args.bucket_mb > 0 or not args.timeout > 0 or (args.run_timeout is not None and not args.run_timeout > 0):
        raise UsageError("--bucket-mb, --timeout and --run-timeout must be positive")
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.backend == "nccl" and args.device != "cuda":
        raise UsageError("--backend nccl moves GPU tensors only; add --device cuda, or use --backend gloo")
    if args.device == "cuda" and n > torch.cuda.device_count():
        raise UsageError(f"{n} processes need {n} GPUs (one each), but {torch.cuda.device_count()} are visible")


def backend_of(config: Config) -> str:
    chosen = config.extra["backend"]
    return ("nccl" if config.device == "cuda" else "gloo") if chosen == "auto" else chosen


def run(config: Config, data) -> dict:
    if group.launched():  # torchrun started this process as one of the group
        report = train_process(config)
        if int(os.environ["RANK"]) != 0:
            config.report = None  # the report is rank 0's to write
        return report
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "report.json"
        group.spawn(train_process, config.extra["nproc"] or 1, (config, str(result)), port=config.extra["port"],
                    run_timeout_s=config.extra["run_timeout"])
        if not result.exists():
            raise DistributedError("the processes ended without an error but rank 0 wrote no report")
        return json.loads(result.read_text())


def train_process(config: Config, result_path: str | None = None) -> dict:
    """What each process runs: join the group, train, compare (rank 0), leave. Returns the report."""
    member = group.join(backend_of(config), config.extra["timeout"])
    try:
        if member.rank == 0:
            report = train_and_compare(config, member)
        else:
            with open(os.devnull, "w") as quiet, redirect_stdout(quiet):
                report = train_and_compare(config, member)
        if result_path is not None and member.rank == 0:
            Path(result_path).write_text(json.dumps(report))
        return report
    except RuntimeError as error:
        if not group.is_collective_failure(error):
            raise  # a bug: keep its traceback
        raise group.lost_contact(member, error, "during training") from None
    finally:
        group.leave()


def failure_hook_for_tests(member: group.Member) -> BeforeStep | None:
    """The test hook of EXIT_AFTER_FIRST_STEP and STALL_AFTER_FIRST_STEP (None when neither names this rank)."""
    exits = os.environ.get(EXIT_AFTER_FIRST_STEP) == str(member.rank)
    if not exits and os.environ.get(STALL_AFTER_FIRST_STEP) != str(member.rank):
        return None

    def hook(epoch, step, global_step, x, y, records) -> None:
        if global_step == 2:
            sys.stderr.flush()
            if exits:
                os._exit(3)
            time.sleep(3600)

    return hook


def print_epoch(epoch: int, stats: dict[str, EpochStats], learners: list[Learner]) -> None:
    rows = [[what, *[getattr(stats[le.name], key) for le in learners]]
            for what, key in [("train loss", "train_loss"), ("test loss", "test_loss"),
                              ("test accuracy", "test_accuracy")]]
    rows.append(["seconds in steps (rank 0)",
                 *[le.epoch_seconds[-1] if isinstance(le, DataParallelLearner) else "" for le in learners]])
    print(f"\nEpoch {epoch}")
    print(table(["", *[le.name for le in learners]], rows))


def largest_difference(a: Learner, b: Learner) -> tuple[float, str]:
    """The largest parameter difference relative to max|b| of the same tensor, and where."""
    pb = b.named_parameters()
    return max((agreement.max_rel_error(p, pb[name]), name) for name, p in a.named_parameters().items())


def largest_step_loss_difference(a: RunRecord, b: RunRecord) -> float:
    return max((relative_difference(x, y) for x, y in zip(a.step_losses, b.step_losses, strict=True)), default=0.0)


def train_and_compare(config: Config, member: group.Member) -> dict:
    device = group.device_of(member)
    data = load_dataset(config.dataset, config.data_root, dtype=config.torch_dtype, device=device, download=False)
    n_train, world = len(data.x_train), member.world_size
    last = n_train % config.batch_size or config.batch_size
    if last < world:
        raise UsageError(f"--batch-size {config.batch_size} leaves a last batch of {last} of the {n_train:,} "
                         f"training images, fewer than the {world} processes; choose another --batch-size")
    config.device = str(device)
    shape = dict(input_size=data.x_train.shape[1], num_classes=len(data.classes))
    bucket_bytes = int(config.extra["bucket_mb"] * 2**20)
    ids = [member.local_rank] if device.type == "cuda" else None

    ring = check_ring(sum(p.numel() for p in build_scratch(config, **shape).named_parameters().values()),
                      config.torch_dtype, config.seed, device=device)
    scratch_inner, torch_inner = build_scratch(config, **shape), build_torch(config, **shape)
    mismatched = parameter_mismatches(scratch_inner, torch_inner)
    learners: list[Learner] = [ScratchDataParallel(scratch_inner, member.rank, world, bucket_bytes),
                               TorchDataParallel(torch_inner, member.rank, world, bucket_bytes, ids)]
    if config.extra["reference"] and member.rank == 0:
        single = build_scratch(config, **shape)
        single.name, single.implementation = "single", "hand-written, 1 process, whole batches"
        learners.append(single)
    family = models.family_of(config.model)
    steps = math.ceil(n_train / config.batch_size)
    print(f"Model: {family.describe(config.model, **shape)}; {config.dtype} on {device}")
    print(f"Processes: {world} ({member.backend}); each global batch of {config.batch_size} is cut into "
          f"{world} shard{'s' if world > 1 else ''} of {config.batch_size // world}")
    for learner in learners:
        print(f"  {learner.name:<8}{learner.implementation}")
    print(f"scratch gradients averaged in {learners[0].buckets.describe()}; DDP bucket_cap_mb "
          f"{config.extra['bucket_mb']:g}")
    print(f"Hand ring all-reduce vs torch.distributed.all_reduce of {ring['numel']:,} values over {world} "
          f"processes: largest difference {ring['max_rel_diff']:.1e} relative; sent {ring['bytes_sent']:,} bytes "
          f"per process = 2(N-1)/N x {ring['tensor_bytes']:,} = {ring['formula_bytes']:,.0f}")
    print("Initial parameters: " + ("bit-identical" if not mismatched else f"DIFFERENT in {', '.join(mismatched)}"))
    print(f"Training on {config.dataset}: {plural(config.epochs, 'epoch')} x {plural(steps, 'step')}, "
          f"{describe_training(config)}")

    records = train_lockstep(learners, data.x_train, data.y_train, data.x_test, data.y_test,
                             epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                             on_epoch=lambda epoch, stats: print_epoch(epoch, stats, learners),
                             before_step=failure_hook_for_tests(member), progress=member.rank == 0)
    identical = {le.name: replicas_identical(le) for le in learners[:2]}
    result = judge(config, learners, records, not mismatched, identical, ring)
    passed = [result["passed"]]
    torch.distributed.broadcast_object_list(passed, src=0)  # every process exits with rank 0's verdict
    result["passed"] = passed[0]
    report = dict(world_size=world, backend=member.backend, scratch_buckets=learners[0].buckets.describe(),
                  ring=ring, agreement=result)
    for learner in learners:
        record = records[learner.name]
        report[learner.name] = dict(implementation=learner.implementation,
                                    test_accuracy=record.history[-1].test_accuracy,
                                    history=[h.to_dict() for h in record.history],
                                    epoch_seconds=learner.epoch_seconds if isinstance(learner, DataParallelLearner)
                                    else None)
    return report


def judge(config: Config, learners: list[Learner], records: dict[str, RunRecord], identical_start: bool,
          identical_replicas: dict[str, bool], ring: dict) -> dict:
    """The agreement checks of rank 0 (the other ranks' are not printed, and rank 0's verdict is theirs)."""
    float64 = config.torch_dtype == torch.float64
    tol = agreement.TRAINED_PARAMETERS_FLOAT64
    loss_threshold = agreement.separation_threshold(config.torch_dtype)
    named = {le.name: le for le in learners}
    pairs = [("scratch", "torch")] + ([("scratch", "single"), ("torch", "single")] if "single" in named else [])
    figures: dict = {}
    checks = {
        "bit-identical initial parameters (scratch, torch)": identical_start,
        "every process holds the same parameters after training (scratch, torch)": all(identical_replicas.values()),
        "hand ring all-reduce equals all_reduce to rounding (1e-12 relative)": ring["max_rel_diff"] <= 1e-12,
    }
    for a, b in pairs:
        param, where = largest_difference(named[a], named[b])
        first = relative_difference(records[a].step_losses[0], records[b].step_losses[0])
        every = largest_step_loss_difference(records[a], records[b])
        figures[f"{a}_vs_{b}"] = dict(max_param_rel_diff=param, max_param_rel_diff_name=where,
                                      first_step_loss_rel_diff=first, max_step_loss_rel_diff=every)
        checks[f"{a} vs {b}: first step's loss within {loss_threshold:g} relative"] = first <= loss_threshold
        if float64:
            checks[f"{a} vs {b}: trained parameters within {tol.describe()}"] = param <= tol.rtol
            checks[f"{a} vs {b}: every step's loss within {loss_threshold:g} relative"] = every <= loss_threshold
    print("\nAfter training (largest differences, relative to the largest entry of the tensor):")
    print(table(["", "parameters", "in", "first step's loss", "any step's loss"],
                [[k.replace("_vs_", " vs "), f["max_param_rel_diff"], f["max_param_rel_diff_name"],
                  f["first_step_loss_rel_diff"], f["max_step_loss_rel_diff"]] for k, f in figures.items()]))
    if not float64:
        print("(float32: the shards' gradients are summed in another order than the whole batch's, and training "
              "amplifies those rounding differences; --dtype float64 keeps the runs equal to the end.)")
    implementations_agree = all(checks.values())
    diverged = {le.name: records[le.name].diverged_at for le in learners if records[le.name].diverged_at is not None}
    if config.extra["fail_on_divergence"]:
        checks["training did not diverge (--fail-on-divergence)"] = not diverged
    passed = all(checks.values())
    print("\nAgreement checks:")
    for name, ok in checks.items():
        print(f"  [{'pass' if ok else 'FAIL'}] {name}")
    accuracies = ", ".join(f"{le.name} {records[le.name].history[-1].test_accuracy:.2%}" for le in learners)
    print(f"Verdict: {'PASSED' if passed else 'FAILED'} (test accuracy {accuracies})")
    lines = ddp_summary(config, implementations_agree, checks, diverged, training_behaviour(
        records["scratch"].step_losses), f"test accuracy {accuracies}")
    print_summary(lines)
    return dict(passed=passed, checks=checks, summary=lines, **figures)


def ddp_summary(config: Config, agree: bool, checks: dict[str, bool], diverged: dict[str, int], behaviour: str,
                accuracies: str) -> dict[str, str]:
    """The three closing lines (compare/training/verdict.py) of a data-parallel run."""
    failed = [name for name, ok in checks.items() if not ok and "--fail-on-divergence" not in name]
    if diverged:
        training = ("diverged at step " + ", ".join(f"{name} {step}" for name, step in diverged.items())
                    + f" (the loss became inf or NaN); {accuracies}: the accuracy of a training that diverged")
    else:
        training = f"{behaviour if behaviour.startswith('unstable') else 'converged'} ({accuracies})"
        if config.dtype == "float32":
            training += ("; the runs drift apart as float32 rounding does (the shards' sums are added in another "
                         "order than the whole batch's), which is expected")
    if not agree:
        next_step = ("the [FAIL] lines above say which pair differs: scratch vs torch alone points at the hand "
                     "all-reduce, both against single at the sharding")
    elif diverged or behaviour.startswith("unstable"):
        next_step = f"lower --lr (now {config.lr:g}): the training is at fault, not the implementations"
    elif config.dtype == "float32":
        next_step = "rerun with --dtype float64 to see the three runs end equal to rounding"
    else:
        next_step = "nothing to fix"
    return dict(implementations="agree (every check above passed)" if agree else
                f"disagree ({plural(len(failed), 'check')} failed: {'; '.join(failed)})",
                training=training, next=next_step)


COMMAND = Command(
    name="ddp",
    help="data parallelism: scratch gradients all-reduced by hand vs DistributedDataParallel vs one process",
    run=run,
    groups=(DATA, MODEL, LOSS, BATCH, EPOCHS, OPTIMIZER, *RUN, DIVERGENCE),
    add_arguments=add_arguments,
    config_keys=("nproc", "backend", "bucket_mb", "port", "timeout", "run_timeout", "reference", "fail_on_divergence"),
    needs_data=False,  # each process loads its own copy (compare/distributed/learners.py shards the batches)
    defaults={"epochs": 1},
    check=check,
)
