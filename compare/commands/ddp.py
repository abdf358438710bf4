"""`python -m compare ddp`: data parallelism by hand, and ZeRO's sharding by hand, proven equal to torch's own
and to one process.

    python -m compare ddp --nproc 2 --dtype float64 --epochs 1                     # replicas, gradients all-reduced
    python -m compare ddp --nproc 2 --shard parameters --dtype float64 --epochs 1  # ZeRO-3 by hand vs fully_shard
    torchrun --nproc-per-node 2 -m compare ddp --dtype float64 --epochs 1    # the same, started by torchrun

Each of N processes takes its shard (1/N) of every global batch (--batch-size); the gradients are
averaged across processes before every optimizer step.

--shard none (the default): every process holds a replica of the network.
- scratch: the hand-written backward, then the gradient buffers averaged with torch.distributed.all_reduce,
  in buckets (compare/distributed/buckets.py);
- torch: the torch twin inside DistributedDataParallel.
Before training, the hand ring all-reduce (compare/distributed/ring.py) is checked against all_reduce on a
tensor the size of the gradients.

--shard optimizer | gradients | parameters: ZeRO stage 1, 2 or 3 by hand (compare/distributed/sharding.py):
each rank keeps only its 1/N of the optimizer state, of the gradients too, of the parameters too;
gradients are reduce-scattered and parameters all-gathered by the hand rings (--collectives ring) or
torch.distributed's own calls (library), one unit (--wrap: each layer, or the whole model) at a time.
- torch: ZeroRedundancyOptimizer over DDP (optimizer), fully_shard with reshard_after_forward False
  (gradients) or True (parameters) (compare/distributed/torch_sharding.py).
The bytes each rank holds (parameters, gradients, optimizer state: peak in a step and between steps) and
sends per step are measured and checked against the layout's prediction (compare/distributed/accounting.py).

In both, single: rank 0 also trains the scratch network in one process on the whole global batch
(--reference). All see the same global batches in the same order whatever N is; in float64 their
parameters must end equal to rounding (TRAINED_PARAMETERS_FLOAT64). Only rank 0 prints and writes the
report. Batch norm and dropout are refused (see `check`).
"""

from __future__ import annotations

import argparse
import math

import torch

from compare import models
from compare.base.errors import UsageError
from compare.base.report import plural
from compare.distributed import accounting, group, launch, runs
from compare.distributed.collectives import COLLECTIVES, Collectives
from compare.distributed.flat import WRAPS
from compare.distributed.learners import ScratchDataParallel, TorchDataParallel, replicas_identical
from compare.distributed.ring import check_ring, check_ring_sharding
from compare.distributed.sharding import STAGES, ShardedLearner
from compare.distributed.torch_sharding import counterpart
from compare.distributed.verdict import judge, print_epoch
from compare.options.command import Command
from compare.options.groups import (
    BATCH,
    DATA,
    DIVERGENCE,
    EPOCHS,
    LOSS,
    MODEL,
    OPTIMIZER,
    PROCESS_KEYS,
    PROCESSES,
    RUN,
)
from compare.training.config import Config
from compare.training.learners import Learner, build_scratch, build_torch, parameter_mismatches
from compare.training.loop import train_lockstep
from compare.training.optimizers import describe_training

# For tests: see compare/distributed/launch.py
EXIT_AFTER_FIRST_STEP, STALL_AFTER_FIRST_STEP = launch.EXIT_AFTER_FIRST_STEP, launch.STALL_AFTER_FIRST_STEP
DDP_DEFAULT_BUCKET_MB = 25.0  # DistributedDataParallel's bucket_cap_mb
SHARD_CHOICES = ("none", *STAGES)
DRIFT = "the shards' gradients are summed in another order than the whole batch's"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data parallelism")
    g.add_argument("--shard", choices=SHARD_CHOICES, default="none",
                   help="what each process keeps only 1/N of: none (replicas, DDP); optimizer (ZeRO-1, vs "
                        "ZeroRedundancyOptimizer); gradients (ZeRO-2, vs fully_shard(reshard_after_forward=False)); "
                        "parameters (ZeRO-3, vs fully_shard(reshard_after_forward=True)) (default: none)")
    g.add_argument("--wrap", choices=WRAPS, default=None,
                   help="with --shard: what is gathered and reduce-scattered at once: each layer that holds "
                        "parameters inside a Sequential (fully_shard on each), or the whole model as one flat "
                        "buffer (default: layer)")
    g.add_argument("--collectives", choices=COLLECTIVES, default=None,
                   help="with --shard: the hand-written ring reduce-scatter and all-gather (every byte counted), "
                        "or torch.distributed's own (default: ring)")
    g.add_argument("--bucket-mb", type=float, default=DDP_DEFAULT_BUCKET_MB, metavar="MB",
                   help="gradient bucket size of both the scratch all-reduce and DDP's bucket_cap_mb "
                        f"(default: {DDP_DEFAULT_BUCKET_MB:g}, DDP's)")


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
    n = launch.world_size(args.nproc)
    if args.batch_size % n:
        raise UsageError(f"--batch-size {args.batch_size} cannot be split into {n} equal shards; choose a multiple "
                         f"of {n}")
    if not args.bucket_mb > 0:
        raise UsageError(f"--bucket-mb must be positive, got {args.bucket_mb:g}")
    if args.shard == "none":
        given = [flag for flag, value in (("--wrap", args.wrap), ("--collectives", args.collectives)) if value]
        if given:
            raise UsageError(f"{' and '.join(given)} apply to --shard optimizer, gradients or parameters, not to "
                             "--shard none (replicas all-reduce their gradients in buckets)")
    else:
        args.wrap = args.wrap or "layer"
        args.collectives = args.collectives or "ring"


def run(config: Config, data) -> dict:
    return launch.run_group(train_and_compare, config)


def train_and_compare(config: Config, member: group.Member) -> dict:
    """What every process runs once it has joined the group; the report (rank 0's is the run's)."""
    data, shape = runs.load_for(config, member)
    device, world = torch.device(config.device), member.world_size
    bucket_bytes = int(config.extra["bucket_mb"] * 2**20)
    stage = config.extra["shard"]

    scratch_inner, torch_inner = build_scratch(config, **shape), build_torch(config, **shape)
    mismatched = parameter_mismatches(scratch_inner, torch_inner)
    if stage == "none":
        ring = check_ring(sum(p.numel() for p in scratch_inner.named_parameters().values()), config.torch_dtype,
                          config.seed, device=device)
        scratch: Learner = ScratchDataParallel(scratch_inner, member.rank, world, bucket_bytes)
        torch_side: Learner = TorchDataParallel(torch_inner, member.rank, world, bucket_bytes,
                                                [member.local_rank] if device.type == "cuda" else None)
    else:
        scratch = ShardedLearner(scratch_inner, member.rank, world, stage, config.extra["wrap"],
                                 Collectives(config.extra["collectives"]), config)
        torch_side = counterpart(stage, torch_inner, member.rank, world, [u.path for u in scratch.units if u.path],
                                 bucket_bytes, config, device)
        ring = check_ring_sharding(scratch.flat_size, config.torch_dtype, config.seed, device=device)
    single = runs.reference(config, member, shape)
    learners: list[Learner] = [scratch, torch_side, *([single] if single else [])]
    print_header(config, member, learners, ring, mismatched, math.ceil(len(data.x_train) / config.batch_size), shape)

    records = train_lockstep(learners, data.x_train, data.y_train, data.x_test, data.y_test,
                             epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                             on_epoch=lambda epoch, stats: print_epoch(epoch, stats, learners),
                             before_step=launch.failure_hook_for_tests(member), progress=member.rank == 0)
    parameters = {le.name: le.gathered_parameters() for le in learners[:2]}  # collective: every process
    identical = {name: replicas_identical(p) for name, p in parameters.items()}
    if single is not None:
        parameters["single"] = single.named_parameters()
    checks = {"bit-identical initial parameters (scratch, torch)": not mismatched,
              "every process holds the same parameters after training (scratch, torch)": all(identical.values())}
    report: dict = dict(world_size=world, backend=member.backend, shard=stage)
    if stage == "none":
        checks["hand ring all-reduce equals all_reduce to rounding (1e-12 relative)"] = ring["max_rel_diff"] <= 1e-12
        report.update(scratch_buckets=scratch.buckets.describe(), ring=ring)
    else:
        report["sharding"] = sharding = measure_sharding(config, scratch, torch_side, data, world)
        checks["hand ring reduce-scatter and all-gather equal torch.distributed's to rounding (1e-12 relative)"] = \
            max(ring["reduce_scatter"]["max_rel_diff"], ring["all_gather"]["max_rel_diff"]) <= 1e-12
        checks.update(accounting.memory_checks(sharding["memory"]))
        checks.update(accounting.bytes_check(sharding["bytes"]))
        report["ring_sharding"] = ring
    pairs = [("scratch", "torch")] + ([("scratch", "single"), ("torch", "single")] if single is not None else [])
    result = judge(config, records, parameters, checks, pairs, drift=DRIFT, blame=(
        "scratch vs torch alone points at the hand " + ("all-reduce" if stage == "none" else "sharding")
        + ", both against single at the sharding of the batch" + ("" if stage == "none" else
                                                                  "; a bytes line at the layout")))
    result["passed"] = runs.rank_zeros_verdict(result["passed"])
    report["agreement"] = result
    report.update(runs.learner_reports(learners, records))
    return report


def measure_sharding(config: Config, scratch: ShardedLearner, torch_side: Learner, data, world: int) -> dict:
    """Bytes held and sent, gathered from every process, and printed (collective: every process)."""
    shape = dict(input_size=data.x_train.shape[1], num_classes=len(data.classes))
    baseline = accounting.one_process_bytes(build_scratch(config, **shape), data.x_train[:config.batch_size],
                                            data.y_train[:config.batch_size])
    memory = accounting.memory_figures(scratch, torch_side.ledger, baseline)
    sent = accounting.bytes_figures(scratch)
    accounting.print_memory(memory, world)
    accounting.print_bytes(sent, memory["layout"]["flat_size"] * memory["layout"]["element_size"], world)
    return dict(stage=scratch.stage, zero_stage=scratch.level, wrap=config.extra["wrap"],
                collectives=config.extra["collectives"], memory=memory, bytes=sent)


def print_header(config: Config, member: group.Member, learners: list[Learner], ring: dict, mismatched: list[str],
                 steps: int, shape: dict) -> None:
    world = member.world_size
    print(f"Model: {models.family_of(config.model).describe(config.model, **shape)}; {config.dtype} on "
          f"{config.device}")
    print(f"Processes: {world} ({member.backend}); each global batch of {config.batch_size} is cut into "
          f"{world} shard{'s' if world > 1 else ''} of {config.batch_size // world}")
    for learner in learners:
        print(f"  {learner.name:<8}{learner.implementation}")
    scratch = learners[0]
    if isinstance(scratch, ShardedLearner):
        layout = scratch.shard_bytes()
        units = ", ".join(f"{u['path']} {u['numel']:,}" for u in layout["units"])
        print(f"Sharding: {plural(len(layout['units']), 'unit')} ({units} values), each padded to a multiple of "
              f"{world}: F = {layout['flat_size']:,} values; rank r owns the r-th 1/{world} of each unit")
        for what, library in (("reduce_scatter", "reduce_scatter_single"), ("all_gather", "all_gather_single")):
            r = ring[what]
            print(f"Hand ring {what.replace('_', '-')} vs torch.distributed.{library} of {ring['numel']:,} values: "
                  f"largest difference {r['max_rel_diff']:.1e} relative; sent {r['bytes_sent']:,} bytes per process "
                  f"= (N-1)/N x {ring['tensor_bytes']:,} = {r['formula_bytes']:,.0f}")
    else:
        print(f"scratch gradients averaged in {scratch.buckets.describe()}; DDP bucket_cap_mb "
              f"{config.extra['bucket_mb']:g}")
        print(f"Hand ring all-reduce vs torch.distributed.all_reduce of {ring['numel']:,} values over {world} "
              f"processes: largest difference {ring['max_rel_diff']:.1e} relative; sent {ring['bytes_sent']:,} bytes "
              f"per process = 2(N-1)/N x {ring['tensor_bytes']:,} = {ring['formula_bytes']:,.0f}")
    print("Initial parameters: " + ("bit-identical" if not mismatched else f"DIFFERENT in {', '.join(mismatched)}"))
    print(f"Training on {config.dataset}: {plural(config.epochs, 'epoch')} x {plural(steps, 'step')}, "
          f"{describe_training(config)}")


COMMAND = Command(
    name="ddp",
    help="data parallelism and ZeRO sharding by hand vs DistributedDataParallel / ZeroRedundancyOptimizer / "
         "fully_shard vs one process",
    run=run,
    groups=(DATA, MODEL, LOSS, BATCH, EPOCHS, OPTIMIZER, *RUN, PROCESSES, DIVERGENCE),
    add_arguments=add_arguments,
    config_keys=(*PROCESS_KEYS, "shard", "wrap", "collectives", "bucket_mb", "fail_on_divergence"),
    needs_data=False,  # each process loads its own copy (compare/distributed/learners.py shards the batches)
    defaults={"epochs": 1},
    check=check,
)
