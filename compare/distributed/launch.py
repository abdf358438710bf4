"""One function run in every process of a group: the processes started by torchrun or by `--nproc N`.

    report = run_group(train_and_compare, config)   # train_and_compare(config, member) -> rank 0's report

Under torchrun this process is already one of the group and runs the function itself; otherwise
`group.spawn` starts config.extra["nproc"] processes that each run it, and rank 0's report comes back
through a file. Each process joins the group (gloo, or NCCL with --device cuda), runs the function
(only rank 0 prints), and leaves; a collective that fails because another process died or went
silent becomes one line (DistributedError, exit status 3), and --nproc's parent stops every process.

For tests only, two environment variables make one rank fail after its first step, as a crashed or
hung process would; the others must then end with an error, not hang.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

from compare.base.errors import DistributedError
from compare.distributed import group
from compare.training.config import Config
from compare.training.loop import BeforeStep

EXIT_AFTER_FIRST_STEP = "COMPARE_DDP_TEST_EXIT_RANK"  # this rank exits abruptly (status 3) after its first step
STALL_AFTER_FIRST_STEP = "COMPARE_DDP_TEST_STALL_RANK"  # this rank stops answering (sleeps) after its first step

Work = Callable[[Config, group.Member], dict]


def world_size(nproc: int | None) -> int:
    """The number of processes: torchrun's WORLD_SIZE when it started this one, else --nproc (default 1)."""
    return int(os.environ["WORLD_SIZE"]) if group.launched() else (nproc or 1)


def backend_of(config: Config) -> str:
    chosen = config.extra["backend"]
    return ("nccl" if config.device == "cuda" else "gloo") if chosen == "auto" else chosen


def run_group(work: Work, config: Config) -> dict:
    """Run work(config, member) in every process of the group; rank 0's report. `work` must be a module-level
    function (spawned processes find it by name)."""
    if group.launched():  # torchrun started this process as one of the group
        report = in_process(work, config)
        if int(os.environ["RANK"]) != 0:
            config.report = None  # the report is rank 0's to write
        return report
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "report.json"
        group.spawn(in_process, config.extra["nproc"] or 1, (work, config, str(result)), port=config.extra["port"],
                    run_timeout_s=config.extra["run_timeout"])
        if not result.exists():
            raise DistributedError("the processes ended without an error but rank 0 wrote no report")
        return json.loads(result.read_text())


def in_process(work: Work, config: Config, result_path: str | None = None) -> dict:
    """What each process runs: join the group, work (only rank 0 prints), leave. Returns the report."""
    member = group.join(backend_of(config), config.extra["timeout"])
    try:
        if member.rank == 0:
            report = work(config, member)
        else:
            with open(os.devnull, "w") as quiet, redirect_stdout(quiet):
                report = work(config, member)
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
