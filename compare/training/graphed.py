"""The hand-written training step captured as one CUDA graph and replayed: `train --cuda-graph`, `bench --cuda-graph`.

    python -m compare train --device cuda --cuda-graph --epochs 1
    python -m compare bench --device cuda --cuda-graph        # scratch, scratch graphed, torch, reduce-overhead

On a GPU a training step of these small networks is a few hundred short kernels, and launching them costs
more than running them. A hand-written step has no autograd tape: it is the same sequence of kernels on
the same tensors every time, nothing in it depends on the data's values, and nothing waits for the GPU
(no `.item()` inside). So the whole step, forward, hand-written backward and optimizer update, is captured
once as a torch.cuda.CUDAGraph and then replayed for each batch, which is copied into static input buffers
first: one launch per step instead of hundreds.

The rules a captured step lives by (`GraphedStep`):
- the first WARMUP_STEPS steps run eagerly on a side stream (as torch's CUDA-graph docs ask): they make
  every lazily created tensor (workspaces, column buffers, momentum buffers) before capture;
- a replay reads and writes the tensors the capture saw, so they must stay where they are: the step keeps
  a reference to every workspace of the model (a forward of another batch size, as an evaluation, may
  replace a layer's workspace, never free the graph's), and parameters are only ever updated in place;
- the learning rate is a number inside the captured update: when a schedule changes it, the step is
  captured again; a batch of another size (an epoch's last) runs eagerly, with the same kernels.
What cannot be captured is refused before anything runs, with the reason (`refusal`).
Nothing here has been timed or run on a GPU by the tests of a machine without one: tests/test_cuda_graph.py
runs the CUDA cases where a GPU is present (scripts/gpu-checks.sh), and the refusals everywhere.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from compare.base.errors import UsageError
from compare.training.config import Config
from compare.training.learners import ScratchLearner

WARMUP_STEPS = 2  # eager steps before the capture (torch's docs: warm up on a side stream first)


def refusal(device: str, engine: str = "hand", optimizer: str = "sgd", dropout: float = 0.0) -> str | None:
    """Why a scratch step of these settings cannot be captured as a CUDA graph, in one line, or None when it can.

    The reasons that belong to the network or its training come first, so that they are said (and tested)
    on any machine; the device last."""
    if engine != "hand":
        return ("--cuda-graph captures the hand-written step; the scratch autograd engine (--engine autograd) "
                "builds a new graph of Python Values every step, which cannot be replayed: drop --engine autograd")
    if dropout > 0:
        return ("--cuda-graph cannot capture dropout: its masks come from the learner's own random stream on the "
                "CPU each step, which a replay would freeze at the captured masks; use --dropout 0")
    if optimizer in ("adam", "adamw"):
        return (f"--cuda-graph cannot capture --optimizer {optimizer}: the scratch Adam computes its bias "
                "correction from a Python step count, which a replay would freeze at its captured value; use sgd, "
                "momentum or nesterov")
    if not torch.cuda.is_available():
        return ("--cuda-graph needs a CUDA GPU (it replays GPU kernels), and torch.cuda.is_available() is False "
                "on this machine: run without --cuda-graph")
    if device != "cuda":
        return "--cuda-graph replays GPU kernels: add --device cuda (or --device auto)"
    return None


def check(config: Config) -> None:
    """UsageError with the reason when config's scratch step cannot be captured (see `refusal`)."""
    reason = refusal(config.device, config.engine, config.optimizer, config.model.get("dropout", 0.0))
    if reason is not None:
        raise UsageError(reason)


def workspaces(model) -> list[Tensor]:
    """Every workspace tensor of the model's layers (scratch.Module.workspace), the conv's column buffers too."""
    found, stack = [], [model]
    while stack:
        module = stack.pop()
        found += list(getattr(module, "workspaces", {}).values())
        if getattr(module, "cols", None) is not None:
            found.append(module.cols)
        stack += [child for _, child in module.children()]
    return found


class GraphedStep:
    """A scratch learner's training step, captured as one CUDA graph: `step(x, y)` returns the loss, a tensor
    that the next call overwrites (clone it to keep it)."""

    def __init__(self, learner: ScratchLearner) -> None:
        self.learner = learner
        self.static_x: Tensor | None = None  # the batch a replay reads
        self.static_y: Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: Tensor | None = None  # what a replay writes
        self.captured_lr: float | None = None
        self.kept: list[Tensor] = []  # the workspaces the graph reads and writes, kept alive
        self.eager_steps = 0
        self.captures = 0

    def eager(self, x: Tensor, y: Tensor) -> Tensor:
        loss = self.learner.forward_backward(x, y)
        self.learner.step()
        return loss

    def capture(self) -> None:
        """Record one step on the static buffers (capture runs nothing; the caller replays it)."""
        self.graph = None  # the previous graph's memory goes back before the new one is recorded
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = self.learner.forward_backward(self.static_x, self.static_y)
            self.learner.step()
        self.captured_lr = self.learner.learning_rate()
        self.kept = workspaces(self.learner.model)
        self.captures += 1

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        if self.eager_steps < WARMUP_STEPS:  # on a side stream, as torch's docs warm up before a capture
            self.eager_steps += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self.eager(x, y)
            torch.cuda.current_stream().wait_stream(side)
            return loss
        if self.static_x is None:
            self.static_x, self.static_y = x.clone(), y.clone()
        if x.shape != self.static_x.shape or y.shape != self.static_y.shape:
            return self.eager(x, y)  # another batch size (an epoch's last batch): the same kernels, eagerly
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        if self.graph is None or self.learner.learning_rate() != self.captured_lr:
            self.capture()  # first time, or a schedule changed the learning rate baked into the update
        self.graph.replay()
        return self.loss


@dataclass
class GraphedScratchLearner(ScratchLearner):
    """A ScratchLearner whose training steps are replays of one captured CUDA graph (train --cuda-graph).

    Everything else, its gradients for the re-synchronized checks, evaluation, state, runs as the plain
    learner's: a copy of it (copy.deepcopy, which those checks take) is a plain ScratchLearner."""

    implementation: str = "hand-written, CUDA graph"

    def __post_init__(self) -> None:
        self.graphed = GraphedStep(self)

    @classmethod
    def of(cls, learner: ScratchLearner) -> GraphedScratchLearner:
        return cls(**{f.name: getattr(learner, f.name) for f in fields(ScratchLearner)
                      if f.name != "implementation"})

    def train_step(self, x: Tensor, y: Tensor) -> float:
        return self.graphed.step(x, y).item()  # read after the replay: no .item() inside the step

    def __deepcopy__(self, memo: dict) -> ScratchLearner:
        return ScratchLearner(**{f.name: copy.deepcopy(getattr(self, f.name), memo) for f in fields(ScratchLearner)
                                 if f.name != "implementation"})
