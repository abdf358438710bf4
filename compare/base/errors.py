"""The errors a person sees: each is printed as one line, and the command line maps it to an exit status.

This module is a leaf: it imports nothing of the project, so every layer can raise these.

    UsageError        bad input on the command line (an option, a path, a size)      exit 2
    DataError         the dataset files are missing or not what they should be       exit 2
    CheckpointError   a checkpoint folder is missing, damaged or does not fit        exit 2
    DistributedError  a process of a data-parallel run failed, hung or lost the others  exit 3
    InterruptedRunError  Ctrl-C during a run; says where it stopped                   exit 130
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


class DataError(Exception):
    """The dataset files are missing or not what they should be."""


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded: missing or damaged files, another architecture or dtype."""


class InterruptedRunError(Exception):
    """The person pressed Ctrl-C; the message says where the run stopped (epoch, step)."""


class DistributedError(Exception):
    """A data-parallel run could not go on: a process died or timed out, the group could not be joined."""
