"""Distributed training by hand over torch.distributed, each piece against torch's own and one process.

Data parallelism (`python -m compare ddp`): N processes, each on a shard of every batch, gradients averaged.

    group.py       joining a process group (torchrun's or our own spawn), timeouts, clear errors
    launch.py      one function run in every process of a group (torchrun or --nproc), failures as one line
    buckets.py     averaging scratch gradient buffers across processes with all_reduce, in buckets
    ring.py        ring reduce-scatter, all-gather and all-reduce from point-to-point send/recv, with their bytes
    collectives.py the collectives a step calls: the hand rings (bytes counted) or torch.distributed's own
    learners.py    the scratch and torch (DistributedDataParallel) learners on shards of each global batch

Sharding (`ddp --shard optimizer|gradients|parameters`): ZeRO stages 1 to 3.

    flat.py        a model's parameters and gradients as flat buffers, in units, padded to a multiple of N
    sharding.py    ShardedLearner: each rank keeps 1/N of optimizer state, gradients, parameters
    torch_sharding.py  ZeroRedundancyOptimizer and FSDP2's fully_shard, the torch side of each stage
    memory.py      bytes held per kind, counted on the storages; accounting.py what a sharded run measured

Tensor parallelism (`python -m compare tp`): one layer's matrix split across the processes.

    tensor_parallel.py           f, g, ColumnParallelLinear, RowParallelLinear (Megatron's), by hand
    tensor_parallel_learners.py  those in the scratch network; parallelize_module on the torch twin

What the commands share: runs.py (data per process, the one-process reference, reports), verdict.py (the
pairwise comparison and its three closing lines). docs/data-parallel.md explains the methods and gives
the figures.
"""
