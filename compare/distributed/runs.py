"""What every distributed command (`ddp`, `tp`) does around its learners, in each process.

    data, shape = load_for(config, member)              # this process's copy of the dataset, on its device
    single = reference(config, member, shape)           # rank 0's one-process scratch learner, or None
    report.update(learner_reports(learners, records))   # each learner's accuracy, history and times
    result["passed"] = rank_zeros_verdict(result["passed"])
"""

from __future__ import annotations

import torch

from compare.base.errors import UsageError
from compare.data.mnist import Dataset, load_dataset
from compare.distributed import group
from compare.training.config import Config
from compare.training.learners import Learner, ScratchLearner, build_scratch
from compare.training.loop import RunRecord


def load_for(config: Config, member: group.Member) -> tuple[Dataset, dict[str, int]]:
    """The dataset on this process's device (config.device set to it), and the network's input and output sizes.
    A last batch smaller than the number of processes is refused (some process would get no example)."""
    device = group.device_of(member)
    data = load_dataset(config.dataset, config.data_root, dtype=config.torch_dtype, device=device, download=False)
    n_train, world = len(data.x_train), member.world_size
    last = n_train % config.batch_size or config.batch_size
    if last < world:
        raise UsageError(f"--batch-size {config.batch_size} leaves a last batch of {last} of the {n_train:,} "
                         f"training images, fewer than the {world} processes; choose another --batch-size")
    config.device = str(device)
    return data, dict(input_size=data.x_train.shape[1], num_classes=len(data.classes))


def reference(config: Config, member: group.Member, shape: dict[str, int]) -> ScratchLearner | None:
    """The scratch network trained in one process on whole batches, by rank 0 (--reference), else None."""
    if not (config.extra["reference"] and member.rank == 0):
        return None
    single = build_scratch(config, **shape)
    single.name, single.implementation = "single", "hand-written, 1 process, whole batches"
    return single


def learner_reports(learners: list[Learner], records: dict[str, RunRecord]) -> dict[str, dict]:
    return {learner.name: dict(implementation=learner.implementation,
                               test_accuracy=records[learner.name].history[-1].test_accuracy,
                               history=[h.to_dict() for h in records[learner.name].history],
                               epoch_seconds=getattr(learner, "epoch_seconds", None))
            for learner in learners}


def rank_zeros_verdict(passed: bool) -> bool:
    """Rank 0's verdict, in every process (each exits with it)."""
    shared = [passed]
    torch.distributed.broadcast_object_list(shared, src=0)
    return shared[0]
