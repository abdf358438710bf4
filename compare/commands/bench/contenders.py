"""The four contenders of `python -m compare bench`, and how each gets its training step and its batches.

    scratch   the hand-written network (scratch/), on batches already in memory
    graphed   (--cuda-graph, CUDA only) the same step captured once as a CUDA graph and replayed
              (compare/training/graphed.py)
    torch     its twin (torch_impl/) in eager mode, with torch.optim.SGD's defaults
    compile   the same torch model under torch.compile (with --cuda-graph, mode="reduce-overhead", which
              replays CUDA graphs itself); reported as unavailable where it fails
    typical   the pipeline people write first: torchvision's MNIST with ToTensor/Normalize
              transforms and a DataLoader feeding the torch model, so a step includes loading

What a grid point benchmarks is said in two functions only: `make_learners` (the two networks)
and `step_arithmetic` (the model's name, a step's FLOPs and the bytes it must at least move).
Everything else here works on any model that takes flat batches of images.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from compare import models
from compare.base.errors import UsageError
from compare.data.mnist import DATASETS, find_files
from compare.models.traffic import step_bytes
from compare.training.config import Config
from compare.training.graphed import GraphedStep
from compare.training.learners import ScratchLearner, TorchLearner, build_scratch, build_torch

CONTENDERS = ("scratch", "graphed", "torch", "compile", "typical")  # the order of the tables' columns
NUM_CLASSES = 10

Batch = tuple[Tensor, Tensor]


# ---------------------------------------------------------------- what a grid point benchmarks


def make_learners(config: Config) -> tuple[ScratchLearner, TorchLearner]:
    """The scratch network and its torch twin for one grid point, from one seed (bit-identical parameters)."""
    return build_scratch(config), build_torch(config)


@dataclass
class StepArithmetic:
    """What one training step of a grid point's model computes."""

    model: str  # the model's name in the tables, e.g. "784-16-16-10"
    flops: int  # floating-point operations of the matrix products of one step (compare/models/flops.py)
    elementwise_share: float  # upper estimate of the element-wise work left out of `flops`
    bytes: int  # bytes one step must at least read and write (compare/models/traffic.py)


def step_arithmetic(config: Config, input_size: int) -> StepArithmetic:
    """The model's name, the FLOPs and the least memory traffic of one training step at the grid point's batch
    size (its family's counts; the parameters counted on the built network)."""
    family = models.family_of(config.model)
    if family.step_flops is None or family.step_activations is None:
        raise UsageError(f"--model {family.name} does not count its FLOPs and activations, so it cannot be "
                         "benchmarked here")
    flops, share = family.step_flops(config.model, input_size, NUM_CLASSES, config.batch_size)
    parameters = sum(p.numel() for p in models.build(config.model, "scratch", input_size, NUM_CLASSES).parameters())
    activations = family.step_activations(config.model, input_size, NUM_CLASSES)
    element_size = torch.finfo(config.torch_dtype).bits // 8
    traffic = step_bytes(parameters, input_size, activations, config.batch_size, element_size)
    return StepArithmetic(family.name_of(config.model, input_size, NUM_CLASSES), flops, share, traffic)


# ---------------------------------------------------------------- a contender


@dataclass
class Contender:
    """One implementation under test: its training step, where its batches come from, what it holds."""

    name: str
    train_step: Callable[[Tensor, Tensor], Tensor] | None  # forward, backward, update; returns the loss
    next_batch: Callable[[], Batch] | None  # the next batch of a timed block
    epoch_batches: Callable[[], Iterator[Batch]] | None  # one epoch's batches, made as they are used
    held_bytes: Callable[[], int] | None  # bytes of the tensors it keeps between steps
    drop_gradients: Callable[[], None] | None = None  # torch: zero_grad(), which frees the .grad tensors
    losses: list[Tensor] = field(default_factory=list)  # every step's loss, for the agreement check
    unavailable: str | None = None  # why it could not run here, or None
    first_step_s: float = math.nan  # the first step's time: for "compile", mostly compilation

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.losses.append(self.train_step(*self.next_batch()))

    def run_from(self, batches: Iterator[Batch], steps: int) -> bool:
        """Up to `steps` steps on batches from `batches`; False once it is exhausted."""
        for _ in range(steps):
            batch = next(batches, None)
            if batch is None:
                return False
            self.losses.append(self.train_step(*batch))
        return True


def skipped(name: str, reason: str) -> Contender:
    return Contender(name, None, None, None, None, unavailable=reason)


def scratch_step(learner: ScratchLearner) -> Callable[[Tensor, Tensor], Tensor]:
    model, loss_fn, optimizer = learner.model, learner.loss_fn, learner.optimizer

    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward(), input_grad=False)  # as autograd: no gradient for the images
        optimizer.step()
        return loss

    return step


def torch_step(model: torch.nn.Module, loss_fn: torch.nn.Module,
               optimizer: torch.optim.Optimizer) -> Callable[[Tensor, Tensor], Tensor]:
    def step(x: Tensor, y: Tensor) -> Tensor:
        optimizer.zero_grad()  # set_to_none=True, torch's default: no kernel to zero the old gradients
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def tensor_bytes(tensors: Iterator[Tensor | None]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


# ---------------------------------------------------------------- batches in memory


@dataclass
class Batches:
    """The data of one grid point, as every contender but "typical" gets it: tensors already in memory."""

    x: Tensor  # N,784: the images an epoch covers, on the benchmark's device and in its dtype
    y: Tensor  # N
    shuffled: tuple[Tensor, Tensor]  # x and y in one random order, gathered once (see `cycle`)
    batch_size: int
    seed: int

    def cycle(self) -> Callable[[], Batch]:
        """Consecutive batches of `shuffled`, round and round, the same sequence for every caller.

        Slicing a pre-shuffled copy hands out ready batches (no gathering inside a timed step), and
        walking through all the data, rather than a few batches over and over, keeps the training
        (and so the numbers the kernels see) like that of a real run.
        """
        xs, ys = self.shuffled
        count, b = len(xs) // self.batch_size, self.batch_size
        position = 0

        def next_batch() -> Batch:
            nonlocal position
            start = position % count * b
            position += 1
            return xs[start:start + b], ys[start:start + b]

        return next_batch

    def epoch(self) -> Iterator[Batch]:
        """A shuffled pass, gathered batch by batch as `train` does; the same order on every call."""
        order = torch.Generator().manual_seed(self.seed)
        for index in torch.randperm(len(self.x), generator=order).split(self.batch_size):
            index = index.to(self.x.device)
            yield self.x[index], self.y[index]

    def odd_batch(self) -> Batch | None:
        """A batch of the size the epoch ends on, when the images do not divide into whole batches."""
        remainder = len(self.x) % self.batch_size
        return (self.shuffled[0][:remainder], self.shuffled[1][:remainder]) if remainder else None


def make_batches(x: Tensor, y: Tensor, shuffled: tuple[Tensor, Tensor], batch_size: int, seed: int) -> Batches:
    if batch_size > len(x):
        raise UsageError(f"batch size {batch_size} is larger than the {len(x)} images of --epoch-images")
    return Batches(x, y, shuffled, batch_size, seed)


# ---------------------------------------------------------------- the contenders of a grid point


def scratch_contender(config: Config, batches: Batches) -> Contender:
    s, _ = make_learners(config)
    return Contender("scratch", scratch_step(s), batches.cycle(), batches.epoch,
                     lambda: tensor_bytes(iter(s.model.parameters() + s.model.gradients())))


def graphed_contender(config: Config, batches: Batches) -> Contender:
    """scratch's step as one captured CUDA graph; each loss cloned, as the next replay overwrites it."""
    s, _ = make_learners(config)
    graphed = GraphedStep(s)
    return Contender("graphed", lambda x, y: graphed.step(x, y).clone(), batches.cycle(), batches.epoch,
                     lambda: tensor_bytes(iter(s.model.parameters() + s.model.gradients())))


def torch_contender(config: Config, name: str, next_batch: Callable[[], Batch],
                    epoch_batches: Callable[[], Iterator[Batch]], compiled: str | None = None) -> Contender:
    """torch eager, or with compiled = a torch.compile mode ("default", "reduce-overhead") the compiled model."""
    _, t = make_learners(config)
    model = torch.compile(t.model, mode=compiled) if compiled else t.model
    # Plain torch.optim.SGD as users write it: torch picks its fastest variant (foreach on CUDA).
    optimizer = torch.optim.SGD(t.model.parameters(), lr=config.lr)
    params = list(t.model.parameters())
    return Contender(name, torch_step(model, t.loss_fn, optimizer), next_batch, epoch_batches,
                     lambda: tensor_bytes(iter(params + [p.grad for p in params])),
                     drop_gradients=optimizer.zero_grad)


def make_contenders(config: Config, compile_too: bool, batches: Batches, typical: TypicalPipeline | None,
                    typical_reason: str, cuda_graph: bool = False) -> list[Contender]:
    """scratch, torch, compile, typical (and with cuda_graph, graphed last) for one grid point, all from one seed."""
    contenders = [scratch_contender(config, batches),
                  torch_contender(config, "torch", batches.cycle(), batches.epoch)]
    if compile_too:
        mode = "reduce-overhead" if cuda_graph else "default"
        contenders.append(torch_contender(config, "compile", batches.cycle(), batches.epoch, compiled=mode))
    else:
        contenders.append(skipped("compile", "skipped (--no-compile)"))
    if typical is not None:
        contenders.append(torch_contender(config, "typical", typical.endless(config.batch_size),
                                          lambda: typical.epoch(config.batch_size)))
    else:
        contenders.append(skipped("typical", typical_reason))
    if cuda_graph:
        contenders.append(graphed_contender(config, batches))
    return contenders


# ---------------------------------------------------------------- the typical pipeline


class TypicalPipeline:
    """What a first PyTorch MNIST script does: torchvision's dataset, transforms per image, a DataLoader.

    Every batch is decoded image by image (PIL image -> ToTensor -> Normalize), collated, then
    flattened and moved to the device, all inside the timed step.
    """

    def __init__(self, config: Config, workdir: Path, mean: float, std: float, images: int) -> None:
        # Imported here, not at the top: torchvision takes a second or two to import, and only this
        # contender needs it (bench --no-typical, and --show, run without it).
        import torchvision
        from torchvision import transforms

        dataset_class = getattr(torchvision.datasets, DATASETS[config.dataset].torchvision_folder)
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
        dataset = dataset_class(str(torchvision_root(config, workdir)), train=True, transform=transform)
        self.dataset = torch.utils.data.Subset(dataset, range(images)) if images < len(dataset) else dataset
        self.device, self.dtype = config.device, config.torch_dtype

    def epoch(self, batch_size: int) -> Iterator[Batch]:
        # num_workers=0, the default: the batches are made in this process, as in a first script.
        for images, labels in torch.utils.data.DataLoader(self.dataset, batch_size=batch_size, shuffle=True):
            x = images.view(len(images), -1).to(self.device, self.dtype)  # B,1,28,28 -> B,784
            yield x, labels.to(self.device)

    def endless(self, batch_size: int) -> Callable[[], Batch]:
        """Batches one after another, starting a new epoch when one ends."""
        iterator = self.epoch(batch_size)

        def next_batch() -> Batch:
            nonlocal iterator
            try:
                return next(iterator)
            except StopIteration:
                iterator = self.epoch(batch_size)
                return next(iterator)

        return next_batch


def torchvision_root(config: Config, workdir: Path) -> Path:
    """A copy of the dataset in torchvision's layout (<workdir>/MNIST/raw/, files uncompressed)."""
    raw = workdir / DATASETS[config.dataset].torchvision_folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for pair in find_files(config.dataset, config.data_root).values():
        for path in pair:
            data = path.read_bytes()
            plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            (raw / path.name.removesuffix(".gz")).write_bytes(plain)
    return workdir
