"""`python -m compare bench`: is the hand-written network as fast as PyTorch's, and how close to the machine's limit?

    python -m compare bench                                   # every family's bench models, float32, CPU
    python -m compare bench --quick                           # a smoke test: each family's first model, batch 32
    python -m compare bench --device cuda --report bench-cuda.json
    python -m compare bench --device cuda --cuda-graph            # + scratch's step as one CUDA graph
    python -m compare bench --show bench-cuda.json            # the tables of a saved report
    python -m compare bench --autograd-modes                  # what jvp and hvp cost, against forward and gradient

For each model and batch size of the grid it times one training step (forward, backward,
update) and one epoch of four contenders: scratch, torch eager, torch.compile and a typical
torchvision DataLoader pipeline. Reported: the median over interleaved rounds, its spread, the
ratio scratch/torch (the headline figure: absolute times drift on shared machines), the
fraction of the machine's matrix-product peak, GFLOP/s and GB/s (the bytes a step must at least
move) with a plausibility gate against the peak and the copy bandwidth measured in the same run,
the peak tensor memory, and whether scratch and torch computed the same losses on every
benchmarked step. Exit status 0 when they did and every figure was plausible.

    contenders.py   the four contenders: their training steps and batches; the model of a grid point
    timing.py       warm-up, interleaved timed blocks, medians and spreads, the matrix-product peak
    memory.py       peak tensor memory of a step (bench's one use of a private torch API, with a fallback)
    point.py        one grid point measured: the result the report holds
    tables.py       the printed tables, and the viewer of a saved report (--show)
    modes.py        --autograd-modes: forward mode and Hessian-vector products, engine and torch.func
    __init__.py     this command: its options, the grid, the report
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from compare import models
from compare.base.errors import UsageError
from compare.commands.bench import modes, tables
from compare.commands.bench.contenders import TypicalPipeline, make_batches
from compare.commands.bench.point import measure_point
from compare.commands.bench.timing import torch_threads
from compare.data.mnist import DataError, load_dataset
from compare.models import ModelSpec
from compare.options.command import Command
from compare.options.groups import DATA, DEVICE, DTYPE, REPORT, SEED
from compare.training import graphed
from compare.training.config import Config

TRAIN_IMAGES = 60000


@dataclass(frozen=True)
class Preset:
    """What the run options left unset become: the full benchmark, or --quick's smoke test."""

    batch_sizes: tuple[int, ...]  # every model of the grid at each of these
    repeats: int  # interleaved timed rounds per grid point
    compile: bool  # whether torch.compile is timed (tens of seconds of compiling per grid point on a CPU)
    epoch_images: int  # images in the timed epoch
    block_seconds: float  # about how long one timed block of torch steps lasts


FULL = Preset(batch_sizes=(32, 128, 512), repeats=7, compile=True, epoch_images=TRAIN_IMAGES, block_seconds=0.2)
# A smoke test that every family's step runs in every contender but the compiled one, not a measurement:
# one small batch size, few short rounds, and an epoch of a few dozen batches that ends on a smaller one
# (as an epoch at batch 128 or 512 does), so that path runs too.
QUICK = Preset(batch_sizes=(32,), repeats=3, compile=False, epoch_images=1000, block_seconds=0.05)
CONFIG_KEYS = ("models", "batch_sizes", "quick", "repeats", "threads", "compile", "typical", "epoch_images",
               "block_seconds", "show", "autograd_modes", "cuda_graph")
NEEDS_DATA = False  # loads MNIST itself; --quick falls back to random images when the files are missing


def grid_models(quick: bool) -> list[ModelSpec]:
    """Every family's benchmark models (compare/models/: Family.bench_specs); with --quick, each family's first."""
    specs = []
    for family in models.FAMILIES.values():
        chosen = family.bench_specs[:1] if quick else family.bench_specs
        specs += [models.make_spec(family.name, **overrides) for overrides in chosen]
    return specs


def model_spec(text: str) -> ModelSpec:
    try:
        return models.parse_spec(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def words(values: object) -> str:
    """Option values as a command line spells them: `32 128 512`, `on`, `0.05`."""
    if isinstance(values, bool):
        return "on" if values else "off"
    if isinstance(values, (list, tuple)):
        return " ".join(models.spec_text(v) if isinstance(v, ModelSpec) else str(v) for v in values)
    return f"{values:g}" if isinstance(values, float) else str(values)


def add_arguments(p: argparse.ArgumentParser) -> None:
    def defaults(key: str) -> str:
        full, quick = (grid_models(q) if key == "models" else getattr(QUICK if q else FULL, key) for q in (False, True))
        return f"(default: {words(full)}; with --quick: {words(quick)})"

    p.add_argument("--models", type=model_spec, nargs="+", default=None, metavar="MODEL",
                   help="the grid's models, each a family's name with option values, e.g. mlp:hidden=512,512; by "
                        f"default every family's bench models, with --quick each family's first {defaults('models')}")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, metavar="B",
                   help=f"batch sizes of the grid {defaults('batch_sizes')}")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test, not a measurement, that each family's training step runs in scratch, "
                        "torch and the typical pipeline: each family's first bench model at batch "
                        f"{words(QUICK.batch_sizes)}, "
                        f"{QUICK.repeats} rounds of {QUICK.block_seconds:g} s blocks, an epoch of {QUICK.epoch_images} "
                        "images, no torch.compile; random images if the MNIST files are missing (default: off)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"timed rounds per grid point; medians are over these {defaults('repeats')}")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads torch may use during the run (default: 1 with --device cpu, because with "
                        "several, timings jump by orders of magnitude whenever another process takes a core; "
                        f"torch's own default, {torch.get_num_threads()} here, with --device cuda)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="time torch.compile too; compiling takes tens of seconds per grid point on a CPU "
                        f"{defaults('compile')}")
    p.add_argument("--typical", action=argparse.BooleanOptionalAction, default=None,
                   help="time the torchvision Dataset + DataLoader pipeline too (default: on)")
    p.add_argument("--epoch-images", type=int, default=None,
                   help=f"images in the timed epoch, the first of the training set (at most {TRAIN_IMAGES}) "
                        f"{defaults('epoch_images')}")
    p.add_argument("--block-seconds", type=float, default=None,
                   help=f"about how long one timed block of torch steps lasts {defaults('block_seconds')}")
    p.add_argument("--autograd-modes", action="store_true",
                   help="instead of the training step: what forward mode (jvp) and a Hessian-vector product (hvp) "
                        "cost against a forward pass and a gradient, engine and torch.func, for --models (default: "
                        "each family's default network) at the first of --batch-sizes (default: off)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="with --device cuda: also time scratch's step captured once as a CUDA graph and replayed "
                        "(contender \"graphed\", whose losses must equal scratch's bit for bit), and torch.compile "
                        "in mode reduce-overhead; refused with the reason where a step cannot be captured "
                        "(default: off)")
    p.add_argument("--show", default=None, metavar="REPORT",
                   help="print the tables of a saved bench report (a --report JSON) instead of running; exit "
                        "status 0 when that run's agreement and plausibility passed, 1 when not (default: run the "
                        "benchmark)")


def resolve_options(config: Config) -> dict:
    """The bench options with the defaults that depend on --quick filled in."""
    o = {key: value for key, value in config.extra.items() if key != "show"}
    o.setdefault("cuda_graph", False)
    quick = o["quick"]
    # --autograd-modes: each family's default network (the lesson's MLP, LeNet-5, ...), not the step grid's models
    chosen = [models.make_spec(name) for name in models.FAMILIES] if o["autograd_modes"] else grid_models(quick)
    defaults = dict(models=chosen, threads=1 if config.device == "cpu" else torch.get_num_threads(),
                    typical=True, **dataclasses.asdict(QUICK if quick else FULL))
    o.update({key: value for key, value in defaults.items() if o[key] is None})
    o["batch_sizes"] = list(o["batch_sizes"])
    if any(b < 1 for b in o["batch_sizes"]):
        raise UsageError(f"--batch-sizes must be positive, got {o['batch_sizes']}")
    if o["repeats"] < 1 or o["threads"] < 1 or o["block_seconds"] <= 0:
        raise UsageError("--repeats and --threads must be at least 1 and --block-seconds positive")
    if not 1 <= o["epoch_images"] <= TRAIN_IMAGES:
        raise UsageError(f"--epoch-images must be between 1 and {TRAIN_IMAGES}, got {o['epoch_images']}")
    return o


def run(config: Config, data: None) -> dict:
    """The benchmark over the grid (or, with --show, a saved report's tables); the report's fields."""
    if config.extra.get("show") is not None:
        return show_saved(config)
    config.extra.pop("show", None)  # a run's report records the grid it ran, not the viewer's option
    options = resolve_options(config)
    if options["cuda_graph"]:
        if options["autograd_modes"]:
            raise UsageError("--cuda-graph times the training step; --autograd-modes times jvp and hvp: use one")
        for spec in options["models"]:  # bench trains with plain SGD and the hand-written backward
            graphed.check(dataclasses.replace(config, model=spec, optimizer="sgd", engine="hand"))
    config.extra.update(options, models=[models.spec_text(spec) for spec in options["models"]])  # the grid run
    with torch_threads(options["threads"]):
        return run_modes(config, options) if options["autograd_modes"] else run_grid(config, options)


def run_modes(config: Config, options: dict) -> dict:
    """--autograd-modes: each model's four timings on both sides, and whether the two sides agree."""
    x, y, _, _, data_note = load_images(config, options)
    batch = options["batch_sizes"][0]
    machine = machine_description(torch.device(config.device))
    print(f"Autograd modes on {machine.get('gpu', machine['cpu'])} ({config.device}), {machine['threads']} torch "
          f"thread(s), torch {machine['torch']}, {config.dtype}; one batch of {batch}; {options['repeats']} "
          "interleaved rounds" + (f"; data: {data_note}" if data_note else ""))
    results = []
    for spec in options["models"]:
        point = dataclasses.replace(config, model=spec, batch_size=batch)
        result = modes.measure_model(point, x[:batch], y[:batch], options["repeats"], options["block_seconds"])
        results.append(dict(model=models.spec_text(point.model), **result))
        print(f"  {results[-1]['model']}: measured", flush=True)
    modes.print_table(results)
    return dict(machine=machine, data=data_note or f"{config.dataset} training images", batch_size=batch,
                autograd_modes=results,
                agreement=dict(passed=all(r["agreement"]["passed"] for r in results),
                               points=[dict(model=r["model"], **r["agreement"]) for r in results]))


def show_saved(config: Config) -> dict:
    """`--show REPORT`: its tables; it takes no option that only a run uses."""
    given = [f"--{key.replace('_', '-')}" for key, value in config.extra.items()
             if key != "show" and value not in (None, False)]
    if config.report:
        given.append("--report")
    if given:
        raise UsageError(f"--show prints a saved report and takes no other bench option; got {', '.join(given)}")
    saved = tables.show(config.extra["show"])
    return dict(agreement=saved["agreement"], **({"plausibility": saved["plausibility"]} if "plausibility" in saved
                                                 else {}))


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
        for spec in options["models"]:
            for batch_size in options["batch_sizes"]:
                point = dataclasses.replace(config, model=spec, batch_size=batch_size)
                result = measure_point(point, options, make_batches(x, y, shuffled, batch_size, config.seed), typical,
                                       typical_reason)
                results.append(result)
                print(tables.progress_line(result), flush=True)
    check = results[0]["agreement"]["check"]
    implausible = [f"{r['model']} batch {r['batch_size']} {name}" for r in results
                   for name, c in r["contenders"].items() if c["status"].startswith("implausible")]
    report = dict(machine=machine, data=data_note or f"{config.dataset} training images",
                  matmul_peak_gflops=max(r["matmul_gflops"] for r in results),
                  results=results, targets=targets(results),
                  agreement=dict(passed=all(r["agreement"]["passed"] for r in results), check=check,
                                 points=[dict(model=r["model"], batch_size=r["batch_size"], **r["agreement"])
                                         for r in results]),
                  plausibility=dict(passed=not implausible, implausible=implausible))
    tables.print_tables(results, config.device)
    tables.print_conclusions(report)
    return report


def load_images(config: Config, options: dict) -> tuple[Tensor, Tensor, float | None, float | None, str | None]:
    """The first --epoch-images training images and labels, their pixel mean and std, and a note
    when random images stand in for missing files (--quick only)."""
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


def targets(results: list[dict]) -> dict:
    """The speed targets, judged on this run's figures (reported, never asserted by tests); None where
    the grid point a target names was not run."""
    def find(model: str, batch: int) -> dict | None:
        return next((r for r in results if r["model"] == model and r["batch_size"] == batch), None)

    measured = [r for r in results if r["ratio"] is not None]  # an implausible point has no ratio
    worst = max(measured, key=lambda r: r["ratio"]) if measured else None
    lesson, big = find("784-16-16-10", 32), find("784-512-512-10", 512)
    lesson = lesson if lesson is not None and lesson["ratio"] is not None else None
    big = big if big is not None and big["scratch_peak_fraction"] is not None else None
    with_graphed = any("graphed" in r.get("contenders", {}) for r in results)  # bench --cuda-graph
    graphed = {"graphed scratch ahead of torch.compile reduce-overhead at every grid point":
               graphed_target(results) if with_graphed else None}
    return {
        "scratch/torch <= 1.0 at every grid point": None if worst is None else dict(
            met=worst["ratio"] <= 1.0 and len(measured) == len(results),
            figure=f"worst ratio {worst['ratio']:.3f} at {worst['model']} batch {worst['batch_size']}"
                   + ("" if len(measured) == len(results) else f"; {len(results) - len(measured)} points implausible")),
        "784-16-16-10 batch 32: scratch/torch <= 0.5": None if lesson is None else dict(
            met=lesson["ratio"] <= 0.5, figure=f"ratio {lesson['ratio']:.3f}"),
        "784-512-512-10 batch 512: scratch >= 75% of the matmul peak": None if big is None else dict(
            met=big["scratch_peak_fraction"] >= 0.75, figure=f"{big['scratch_peak_fraction']:.0%} of peak"),
        **(graphed if with_graphed else {}),
    }


def graphed_target(results: list[dict]) -> dict | None:
    """Whether the graphed scratch step beat torch.compile(mode="reduce-overhead") everywhere; None where either
    was not timed (a CPU run, or no --cuda-graph, or --no-compile)."""
    timed = [(r, r["contenders"].get("graphed", {}), r["contenders"]["compile"]) for r in results]
    if not timed or any(g.get("status") != "ok" or c["status"] != "ok" for _, g, c in timed):
        return None
    worst = max(timed, key=lambda t: t[1]["step_s"] / t[2]["step_s"])
    ratio = worst[1]["step_s"] / worst[2]["step_s"]
    return dict(met=all(g["step_s"] < c["step_s"] for _, g, c in timed),
                figure=f"worst graphed/compile {ratio:.3f} at {worst[0]['model']} batch {worst[0]['batch_size']}")


COMMAND = Command(
    name="bench",
    help="time a training step and an epoch: scratch vs torch eager, torch.compile, a DataLoader pipeline; "
         "fraction of the matmul peak; memory",
    run=run,
    # The grid's models and batch sizes come from --models and --batch-sizes; the optimizer is plain SGD.
    groups=(DATA, SEED, DTYPE, DEVICE, REPORT),
    add_arguments=add_arguments,
    config_keys=CONFIG_KEYS,
    needs_data=NEEDS_DATA,
)
