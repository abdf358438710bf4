"""`python -m compare playground`: a small TensorFlow Playground, where both networks learn a 2-D toy dataset.

    python -m compare playground                                   # spiral, 16,16 tanh: scratch vs torch
    python -m compare playground --dataset spiral --hidden 16,16 --activation tanh --plots pictures/
    python -m compare playground --dataset xor --hidden 4 --noise 0.2 --plots pictures/ --gif

The points (x1, x2) come from compare/data/toy.py, seeded by --seed: a training set of
--samples points and a test set of as many. Scratch and torch start from bit-identical
weights and train in lockstep in the one training loop (compare/training/loop.py), then the same
verdict as `train` (compare/train.py) says whether they agree. In float64, the default
here, that means every step's loss agrees to rounding error.

With --plots DIR (needs matplotlib) it draws what Playground draws: boundary.png (each
network's output over the plane, scratch beside torch, with the data), curves.png (loss
and accuracy curves, and the per-step difference), neurons.png (what every hidden neuron
computes on the plane) and, with --gif, boundary.gif (the boundary as it is learned).
Without --plots it prints the scratch network's decision regions as text. The same, live in the browser,
with every control of TensorFlow Playground: `python -m compare serve --playground-only` (compare/web/).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor

from compare import models
from compare.base import agreement
from compare.base.errors import UsageError
from compare.base.report import plural
from compare.data import toy
from compare.options.command import Command
from compare.options.groups import BATCH, DIVERGENCE, EPOCHS, LOSS, MODEL, OPTIMIZER, PLOTS, REGULARIZATION, RUN
from compare.pictures.canvas import INSTALL_HINT, require_matplotlib
from compare.pictures.curves import training_curves
from compare.pictures.playground import boundary_animation, decision_boundaries, hidden_neurons
from compare.training.config import Config
from compare.training.diagnostics import hidden_activations
from compare.training.learners import Learner, build_pair, parameter_mismatches
from compare.training.loop import EpochStats, evaluate, train_lockstep
from compare.training.metrics import accuracy
from compare.training.optimizers import describe_training
from compare.training.resync import ResyncMonitor
from compare.training.verdict import expected_drift, print_checks, verdict

# Tuned so that the default run learns the spiral smoothly: full-batch Adam from lr 0.03, cosine
# schedule. Measured for seeds 0-4: 99.2-99.8% training accuracy after 300 epochs (95% near epoch
# 100), float64 per-step losses within 4.2e-12 of each other. (Mini-batch SGD at lr 0.2 learns it
# too, but so chaotically that float64's last-bit differences grow to O(1) within 4000 steps: try
# --optimizer sgd --lr 0.2 --lr-schedule none --batch-size 16 --epochs 200 --plots DIR.)
DEFAULTS = dict(dataset="spiral", model=models.make_spec(hidden=(16, 16), activation="tanh"), epochs=300,
                batch_size=500, lr=0.03, optimizer="adam", lr_schedule="cosine", dtype="float64")
DEFAULT_SAMPLES = 500  # as Playground's 50% of 1000 points
DEFAULT_NOISE = 0.1
GRID = 80  # the plane is evaluated on GRID x GRID points for the pictures
GIF_FRAMES = 40  # about this many frames (plus the untrained start)
TEXT_COLUMNS, TEXT_ROWS = 60, 24  # the decision regions drawn as characters


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=toy.DATASETS, default=DEFAULTS['dataset'],
                   help=f"which 2-D toy dataset (default: {DEFAULTS['dataset']})")
    p.add_argument("--noise", type=float, default=DEFAULT_NOISE,
                   help=f"Playground's noise, 0 to {toy.MAX_NOISE} (its slider / 100) (default: {DEFAULT_NOISE})")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"training points; the test set has as many again (default: {DEFAULT_SAMPLES})")
    p.add_argument("--gif", action="store_true",
                   help="also write boundary.gif into the --plots DIR: the decision boundary as it changes "
                        "during training (default: off)")


def check(args: argparse.Namespace) -> None:
    """Before any work: the playground's own options, and what they need of the shared ones."""
    family = models.family_of(args.model_spec)
    if not family.any_input_size:
        takes = [name for name, f in models.FAMILIES.items() if f.any_input_size]
        raise UsageError(f"the playground's points have 2 coordinates, and --model {family.name} reads only "
                         f"{'x'.join(map(str, family.input_shape(args.model_spec, 784)))} images; choose --model "
                         f"{' or '.join(takes)}")
    if args.samples < 2:
        raise UsageError(f"--samples must be at least 2 (a point of each class), got {args.samples}")
    if not 0 <= args.noise <= toy.MAX_NOISE:
        raise UsageError(f"--noise must be between 0 and {toy.MAX_NOISE} (Playground's 0-50%), got {args.noise}")
    if args.gif and not args.plots:
        raise UsageError("--gif writes boundary.gif into the pictures folder: add --plots DIR")
    if args.model_spec.get("batch_norm") and args.samples % args.batch_size == 1:
        raise UsageError(f"--batch-size {args.batch_size} leaves a last batch of 1 of the {args.samples} training "
                         "points, and batch norm needs at least 2 per batch; choose another --batch-size")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run on one CPU thread: a 2-16-16-2 network is far too small to share out, and handing its
    tiny matrix products between threads costs more than the arithmetic (measured here: 2 threads
    made a step 10-50x slower on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def class1_probability(learner: Learner, points: Tensor, resolution: int) -> Tensor:
    """softmax(output)[class 1] at every grid point, as a [G, G] map (row 0 at the bottom)."""
    return learner.logits(points).softmax(dim=1)[:, 1].reshape(resolution, resolution)


def hidden_layers(learner: Learner, points: Tensor) -> list[Tensor]:
    """The output of every hidden layer's activation at `points`, in evaluation mode: [N, width] each."""
    return [h for _, _, h in hidden_activations(learner, points)]


def text_regions(learner: Learner, dtype: torch.dtype, device: str) -> str:
    """The plane as characters: '#' where the network says class 1 (blue), '.' for class 0 (orange)."""
    d = toy.DOMAIN
    cols = torch.linspace(-d, d, TEXT_COLUMNS, dtype=dtype, device=device)
    rows = torch.linspace(d, -d, TEXT_ROWS, dtype=dtype, device=device)  # top line is x2 = +6
    x2, x1 = torch.meshgrid(rows, cols, indexing="ij")
    with torch.no_grad():
        says = learner.logits(torch.stack([x1.flatten(), x2.flatten()], dim=1)).argmax(dim=1)
    grid = says.reshape(TEXT_ROWS, TEXT_COLUMNS).tolist()
    return "\n".join("  " + "".join("#" if c else "." for c in row) for row in grid)


def train_accuracy_of(learner: Learner, x: Tensor, y: Tensor) -> float:
    return accuracy(evaluate(learner, x, y)[1], y)


def toy_split(config: Config) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    samples, noise = config.extra["samples"], config.extra["noise"]
    tensors = toy.train_test_split(config.dataset, samples, noise, config.seed)
    x_train, y_train, x_test, y_test = tensors
    move = dict(device=config.device)
    return (x_train.to(dtype=config.torch_dtype, **move), y_train.to(**move),
            x_test.to(dtype=config.torch_dtype, **move), y_test.to(**move))


def run(config: Config, data: None = None) -> dict:
    folder = config.extra["plots"]
    if folder:
        require_matplotlib()
    x_train, y_train, x_test, y_test = toy_split(config)
    learners = build_pair(config, input_size=2, num_classes=len(toy.CLASSES))
    scratch_l, torch_l = learners
    mismatched = parameter_mismatches(scratch_l, torch_l)
    print(f"Playground: {config.dataset}, {len(x_train)} training and {len(x_test)} test points, "
          f"noise {config.extra['noise']:g}, seed {config.seed}")
    net = models.family_of(config.model).describe(config.model, 2, len(toy.CLASSES))
    print(f"Network {net}; {plural(config.epochs, 'epoch')}, batch {config.batch_size}, {describe_training(config)}, "
          f"{config.dtype} on {config.device}")
    print("Initial parameters: " + ("bit-identical" if not mismatched else f"DIFFERENT in {', '.join(mismatched)}"))

    grid = toy.plane_grid(GRID, config.torch_dtype, config.device)
    train_accuracy: dict[str, list[float]] = {learner.name: [] for learner in learners}
    every_frame = max(1, config.epochs // GIF_FRAMES)
    every_line = max(1, config.epochs // 10)
    frames: list[dict] = []

    def snapshot(epoch: int, stats: dict[str, EpochStats] | None) -> None:
        frames.append(dict(epoch=epoch, loss={n: s.train_loss for n, s in (stats or {}).items()},
                           probability={m.name: class1_probability(m, grid, GRID).cpu() for m in learners}))

    def on_epoch(epoch: int, stats: dict[str, EpochStats]) -> None:
        for learner in learners:
            train_accuracy[learner.name].append(train_accuracy_of(learner, x_train, y_train))
        if epoch % every_line == 0 or epoch == config.epochs:
            s, t = stats["scratch"], stats["torch"]
            print(f"{epoch:>7}  {s.train_loss:>13.6f}  {t.train_loss:>11.6f}  "
                  f"{train_accuracy['scratch'][-1]:>14.1%}  {train_accuracy['torch'][-1]:>12.1%}  "
                  f"{s.test_accuracy:>13.1%}  {t.test_accuracy:>11.1%}")
        if config.extra["gif"] and (epoch % every_frame == 0 or epoch == config.epochs):
            snapshot(epoch, stats)

    with one_thread():
        if config.extra["gif"]:
            snapshot(0, None)
        print(f"\n{'epoch':>7}  {'loss scratch':>13}  {'loss torch':>11}  {'train scratch':>14}  {'train torch':>12}  "
              f"{'test scratch':>13}  {'test torch':>11}")
        monitor = ResyncMonitor(scratch_l, torch_l, agreement.resync_tolerance(config.torch_dtype),
                                agreement.separation_threshold(config.torch_dtype), config.epochs)
        records = train_lockstep(learners, x_train, y_train, x_test, y_test, epochs=config.epochs,
                                 batch_size=config.batch_size, seed=config.seed, on_epoch=on_epoch,
                                 before_step=monitor, progress=False)
        accuracies = (f"training accuracy scratch {train_accuracy['scratch'][-1]:.1%}, torch "
                      f"{train_accuracy['torch'][-1]:.1%}; test accuracy scratch "
                      f"{records['scratch'].history[-1].test_accuracy:.1%}, torch "
                      f"{records['torch'].history[-1].test_accuracy:.1%}")
        result = verdict(config, records, not mismatched, monitor.summary(),
                         fail_on_divergence=config.extra["fail_on_divergence"], accuracies=accuracies)
        maps = {learner.name: hidden_layers(learner, grid) for learner in learners}
    hidden_diff = max(((a - b).abs().max().item() for a, b in zip(maps["scratch"], maps["torch"], strict=True)),
                      default=0.0)
    result["hidden_activation_max_diff"] = hidden_diff

    report: dict = {"data": dict(dataset=config.dataset, samples=len(x_train), test_samples=len(x_test),
                                 noise=config.extra["noise"])}
    for learner in learners:
        record = records[learner.name]
        history = [dict(h.to_dict(), train_accuracy=a)
                   for h, a in zip(record.history, train_accuracy[learner.name], strict=True)]
        report[learner.name] = dict(train_accuracy=train_accuracy[learner.name][-1],
                                    test_accuracy=record.history[-1].test_accuracy,
                                    history=history, step_losses=record.step_losses)

    print("\nScratch network's decision regions ('#' class 1, '.' class 0) on [-6, 6]^2:")
    print(text_regions(scratch_l, config.torch_dtype, config.device))
    drift = expected_drift(result, config.dtype)  # said beside each figure the drift or divergence explains
    print(f"\nLargest per-step loss difference: {result['max_step_loss_rel_diff']:.3e} relative over "
          f"{result['steps']} steps; hidden activations on the plane differ by at most {hidden_diff:.3e}"
          + (f": {drift}" if drift else ""))
    print(f"Identical test predictions: {result['prediction_agreement']:.2%} of {len(y_test)} points"
          + (" (expected, as above)" if drift and result["prediction_agreement"] < 1 else ""))

    if folder:
        paths = draw(folder, config, records, train_accuracy, maps, hidden_diff, frames,
                     x_train, y_train, learners, grid)
        print("Pictures written: " + ", ".join(str(p) for p in paths))
        report["plots"] = [str(p) for p in paths]
    else:
        print(f"(Add --plots DIR to draw the decision boundaries and hidden neurons; {INSTALL_HINT})")
    print_checks(result)  # the verdict and the three lines that end the output
    report["agreement"] = result
    return report


def draw(folder: str, config: Config, records: dict, train_accuracy: dict[str, list[float]],
         maps: dict[str, list[Tensor]], hidden_diff: float, frames: list[dict], x_train: Tensor, y_train: Tensor,
         learners: tuple[Learner, Learner], grid: Tensor) -> list:
    """The playground's pictures (compare/pictures/): boundaries, curves, hidden neurons and the GIF."""
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    net = models.family_of(config.model).describe(config.model, 2, len(toy.CLASSES))
    titles = {m.name: f"{m.name}: training accuracy {train_accuracy[m.name][-1]:.1%}, "
                      f"test {records[m.name].history[-1].test_accuracy:.1%}" for m in learners}
    probability = {m.name: class1_probability(m, grid, GRID) for m in learners}
    paths = [
        decision_boundaries(folder, probability, x_train, y_train, toy.DOMAIN, titles,
                            f"{config.dataset} after {config.epochs} epochs, {net}, {config.dtype}: "
                            "p(class 1) from orange (0) to blue (1), boundary p = 0.5 in black"),
        training_curves(
            folder, {n: r.step_losses for n, r in records.items()},
            {"training accuracy": train_accuracy,
             "test accuracy": {n: [h.test_accuracy for h in r.history] for n, r in records.items()}},
            dtype=config.dtype, steps_per_epoch=steps_per_epoch,
            loss_tolerance=agreement.LOCKSTEP_LOSS_FLOAT64 if config.dtype == "float64" else None,
            title=f"playground: {config.dataset}, {net}, batch {config.batch_size}, {describe_training(config)}, "
                  f"{config.dtype}"),
        hidden_neurons(folder, [m.reshape(GRID, GRID, -1) for m in maps["scratch"]], toy.DOMAIN,
                       "Hidden neurons of the scratch network on the plane (orange < 0 < blue, one scale per "
                       "layer); "
                       f"torch's differ by at most {hidden_diff:.1e}"),
    ]
    if config.extra["gif"]:
        paths.append(boundary_animation(folder, frames, x_train, y_train, toy.DOMAIN))
    return paths


COMMAND = Command(
    name="playground",
    help="TensorFlow-Playground-like lab: both networks learn a 2-D toy dataset",
    run=run,
    groups=(MODEL, LOSS, BATCH, EPOCHS, OPTIMIZER, REGULARIZATION, *RUN, PLOTS, DIVERGENCE),
    add_arguments=add_arguments,
    config_keys=("noise", "samples", "plots", "gif", "fail_on_divergence"),
    needs_data=False,
    defaults=DEFAULTS,
    check=check,
)
