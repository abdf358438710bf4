"""Data parallelism by hand: N processes, each on a shard of every batch, gradients averaged across them.

    group.py     joining a process group (torchrun's or our own spawn), timeouts, clear errors
    buckets.py   averaging scratch gradient buffers across processes with all_reduce, in buckets
    ring.py      the ring all-reduce from point-to-point send/recv, with the bytes it sends (for learning)
    learners.py  the scratch and torch (DistributedDataParallel) learners on shards of each global batch

`python -m compare ddp` (compare/commands/ddp.py) trains both and a one-process reference, and
compares them; docs/data-parallel.md explains the method and gives the figures.
"""
