"""Joining a process group with timeouts and clear errors, and starting N processes on this machine.

    torchrun --nproc-per-node 2 -m compare ddp ...   # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT, LOCAL_RANK
    python -m compare ddp --nproc 2 ...              # spawn() sets them: 127.0.0.1 and a free port

Every process calls `join()`, which reads those variables and meets the others at MASTER_ADDR:MASTER_PORT
(rank 0 listens there). Nothing may wait forever: joining and every collective operation give up after
`timeout_s`, and `spawn()` ends all processes as soon as one of them fails (with a run-wide limit on top),
so a dead process or a port already in use ends the run with one line and a nonzero exit status: the
processes leave their errors to the parent, which names the cause once (a killed process before the
others that then lost contact with it).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from compare.base.errors import DataError, DistributedError, UsageError

ENV_NAMES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LOCALHOST = "127.0.0.1"
# After one process fails, the others lose contact and end with their own one-line error within moments; only one
# that is still running after this long is terminated.
GRACE_PERIOD_S = 10


@dataclass(frozen=True)
class Member:
    """This process's place in the group."""

    rank: int  # 0 .. world_size-1; rank 0 prints and writes the report
    world_size: int  # the number of processes
    local_rank: int  # its index on this machine: which GPU it takes
    backend: str  # "gloo" (CPU tensors) or "nccl" (GPU tensors)


def launched() -> bool:
    """Whether this process was started as one of a group (by torchrun or by spawn())."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def join(backend: str, timeout_s: float) -> Member:
    """Join the group described by the environment; a DistributedError (one line) when that fails."""
    missing = [name for name in ENV_NAMES if name not in os.environ]
    if missing:
        raise DistributedError(f"not started as one of a group of processes: {', '.join(missing)} not set; "
                               "launch with torchrun --nproc-per-node N, or pass --nproc N")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError, OSError) as error:  # DistNetworkError and DistStoreError are RuntimeErrors
        text = first_line(error)
        hint = ("the port is already in use: choose another --port (0 picks a free one), or end the program "
                "that holds it" if "in use" in text.lower() else
                f"were all {world} processes started, and can they reach {where}?")
        raise DistributedError(f"rank {rank}: could not join the group of {world} processes at {where} "
                               f"(timeout {timeout_s:g} s): {text}; {hint}") from None
    return Member(rank, world, int(os.environ.get("LOCAL_RANK", rank)), backend)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_collective_failure(error: BaseException) -> bool:
    """Whether an error raised in a collective operation means the other processes are gone or silent."""
    text = str(error).lower()
    return isinstance(error, dist.DistError) or any(
        word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "peer"))


def lost_contact(member: Member, error: BaseException, where: str) -> DistributedError:
    """The error of a collective operation that failed: another process died, or did not answer in time."""
    return DistributedError(f"rank {member.rank} of {member.world_size}: lost the other processes {where}: "
                            f"{first_line(error)} (a process died or did not answer within the timeout)")


def free_port() -> int:
    """A TCP port that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def check_port_free(port: int) -> None:
    """Refuse, before starting any process, a port that another program already holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOCALHOST, port))
        except OSError as error:
            raise UsageError(f"--port {port}: {LOCALHOST}:{port} is already in use ({error.strerror}); choose "
                             "another port, or 0 for a free one") from None


def _child(index: int, fn: Callable, world: int, port: int, args: tuple, errors: str) -> None:
    """What each spawned process runs: the group's variables, then fn(*args). One of our errors is left as one line
    in the folder `errors` for the parent, which says once, for the whole run, what went wrong."""
    os.environ.update(MASTER_ADDR=LOCALHOST, MASTER_PORT=str(port), RANK=str(index), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(index))
    try:
        fn(*args)
    except DistributedError as error:
        _leave_error(errors, index, str(error))
        _exit_now(3)
    except (UsageError, DataError) as error:
        _leave_error(errors, index, f"rank {index}: {error}")
        _exit_now(2)
    _exit_now(0)


def _leave_error(folder: str, index: int, message: str) -> None:
    Path(folder, str(index)).write_text(first_line(Exception(message)))


def _exit_now(status: int) -> None:
    """End this process with `status` without the interpreter's teardown: gloo's threads may outlive the group
    (after a lost peer, and now and then after a finished run too), and destroying them at exit can abort the
    process (std::terminate, SIGABRT) instead of giving the status that says what happened."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def spawn(fn: Callable, nproc: int, args: tuple = (), *, port: int = 0, run_timeout_s: float | None = None) -> None:
    """Run fn(*args) in `nproc` new processes (start method spawn) that form one group on this machine.

    Returns when all have finished; raises DistributedError as soon as one fails (the others are ended:
    torch.multiprocessing terminates them) or when the whole run takes longer than `run_timeout_s`.
    `fn` must be importable by name (a module-level function): spawned processes start a fresh Python.
    """
    if port == 0:
        port = free_port()
    else:
        check_port_free(port)
    with quiet_process_management(), tempfile.TemporaryDirectory() as errors:
        context = mp.start_processes(_child, args=(fn, nproc, port, args, errors), nprocs=nproc, join=False,
                                     start_method="spawn")
        _wait_for(context, nproc, run_timeout_s, errors)


@contextlib.contextmanager
def quiet_process_management():
    """Keep the run's own error the last line it prints: no "Terminating process ..." log line of
    torch.multiprocessing, and no warning of the resource tracker about the semaphores of a terminated process
    (it removes them all the same: the warning is only noise after a failure already said)."""
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level, warnings_env = spawn_log.level, os.environ.get("PYTHONWARNINGS")
    spawn_log.setLevel(logging.ERROR)
    # the tracker is a process of its own, started with the first process: it reads its filter from the environment
    tracker_filter = "ignore::UserWarning:multiprocessing.resource_tracker"
    os.environ["PYTHONWARNINGS"] = f"{warnings_env},{tracker_filter}" if warnings_env else tracker_filter
    try:
        yield
    finally:
        spawn_log.setLevel(level)
        if warnings_env is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = warnings_env


def _stop(processes: list) -> None:
    """Terminate the processes still running and wait until they are gone, so nothing of theirs comes after."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=GRACE_PERIOD_S)


def _wait_for(context: mp.ProcessContext, nproc: int, run_timeout_s: float | None, errors: str) -> None:
    deadline = None if run_timeout_s is None else time.monotonic() + run_timeout_s
    try:
        while not context.join(timeout=0.5, grace_period=GRACE_PERIOD_S):
            if deadline is not None and time.monotonic() > deadline:
                _stop(context.processes)
                raise DistributedError(f"the {nproc} processes did not finish within --run-timeout "
                                       f"{run_timeout_s:g} s; all were stopped")
    except mp.ProcessExitedException:
        # every process has ended by now (join stops the others after the grace period): say what went wrong
        raise _what_went_wrong(context.processes, errors) from None
    except mp.ProcessRaisedException as error:  # not one of our errors: a bug, so the traceback is kept
        raise DistributedError(f"the process of rank {error.error_index} failed; the other processes were "
                               f"stopped. Its traceback:\n{error}") from None
    except KeyboardInterrupt:
        _stop(context.processes)
        raise


def _what_went_wrong(processes: list, errors: str) -> DistributedError | UsageError:
    """One error for the run, from the processes' exit statuses and the lines they left: the cause first. A
    process that ended without a line of ours (killed, crashed, exited on its own) is the likeliest cause, then
    one that said why (lost contact, a bad option), and last one that the parent stopped (SIGTERM)."""
    lines = {int(p.name): p.read_text() for p in Path(errors).iterdir()}
    stopped = -signal.SIGTERM

    def rank(index: int) -> tuple[int, int]:
        code = processes[index].exitcode
        return (2 if code == stopped else 1 if index in lines else 0), index

    culprit = min((k for k, p in enumerate(processes) if p.exitcode != 0), key=rank)
    code, line = processes[culprit].exitcode, lines.get(culprit)
    if code == 2 and line is not None:
        return UsageError(line)  # a bad option or file, found by every process alike: said once
    how = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    said = f": {line}" if line else ""
    others = [f"rank {k}: {text}" for k, text in sorted(lines.items()) if k != culprit]
    then = f" ({'; '.join(others)})" if others else ""
    return DistributedError(f"the process of rank {culprit} {how}{said}; the other processes ended or were "
                            f"stopped{then}")


def device_of(member: Member) -> torch.device:
    """This process's device: its own GPU with NCCL, else the CPU."""
    if member.backend == "nccl":
        torch.cuda.set_device(member.local_rank)
        return torch.device("cuda", member.local_rank)
    return torch.device("cpu")
