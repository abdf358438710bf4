"""`python -m compare bench`: is the hand-written network as fast as PyTorch's, and how close to the machine's limit?

    python -m compare bench                                   # the grid, float32, CPU (several minutes)
    python -m compare bench --quick                           # a smoke test, well under a minute
    python -m compare bench --device cuda --report bench-cuda.json
    python -m compare.bench bench-cuda.json                   # the tables of a saved report

For each model and batch size of the grid it times one training step (forward, backward,
update) and one epoch of four contenders:

    scratch   the hand-written network (scratch/), on batches already in memory
    torch     its twin (torch_impl/) in eager mode, with torch.optim.SGD's defaults
    compile   the same torch model under torch.compile (reported as unavailable where it fails)
    typical   the pipeline people write first: torchvision's MNIST with ToTensor/Normalize
              transforms and a DataLoader feeding the torch model, so a step includes loading

Method: each contender is warmed up, then timed in blocks of the same number of steps, and the
blocks of all contenders (and of one large matrix product, the machine's practical peak) are
interleaved, round after round, in one process: a burst of load from another program hits all of
them alike. Reported: the median over rounds, its spread (half the interquartile range, relative),
and the ratio scratch/torch as the median of each round's paired ratio. Absolute times drift on
shared machines; the ratios are the headline figures.

scratch and torch start from the same seed (bit-identical parameters) and train on the same
batches in the same order, so their losses must agree on every benchmarked step:
`agreement.passed` says they did (float64: every step within LOCKSTEP_LOSS_FLOAT64; float32:
the first step within FIRST_STEP_LOSS_FLOAT32, after which rounding differences grow).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from compare import agreement
from compare.config import Config
from compare.flops import elementwise_share, matmul_probe, step_flops, synchronize
from compare.learners import build_scratch, build_torch
from compare.report import table

GRID_MODELS: tuple[tuple[int, ...], ...] = ((16, 16), (128,), (512, 512))  # hidden sizes; the lesson's first
GRID_BATCH_SIZES: tuple[int, ...] = (32, 128, 512)
QUICK_MODELS: tuple[tuple[int, ...], ...] = ((16, 16),)
QUICK_BATCH_SIZES: tuple[int, ...] = (32, 512)
CONTENDERS = ("scratch", "torch", "compile", "typical")
CONFIG_KEYS = ("models", "batch_sizes", "quick", "repeats", "threads", "compile", "typical", "epoch_images",
               "block_seconds")
NEEDS_DATA = False  # loads MNIST itself; --quick falls back to random images when the files are missing
TRAIN_IMAGES = 60000


def add_arguments(p: argparse.ArgumentParser) -> None:
    from compare.cli import hidden_sizes

    p.add_argument("--models", type=hidden_sizes, nargs="+", default=None, metavar="HIDDEN",
                   help="hidden sizes of each model of the grid, e.g. 16,16 128 512,512; bench uses these and "
                        "--batch-sizes, not --hidden and --batch-size (default: 16,16 128 512,512; "
                        "with --quick: 16,16)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, metavar="B",
                   help="batch sizes of the grid (default: 32 128 512; with --quick: 32 512)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test in well under a minute: small grid, 3 rounds, a tenth of an epoch, no "
                        "torch.compile; random images if the MNIST files are missing (default: off)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds per grid point; medians are over these (default: 7; with --quick: 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads torch may use (default: 1 with --device cpu, because with several, timings "
                        "jump by orders of magnitude whenever another process takes a core; torch's own default, "
                        f"{torch.get_num_threads()} here, with --device cuda)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="time torch.compile too; compiling takes tens of seconds per grid point on a CPU "
                        "(default: on; with --quick: off)")
    p.add_argument("--typical", action=argparse.BooleanOptionalAction, default=True,
                   help="time the torchvision Dataset + DataLoader pipeline too (default: on)")
    p.add_argument("--epoch-images", type=int, default=None,
                   help=f"images in the timed epoch (default: all {TRAIN_IMAGES}; with --quick: 6000)")
    p.add_argument("--block-seconds", type=float, default=None,
                   help="about how long one timed block of torch steps lasts (default: 0.2; with --quick: 0.05)")


def resolve_options(config: Config) -> dict:
    """The bench options with the defaults that depend on --quick filled in."""
    from compare.cli import UsageError

    o = dict(config.extra)
    quick = o["quick"]
    defaults = dict(models=QUICK_MODELS if quick else GRID_MODELS,
                    batch_sizes=QUICK_BATCH_SIZES if quick else GRID_BATCH_SIZES, repeats=3 if quick else 7,
                    threads=1 if config.device == "cpu" else torch.get_num_threads(), compile=not quick,
                    epoch_images=6000 if quick else TRAIN_IMAGES, block_seconds=0.05 if quick else 0.2)
    o.update({key: value for key, value in defaults.items() if o[key] is None})
    o["models"], o["batch_sizes"] = [tuple(m) for m in o["models"]], list(o["batch_sizes"])
    if any(b < 1 for b in o["batch_sizes"]):
        raise UsageError(f"--batch-sizes must be positive, got {o['batch_sizes']}")
    if o["repeats"] < 1 or o["threads"] < 1 or o["block_seconds"] <= 0:
        raise UsageError("--repeats and --threads must be at least 1 and --block-seconds positive")
    if not 1 <= o["epoch_images"] <= TRAIN_IMAGES:
        raise UsageError(f"--epoch-images must be between 1 and {TRAIN_IMAGES}, got {o['epoch_images']}")
    return o


# ---------------------------------------------------------------- the contenders


Batch = tuple[Tensor, Tensor]


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


def scratch_step(learner) -> Callable[[Tensor, Tensor], Tensor]:
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


def make_batches(x: Tensor, y: Tensor, shuffled: tuple[Tensor, Tensor], batch_size: int, seed: int) -> Batches:
    if batch_size > len(x):
        from compare.cli import UsageError

        raise UsageError(f"batch size {batch_size} is larger than the {len(x)} images of --epoch-images")
    return Batches(x, y, shuffled, batch_size, seed)


def tensor_bytes(tensors: Iterator[Tensor | None]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def scratch_contender(config: Config, batches: Batches) -> Contender:
    s = build_scratch(config)
    return Contender("scratch", scratch_step(s), batches.cycle(), batches.epoch,
                     lambda: tensor_bytes(iter(s.model.parameters() + s.model.gradients())))


def torch_contender(config: Config, name: str, next_batch: Callable[[], Batch],
                    epoch_batches: Callable[[], Iterator[Batch]], compiled: bool = False) -> Contender:
    t = build_torch(config)
    model = torch.compile(t.model) if compiled else t.model
    # Plain torch.optim.SGD as users write it: torch picks its fastest variant (foreach on CUDA).
    optimizer = torch.optim.SGD(t.model.parameters(), lr=config.lr)
    params = list(t.model.parameters())
    return Contender(name, torch_step(model, t.loss_fn, optimizer), next_batch, epoch_batches,
                     lambda: tensor_bytes(iter(params + [p.grad for p in params])),
                     drop_gradients=optimizer.zero_grad)


def make_contenders(config: Config, options: dict, batches: Batches, typical: TypicalPipeline | None,
                    typical_reason: str) -> list[Contender]:
    """scratch, torch, compile and typical for one grid point, all from the same seed."""
    contenders = [scratch_contender(config, batches),
                  torch_contender(config, "torch", batches.cycle(), batches.epoch)]
    if options["compile"]:
        contenders.append(torch_contender(config, "compile", batches.cycle(), batches.epoch, compiled=True))
    else:
        contenders.append(skipped("compile", "skipped (--no-compile)"))
    if typical is not None:
        contenders.append(torch_contender(config, "typical", typical.endless(config.batch_size),
                                          lambda: typical.epoch(config.batch_size)))
    else:
        contenders.append(skipped("typical", typical_reason))
    return contenders


# ---------------------------------------------------------------- the typical pipeline


class TypicalPipeline:
    """What a first PyTorch MNIST script does: torchvision's dataset, transforms per image, a DataLoader.

    Every batch is decoded image by image (PIL image -> ToTensor -> Normalize), collated, then
    flattened and moved to the device, all inside the timed step.
    """

    def __init__(self, config: Config, workdir: Path, mean: float, std: float, images: int) -> None:
        import torchvision
        from torchvision import transforms

        from compare.data import DATASETS

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
    from compare.data import DATASETS, find_files

    raw = workdir / DATASETS[config.dataset].torchvision_folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for pair in find_files(config.dataset, config.data_root).values():
        for path in pair:
            data = path.read_bytes()
            plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            (raw / path.name.removesuffix(".gz")).write_bytes(plain)
    return workdir


# ---------------------------------------------------------------- measuring


WARMUP_STEPS = 5


def timed(device: torch.device, work: Callable[[], None]) -> float:
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def warm_up(contender: Contender, device: torch.device, odd_batch: Batch | None) -> float:
    """A few steps (allocations, kernel choice, compilation); returns the seconds per step of the last ones.

    A contender that raises here (torch.compile without a working C++ compiler, say) is marked
    unavailable with the reason, instead of ending the whole benchmark.
    """
    try:
        contender.first_step_s = timed(device, lambda: contender.run(1))  # includes compilation for "compile"
        if odd_batch is not None and contender.name == "compile":
            # The epoch ends on a smaller batch: compile for that shape now, not inside the timed epoch.
            contender.train_step(*odd_batch)
        return timed(device, lambda: contender.run(WARMUP_STEPS)) / WARMUP_STEPS
    except Exception as error:  # noqa: BLE001 - an optional contender's failure is reported, not raised
        if contender.name in ("scratch", "torch"):
            raise  # the two being compared must run; their failure is a bug to see, not a table cell
        reason = (str(error).strip().splitlines() or [""])[0][:160]
        contender.unavailable = f"unavailable: {type(error).__name__}: {reason}"
        return math.nan


def peak_memory(contender: Contender, device: torch.device) -> int:
    """Peak bytes of tensor memory over two training steps: what the contender holds between steps,
    plus the most it allocates on top of that during them (activations, caches, gradients, temporaries).

    On the GPU from torch.cuda.max_memory_allocated; on the CPU from the allocation and free events
    of torch's profiler (profile_memory=True), which sees every tensor torch allocates, not Python
    objects. Pass a freshly built scratch contender, so the activations scratch caches from one step
    to the next are counted; torch holds only its parameters once zero_grad() has freed the gradients.
    """
    if contender.drop_gradients is not None:
        contender.drop_gradients()
    held = contender.held_bytes()
    batch = contender.next_batch()
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):
            contender.train_step(*batch)
        synchronize(device)
        return held + torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(2):
            contender.train_step(*batch)
    return held + peak_of_allocations(prof)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: the profiler's C++ library logs "profiler_start/stop" lines there
    on every use, whatever its log level, which would bury the tables."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_of_allocations(prof) -> int:
    """The largest running total of allocated minus freed bytes over a profile's events, in time order."""
    from torch._C._profiler import _EventType

    def walk(nodes):
        for node in nodes:
            yield node
            yield from walk(node.children)

    events = [e for e in walk(prof.profiler.kineto_results.experimental_event_tree())
              if e.tag == _EventType.Allocation]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_time_ns):
        running += event.extra_fields.alloc_size  # negative for a free
        peak = max(peak, running)
    return peak


def median_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """The median, and half the interquartile range relative to it (0.05 means about +-5%)."""
    if len(values) < 2:
        return values[0], 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    middle = statistics.median(values)
    return middle, (q3 - q1) / 2 / middle


def loss_agreement(scratch_losses: list[Tensor], torch_losses: list[Tensor], dtype: str) -> dict:
    """Did scratch and torch, fed the same batches from the same start, report the same losses?"""
    if not scratch_losses or len(scratch_losses) != len(torch_losses):
        return dict(passed=False, steps=len(scratch_losses), check="scratch and torch ran different step counts")
    s = torch.stack([v.detach() for v in scratch_losses]).double().cpu()
    t = torch.stack([v.detach() for v in torch_losses]).double().cpu()
    rel = (s - t).abs() / t.abs().clamp_min(agreement.TINY)
    finite = bool(torch.isfinite(s).all() and torch.isfinite(t).all())
    if dtype == "float64":
        limit, judged = agreement.LOCKSTEP_LOSS_FLOAT64, rel.max().item()
        check = f"every step's loss within {limit:g} relative"
    else:
        limit, judged = agreement.FIRST_STEP_LOSS_FLOAT32, rel[0].item()
        check = f"first step's loss within {limit:g} relative (float32 rounding grows afterwards)"
    return dict(passed=finite and judged <= limit, check=check, steps=len(s), first_step_rel_diff=rel[0].item(),
                max_step_rel_diff=rel.max().item(), first_loss_scratch=s[0].item(), first_loss_torch=t[0].item())


def interleaved_epochs(contenders: list[Contender], steps: dict[str, int], device: torch.device) -> dict[str, float]:
    """Seconds for one epoch of each contender, the epochs cut into blocks and interleaved like the
    step timings, so that a burst of load from elsewhere does not land on one contender's epoch."""
    epochs = {c.name: c.epoch_batches() for c in contenders}
    seconds = dict.fromkeys(epochs, 0.0)
    left = list(contenders)
    while left:
        for c in list(left):
            synchronize(device)
            start = time.perf_counter()
            more = c.run_from(epochs[c.name], steps[c.name])
            synchronize(device)
            seconds[c.name] += time.perf_counter() - start
            if not more:
                left.remove(c)
    return seconds


def measure_point(config: Config, options: dict, batches: Batches, typical: TypicalPipeline | None,
                  typical_reason: str) -> dict:
    """Warm up, time interleaved blocks, time an epoch, measure memory: one grid point's result."""
    device = torch.device(config.device)
    b = config.batch_size
    sizes = [batches.x.shape[1], *config.hidden, 10]
    contenders = make_contenders(config, options, batches, typical, typical_reason)
    remainder = len(batches.x) % b
    odd_batch = (batches.shuffled[0][:remainder], batches.shuffled[1][:remainder]) if remainder else None
    per_step = {c.name: warm_up(c, device, odd_batch) for c in contenders if c.unavailable is None}
    running = [c for c in contenders if c.unavailable is None]
    probe, probe_flops = matmul_probe(config.torch_dtype, device)
    probe()
    # scratch, torch and compile run the same number of steps per block, which keeps scratch and torch
    # in lockstep; "typical" (mostly data loading) gets its own, or its blocks would dwarf the others.
    steps = {c.name: max(1, round(options["block_seconds"] / per_step["typical" if c.name == "typical" else "torch"]))
             for c in running}
    seconds: dict[str, list[float]] = {name: [] for name in [*(c.name for c in running), "matmul"]}
    entries: list[Contender | None] = [*running, None]  # None stands for the matrix-product probe
    for r in range(options["repeats"]):
        for entry in entries[r % len(entries):] + entries[:r % len(entries)]:  # rotate who goes first
            if entry is None:
                seconds["matmul"].append(timed(device, probe))
            else:
                seconds[entry.name].append(timed(device, lambda: entry.run(steps[entry.name])) / steps[entry.name])
    epoch_s = interleaved_epochs(running, steps, device)

    flops = step_flops(sizes, b)
    probe_s, _ = median_and_spread(seconds["matmul"])
    peak_gflops = probe_flops / probe_s / 1e9
    ratios = [s / t for s, t in zip(seconds["scratch"], seconds["torch"])]
    ratio, ratio_spread = median_and_spread(ratios)
    result = dict(model="-".join(map(str, sizes)), hidden=list(config.hidden), batch_size=b, dtype=config.dtype,
                  device=config.device, threads=torch.get_num_threads(), steps_per_block=steps["torch"],
                  flops_per_step=flops, elementwise_share=elementwise_share(sizes, b),
                  matmul_gflops=peak_gflops, ratio=ratio, ratio_spread=ratio_spread)
    details = {}
    for c in contenders:
        if c.unavailable is not None:
            details[c.name] = dict(status=c.unavailable)
            result.update({f"{c.name}_step_s": None, f"{c.name}_peak_fraction": None})
            continue
        step_s, spread = median_and_spread(seconds[c.name])
        fresh = scratch_contender(config, batches) if c.name == "scratch" else c
        details[c.name] = dict(status="ok", step_s=step_s, step_spread=spread, step_s_rounds=seconds[c.name],
                               first_step_s=c.first_step_s, epoch_s=epoch_s[c.name], epoch_images=len(batches.x),
                               gflops=flops / step_s / 1e9, peak_fraction=flops / step_s / 1e9 / peak_gflops,
                               peak_memory_bytes=peak_memory(fresh, device))
        result.update({f"{c.name}_step_s": step_s, f"{c.name}_peak_fraction": details[c.name]["peak_fraction"]})
    result["contenders"] = details
    result["agreement"] = loss_agreement(contenders[0].losses, contenders[1].losses, config.dtype)
    return result


# ---------------------------------------------------------------- the command


def load_images(config: Config, options: dict) -> tuple[Tensor, Tensor, float | None, float | None, str | None]:
    """The first --epoch-images training images and labels, their pixel mean and std, and a note
    when random images stand in for missing files (--quick only)."""
    from compare.data import DataError, load_dataset

    n = options["epoch_images"]
    try:
        data = load_dataset(config.dataset, config.data_root, dtype=config.torch_dtype, device=config.device,
                            download=False)
        return data.x_train[:n], data.y_train[:n], data.mean, data.std, None  # fewer if the files hold fewer
    except DataError as error:
        if not options["quick"]:
            raise DataError(f"{error} (bench --quick runs on random images when the files are missing)") from None
        generator = torch.Generator().manual_seed(config.seed)
        x = torch.randn(n, 784, generator=generator).to(config.device, config.torch_dtype)
        y = torch.randint(0, 10, (n,), generator=generator).to(config.device)
        return x, y, None, None, f"random images: no {config.dataset} files under {config.data_root}"


def machine_description(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = dict(cpu=cpu, cpu_count=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
                python=platform.python_version())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def goals(results: list[dict]) -> dict:
    """The issue's speed goals, judged on this run's figures (reported, never asserted by tests)."""
    def find(model: str, batch: int) -> dict | None:
        return next((r for r in results if r["model"] == model and r["batch_size"] == batch), None)

    worst = max(results, key=lambda r: r["ratio"])
    lesson, big = find("784-16-16-10", 32), find("784-512-512-10", 512)
    return {
        "scratch step at most torch eager's at every grid point (ratio <= 1.0)": dict(
            met=worst["ratio"] <= 1.0, figure=f"worst ratio {worst['ratio']:.3f} at {worst['model']} batch "
                                              f"{worst['batch_size']}"),
        "784-16-16-10 batch 32: ratio <= 0.5": None if lesson is None else dict(
            met=lesson["ratio"] <= 0.5, figure=f"ratio {lesson['ratio']:.3f}"),
        "784-512-512-10 batch 512: scratch >= 75% of the matmul peak": None if big is None else dict(
            met=big["scratch_peak_fraction"] >= 0.75, figure=f"{big['scratch_peak_fraction']:.0%} of peak"),
    }


def fmt_time(seconds: float | None, spread: float | None = None) -> str:
    if seconds is None:
        return "-"
    text = f"{seconds * 1e3:.3g}" if seconds < 10 else f"{seconds * 1e3:.0f}"
    return text if spread is None else f"{text} ±{spread:.0%}"


def print_tables(results: list[dict], device: str) -> None:
    def cell(r: dict, name: str, key: str) -> str:
        c = r["contenders"][name]
        if c["status"] != "ok":
            return "n/a"
        if key == "step":
            return fmt_time(c["step_s"], c["step_spread"])
        if key == "epoch":
            return f"{c['epoch_s']:.2f}"
        if key == "peak":
            return f"{c['peak_fraction']:.1%}"
        return f"{c['peak_memory_bytes'] / 2**20:.2f}"

    print(f"\nStep time, ms (median ±half the interquartile range), ratio scratch/torch, fraction of the "
          f"matmul peak ({device}):")
    print(table(["model", "batch", "scratch", "torch", "ratio", "compile", "typical", "peak GFLOP/s",
                 "scratch %peak", "torch %peak", "compile %peak"],
                [[r["model"], r["batch_size"], cell(r, "scratch", "step"), cell(r, "torch", "step"),
                  f"{r['ratio']:.2f} ±{r['ratio_spread']:.0%}", cell(r, "compile", "step"), cell(r, "typical", "step"),
                  f"{r['matmul_gflops']:.1f}", cell(r, "scratch", "peak"), cell(r, "torch", "peak"),
                  cell(r, "compile", "peak")] for r in results], style="markdown"))
    images = results[0]["contenders"]["scratch"]["epoch_images"]
    print(f"\nOne epoch ({images} images), seconds; peak tensor memory of a training step, MiB:")
    print(table(["model", "batch", *[f"{n} epoch" for n in CONTENDERS], *[f"{n} MiB" for n in CONTENDERS]],
                [[r["model"], r["batch_size"], *[cell(r, n, "epoch") for n in CONTENDERS],
                  *[cell(r, n, "memory") for n in CONTENDERS]] for r in results], style="markdown"))
    notes = {f"{n}: {c['status']}" for r in results for n, c in r["contenders"].items() if c["status"] != "ok"}
    for note in sorted(notes):
        print(f"  n/a = {note}")


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch.set_num_threads(count) inside the block, and the count torch had before after it, also on
    an error: a run inside a test or a notebook must not leave the rest of that process on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(config: Config, data) -> dict:
    options = resolve_options(config)
    config.extra.update(options)  # the report's config then shows the grid actually run
    with torch_threads(options["threads"]):
        return run_grid(config, options)


def run_grid(config: Config, options: dict) -> dict:
    device = torch.device(config.device)
    x, y, mean, std, data_note = load_images(config, options)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(config.seed)).to(x.device)
    shuffled = (x[order], y[order])
    machine = machine_description(device)
    print(f"Benchmark on {machine.get('gpu', machine['cpu'])} ({config.device}), {machine['threads']} torch "
          f"thread(s) of {machine['cpu_count']} CPUs, torch {machine['torch']}, {config.dtype}; "
          f"{options['repeats']} interleaved rounds per grid point")
    if data_note:
        print(f"Data: {data_note}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-torchvision-") as workdir:
        typical, typical_reason = None, data_note or "skipped (--no-typical)"
        if options["typical"] and data_note is None:
            typical = TypicalPipeline(config, Path(workdir), mean, std, len(x))
        for hidden in options["models"]:
            for batch_size in options["batch_sizes"]:
                point = dataclasses.replace(config, hidden=hidden, batch_size=batch_size)
                result = measure_point(point, options, make_batches(x, y, shuffled, batch_size, config.seed), typical,
                                       typical_reason)
                results.append(result)
                scratch_c, torch_c = result["contenders"]["scratch"], result["contenders"]["torch"]
                print(f"  {result['model']:>16} batch {batch_size:>4}: scratch {fmt_time(scratch_c['step_s'])} ms, "
                      f"torch {fmt_time(torch_c['step_s'])} ms, ratio {result['ratio']:.2f}, scratch at "
                      f"{scratch_c['peak_fraction']:.0%} of {result['matmul_gflops']:.0f} GFLOP/s", flush=True)
    print_tables(results, config.device)
    goal_figures = goals(results)
    print("\nGoals (benchmark figures, not pass/fail checks):")
    for name, g in goal_figures.items():
        print(f"  [{'n/a ' if g is None else 'met ' if g['met'] else 'MISS'}] {name}"
              + ("" if g is None else f": {g['figure']}"))
    failed = [f"{r['model']} batch {r['batch_size']}" for r in results if not r["agreement"]["passed"]]
    passed = not failed
    print(f"\nAgreement: scratch and torch losses on the benchmarked steps: "
          f"{'PASSED' if passed else 'FAILED at ' + ', '.join(failed)} "
          f"({results[0]['agreement']['check']})")
    return dict(machine=machine, data=data_note or f"{config.dataset} training images",
                matmul_peak_gflops=max(r["matmul_gflops"] for r in results),
                results=results, goals=goal_figures,
                agreement=dict(passed=passed, check=results[0]["agreement"]["check"],
                               points=[dict(model=r["model"], batch_size=r["batch_size"], **r["agreement"])
                                       for r in results]))


if __name__ == "__main__":
    # python -m compare.bench REPORT.json: the tables of a saved report (one from a GPU machine, say).
    import json

    saved = json.loads(Path(sys.argv[1]).read_text())
    machine = saved["machine"]
    print(f"{machine.get('gpu', machine['cpu'])}, {machine['threads']} torch thread(s), torch {machine['torch']}, "
          f"{saved['config']['dtype']}")
    print_tables(saved["results"], saved["config"]["device"])
