"""`python -m compare tp`: tensor parallelism by hand (Megatron's column- and row-parallel Linear), proven equal to
torch's parallelize_module and to one process.

    python -m compare tp --nproc 2 --dtype float64 --epochs 1     # the lesson's MLP, its 784->16->16 pair split
    python -m compare tp --nproc 2 --model vit --depth 1 --dim 32 --heads 2 --mlp-dim 64 --dtype float64
    torchrun --nproc-per-node 2 -m compare tp --dtype float64 --epochs 1

The family names the pairs of Linear layers to split (compare/models/: the MLP's first two, each ViT
block's feed-forward MLP). Each of N processes holds 1/N of each pair's matrices, the rest of the
network whole, and sees every example:

- scratch: ColumnParallelLinear then RowParallelLinear, with the operators f and g written by hand
  (compare/distributed/tensor_parallel.py); f's and g's all-reduces by the hand ring (--collectives ring,
  every byte counted) or torch.distributed.all_reduce (library);
- torch: the torch twin after parallelize_module(model, mesh, {first: ColwiseParallel(), second: RowwiseParallel()});
- single: rank 0 also trains the scratch network whole, in one process (--reference).

In float64 their parameters must end equal to rounding (TRAINED_PARAMETERS_FLOAT64). A split that N
does not divide is refused before any process starts. Only rank 0 prints and writes the report.
"""

from __future__ import annotations

import argparse
import math

from compare import models
from compare.base.errors import UsageError
from compare.base.report import plural, table
from compare.distributed import accounting, group, launch, runs
from compare.distributed.collectives import COLLECTIVES, Collectives
from compare.distributed.learners import replicas_identical
from compare.distributed.sharding import gather_to_all
from compare.distributed.tensor_parallel_learners import ScratchTensorParallel, TorchTensorParallel
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

DRIFT = "the split layers sum their products in another order than the whole ones"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tensor parallelism")
    g.add_argument("--collectives", choices=COLLECTIVES, default="ring",
                   help="the all-reduces of f and g: the hand-written ring (every byte counted), or "
                        "torch.distributed.all_reduce (default: ring)")


def check(args: argparse.Namespace) -> None:
    spec = args.model_spec
    family = models.family_of(spec)
    pairs = family.tensor_parallel(spec) if family.tensor_parallel else []
    if not pairs:
        raise UsageError(f"--model {family.name} has no layers that tp splits (it splits the MLP's first two "
                         "Linear layers, or each ViT block's feed-forward pair); use --model mlp or vit")
    if spec.get("batch_norm") or spec.get("dropout", 0.0) > 0:
        raise UsageError("--batch-norm and --dropout are refused by tp: batch norm would sit between the split "
                         "layers with its own parameters, and dropout would draw its masks in every process; drop them")
    n = launch.world_size(args.nproc)
    for pair in pairs:
        if pair.size % n:
            fits = [k for k in range(2, pair.size + 1) if pair.size % k == 0][:4]
            raise UsageError(f"{pair.option} {pair.size} cannot be split across {n} processes: {pair.column}'s "
                             f"{pair.size} output features (and {pair.row}'s inputs) must divide into {n} equal "
                             f"parts; choose a size that {n} divides, or --nproc {' or '.join(map(str, fits))}")


def run(config: Config, data) -> dict:
    return launch.run_group(train_and_compare, config)


def train_and_compare(config: Config, member: group.Member) -> dict:
    """What every process runs once it has joined the group; the report (rank 0's is the run's)."""
    data, shape = runs.load_for(config, member)
    world = member.world_size
    pairs = models.family_of(config.model).tensor_parallel(config.model)
    scratch_inner, torch_inner = build_scratch(config, **shape), build_torch(config, **shape)
    mismatched = parameter_mismatches(scratch_inner, torch_inner)
    comm = Collectives(config.extra["collectives"])
    scratch = ScratchTensorParallel(scratch_inner, member.rank, world, pairs, comm, config)
    torch_side = TorchTensorParallel(torch_inner, member.rank, world, pairs, config, config.device.split(":")[0])
    single = runs.reference(config, member, shape)
    learners: list[Learner] = [scratch, torch_side, *([single] if single else [])]

    print(f"Model: {models.family_of(config.model).describe(config.model, **shape)}; {config.dtype} on "
          f"{config.device}")
    print(f"Processes: {world} ({member.backend}); every process sees the whole batch of {config.batch_size}")
    for learner in learners:
        print(f"  {learner.name:<8}{learner.implementation}")
    for pair in pairs:
        print(f"Split: {pair.column} column-parallel, {pair.row} row-parallel: {pair.size} features, "
              f"{pair.size // world} per process")
    print("Initial parameters: " + ("bit-identical" if not mismatched else f"DIFFERENT in {', '.join(mismatched)}"))
    steps = math.ceil(len(data.x_train) / config.batch_size)
    print(f"Training on {config.dataset}: {plural(config.epochs, 'epoch')} x {plural(steps, 'step')}, "
          f"{describe_training(config)}")
    records = train_lockstep(learners, data.x_train, data.y_train, data.x_test, data.y_test,
                             epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                             on_epoch=lambda epoch, stats: print_epoch(epoch, stats, learners),
                             before_step=launch.failure_hook_for_tests(member), progress=member.rank == 0)

    parameters = {le.name: le.gathered_parameters() for le in (scratch, torch_side)}  # collective: every process
    identical = {name: replicas_identical(p) for name, p in parameters.items()}
    if single is not None:
        parameters["single"] = single.named_parameters()
    baseline = accounting.one_process_bytes(build_scratch(config, **shape), data.x_train[:config.batch_size],
                                            data.y_train[:config.batch_size])
    figures = measure(scratch, torch_side, baseline, pairs, world)
    checks = {"bit-identical initial parameters (scratch, torch)": not mismatched,
              "every process holds the same whole parameters after training (scratch, torch)":
                  all(identical.values()),
              f"every rank's parameters: one process's less (N-1)/N of the split matrices = "
              f"{figures['expected_parameter_bytes']:,} bytes": all(
                  r["parameters"] == figures["expected_parameter_bytes"] for r in figures["held"])}
    if comm.how == "ring":
        checks["every rank sent exactly what a ring all-reduce of f's and g's tensors sends, in every step"] = all(
            r["every_step"] and r["bytes"] == r["formula"] for r in figures["sent"])
    pairs_judged = [("scratch", "torch")] + ([("scratch", "single"), ("torch", "single")] if single else [])
    result = judge(config, records, parameters, checks, pairs_judged, drift=DRIFT, blame=(
        "scratch vs torch alone points at the hand-written layers, both against single at the split itself"))
    result["passed"] = runs.rank_zeros_verdict(result["passed"])
    report = dict(world_size=world, backend=member.backend, collectives=comm.how,
                  pairs=[dict(column=p.column, row=p.row, size=p.size) for p in pairs], tensor_parallel=figures,
                  agreement=result)
    report.update(runs.learner_reports(learners, records))
    return report


def measure(scratch: ScratchTensorParallel, torch_side: TorchTensorParallel, baseline: dict[str, int],
            pairs: list, world: int) -> dict:
    """Bytes held (after the last step) and sent per step in every process, gathered and printed (collective)."""
    mine = dict(held=scratch.ledger.to_dict()["at_rest"], torch_held=torch_side.ledger.to_dict()["at_rest"],
                sent=dict(bytes=sum(scratch.step_bytes), formula=sum(scratch.step_formula),
                          every_step=scratch.step_bytes == scratch.step_formula, steps=len(scratch.step_bytes)),
                calls=scratch.step_calls[0] if scratch.step_calls else [])
    ranks = gather_to_all(mine)
    element = next(iter(scratch.inner.named_parameters().values())).element_size()
    split_values = sum(layer.weight.numel() + (layer.bias.numel() if "bias" in layer.split_dims else 0)
                       for layer in scratch.layers.values())  # this process's share of the split tensors
    expected = baseline["parameters"] - (world - 1) * split_values * element
    held = [r["held"] for r in ranks]
    print("\nBytes held per process after a step, measured on the tensors, against one process:")
    rows = [[kind.replace("_", " "), f"{baseline[kind]:,}", " / ".join(f"{h[kind]:,}" for h in held),
             " / ".join(f"{r['torch_held'][kind]:,}" for r in ranks)] for kind in baseline]
    print(table(["", "one process", "scratch, rank 0 / 1 / ...", "torch, rank 0 / 1 / ..."], rows))
    calls = ", ".join(f"{what} {n:,} values" for what, n in ranks[0]["calls"])
    sent = [r["sent"] for r in ranks]
    if scratch.comm.how == "ring" and sent[0]["steps"]:
        measured = " / ".join(f"{s['bytes']:,}" for s in sent)
        formula = " / ".join(f"{s['formula']:,}" for s in sent)
        print(f"All-reduces of a training step (rank 0's first): {calls}; bytes sent by the hand ring over the "
              f"{sent[0]['steps']:,} steps, per rank: {measured} (a ring all-reduce of those sizes: {formula})")
    else:
        print(f"All-reduces of a training step (rank 0's first): {calls} (torch.distributed.all_reduce: bytes not "
              "counted)")
    return dict(one_process=baseline, held=held, torch_held=[r["torch_held"] for r in ranks],
                expected_parameter_bytes=expected, sent=sent, calls=ranks[0]["calls"])


COMMAND = Command(
    name="tp",
    help="tensor parallelism by hand (column- then row-parallel Linear, f and g) vs parallelize_module vs one process",
    run=run,
    groups=(DATA, MODEL, LOSS, BATCH, EPOCHS, OPTIMIZER, *RUN, PROCESSES, DIVERGENCE),
    add_arguments=add_arguments,
    config_keys=(*PROCESS_KEYS, "collectives", "fail_on_divergence"),
    needs_data=False,  # each process loads its own copy
    defaults={"epochs": 1},
    check=check,
)
