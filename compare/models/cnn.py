"""A convolutional network (`--model cnn`): LeNet-5 as people build it today, and variants of it.

    python -m compare train --model cnn --epochs 10                     # LeNet-5 on MNIST
    python -m compare train --model cnn --batch-norm --dataset fashion-mnist --epochs 10
    python -m compare grads --model cnn --dtype float64                 # every gradient three ways

The default network (docs/cnn.md "The network"):

    image [B, 1, 28, 28]
    -> Conv2d(1, 6, 5, padding=2) -> ReLU -> MaxPool2d(2)      [B, 6, 14, 14]
    -> Conv2d(6, 16, 5)           -> ReLU -> MaxPool2d(2)      [B, 16, 5, 5]
    -> Flatten -> Linear(400, 120) -> ReLU -> Linear(120, 84) -> ReLU -> Linear(84, 10)

Options: --channels (one conv stage per entry), --kernel-size, --padding (one for every stage or
one per stage), --pool max|avg, --batch-norm (Conv2d without bias -> BatchNorm2d in each stage),
--fc (the hidden fully connected sizes), --activation. Variants: scratch/cnn.py (hand-written
backward), torch_impl/cnn.py (nn.Conv2d, nn.MaxPool2d/nn.AvgPool2d, nn.BatchNorm2d, nn.Flatten,
nn.Linear), and the CNN on the scratch autograd engine (scratch/engine_nn.py; no batch norm there).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

import scratch
import torch_impl
from compare.base import argtypes
from compare.base.errors import UsageError
from compare.models import flops, traffic
from compare.models.family import (
    ACTIVATION,
    BATCH_NORM,
    KINKED_ACTIVATIONS,
    Family,
    ModelOption,
    TrainingDefaults,
    show_sizes,
)
from compare.models.spec import ModelSpec
from compare.pictures.families import feature_maps
from compare.pictures.weights import conv_filters
from scratch import engine_nn
from scratch.cnn import POOLS, plan_stages

IMAGE_SHAPE = (1, 28, 28)  # channels, height, width of the images every dataset here holds

CHANNELS = ModelOption("channels", "output channels of each conv stage, comma-separated (one stage per entry)",
                       dict(type=lambda text: argtypes.int_list(text, "--channels", "6,16"), metavar="C1,C2"),
                       show=show_sizes)
KERNEL_SIZE = ModelOption("kernel_size", "side k of every convolution's k x k kernel",
                          dict(type=argtypes.positive_int, metavar="K"))
PADDING = ModelOption("padding", "zero padding of each conv stage: one value for every stage, or one per stage",
                      dict(type=lambda text: argtypes.int_list(text, "--padding", "2,0", minimum=0), metavar="P1,P2"),
                      show=show_sizes)
POOL = ModelOption("pool", "the 2x2 pooling that ends each conv stage", dict(choices=tuple(POOLS)))
FC = ModelOption("fc", "hidden fully connected layer sizes after the conv stages, comma-separated",
                 dict(type=lambda text: argtypes.int_list(text, "--fc", "120,84"), metavar="F1,F2"), show=show_sizes)

DEFAULTS = dict(channels=(6, 16), kernel_size=5, padding=(2, 0), pool="max", batch_norm=False, fc=(120, 84),
                activation="relu")


def _paddings(spec: ModelSpec) -> tuple[int, ...]:
    padding = tuple(spec["padding"])
    return padding * len(spec["channels"]) if len(padding) == 1 else padding


def _stages(spec: ModelSpec) -> list:
    """Each conv stage's channels and sizes (scratch.cnn.plan_stages), or a UsageError naming the options."""
    try:
        return plan_stages(IMAGE_SHAPE[0], IMAGE_SHAPE[1], tuple(spec["channels"]), spec["kernel_size"],
                           _paddings(spec), spec["pool"])
    except ValueError as error:
        raise UsageError(f"--model cnn with --channels {show_sizes(spec['channels'])} --kernel-size "
                         f"{spec['kernel_size']} --padding {show_sizes(spec['padding'])}: "
                         f"{str(error).removeprefix('CNN: ')}") from None


def check(spec: ModelSpec) -> None:
    if spec["activation"] not in ACTIVATION.kwargs["choices"]:
        raise UsageError(f"unknown activation {spec['activation']!r}; choose one of "
                         f"{', '.join(ACTIVATION.kwargs['choices'])}")
    if spec["pool"] not in POOLS:
        raise UsageError(f"unknown pool {spec['pool']!r}; choose --pool {' or '.join(POOLS)}")
    if not spec["fc"] or any(int(size) <= 0 for size in spec["fc"]):
        raise UsageError(f"--fc needs at least one positive size, got {spec['fc']}")
    _stages(spec)


def build(spec: ModelSpec, impl: str, input_size: int, num_classes: int) -> object:
    if input_size != IMAGE_SHAPE[1] * IMAGE_SHAPE[2]:
        raise UsageError(f"--model cnn needs 28x28 images (784 values per example); this data has {input_size} "
                         "values per example: use it on MNIST or Fashion-MNIST, or choose another --model")
    kwargs = dict(in_channels=IMAGE_SHAPE[0], image_size=IMAGE_SHAPE[1], channels=tuple(spec["channels"]),
                  kernel_size=spec["kernel_size"], padding=_paddings(spec), pool=spec["pool"],
                  fc_sizes=tuple(spec["fc"]), activation=spec["activation"], num_classes=num_classes)
    if impl == "scratch":
        return scratch.CNN(**kwargs, batch_norm=spec["batch_norm"])
    if impl == "torch":
        return torch_impl.CNN(**kwargs, batch_norm=spec["batch_norm"])
    return engine_nn.CNN(**kwargs)


def engine_problem(spec: ModelSpec) -> str | None:
    if spec["activation"] not in engine_nn.ACTIVATIONS:
        return (f"the autograd engine has no {spec['activation']!r} activation; "
                f"choose --activation {' or '.join(engine_nn.ACTIVATIONS)}")
    if spec["batch_norm"]:
        return "the autograd engine's CNN has no batch norm layer (no BatchNorm2d block there); leave out --batch-norm"
    return None


def describe(spec: ModelSpec, input_size: int, num_classes: int) -> str:
    k = spec["kernel_size"]
    convs = ", ".join(f"conv {k}x{k} {stage.in_channels}->{stage.out_channels}"
                      + (f" pad {stage.padding}" if stage.padding else "") for stage in _stages(spec))
    sizes = "-".join(map(str, fc_widths(spec, num_classes)))
    extra = ", batch norm" if spec["batch_norm"] else ""
    return f"CNN {label(spec, input_size, num_classes)}: {convs}, 2x2 {spec['pool']} pool, fc {sizes} " \
           f"{spec['activation']}{extra}"


def label(spec: ModelSpec, input_size: int, num_classes: int) -> str:
    """'LeNet-5' for the defaults, else 'cnn' with what differs: 'cnn 6,16 avg bn'."""
    changed = {k: v for k, v in spec.options.items() if DEFAULTS[k] != v}
    if not changed:
        return "LeNet-5"
    words = [show_sizes(spec["channels"])]
    words += [f"k{spec['kernel_size']}"] if "kernel_size" in changed else []
    words += [f"pad {show_sizes(spec['padding'])}"] if "padding" in changed else []
    words += [spec["pool"]] if "pool" in changed else []
    words += ["bn"] if spec["batch_norm"] else []
    words += [f"fc {show_sizes(spec['fc'])}"] if "fc" in changed else []
    words += [spec["activation"]] if "activation" in changed else []
    return "cnn " + " ".join(words)


def fc_widths(spec: ModelSpec, num_classes: int) -> list[int]:
    last = _stages(spec)[-1]
    return [last.out_channels * last.size ** 2, *spec["fc"], num_classes]


def conv_shapes(spec: ModelSpec) -> list[flops.ConvShape]:
    return [flops.ConvShape(s.in_channels, s.out_channels, spec["kernel_size"], s.conv_size) for s in _stages(spec)]


def step_flops(spec: ModelSpec, input_size: int, num_classes: int, batch_size: int) -> tuple[int, float]:
    convs, widths = conv_shapes(spec), fc_widths(spec, num_classes)
    return (flops.cnn_step_flops(convs, widths, batch_size),
            flops.cnn_elementwise_share(convs, widths, batch_size, spec["batch_norm"]))


def pictures(folder: str | Path, spec: ModelSpec, models: Mapping[str, object], x: torch.Tensor,
             classes) -> list[Path]:
    """The first convolution's filters, and the feature maps of the first test image after each conv stage,
    scratch beside torch (the scratch side may be the engine's CNN: both have feature_maps)."""
    weights = {name: dict(model.named_parameters())["layers.0.weight"].data for name, model in models.items()}
    dtype = weights["torch"].dtype
    image = x[:1].to(device=weights["torch"].device, dtype=dtype)  # 1,784
    maps = {name: [m[0].detach() for m in model.feature_maps(image)] for name, model in models.items()}
    title = f"A test image and the feature maps after each conv stage ({label(spec, 784, len(classes))})"
    return [conv_filters(folder, weights),
            feature_maps(folder, image.reshape(IMAGE_SHAPE[1:]), maps, title)]


FAMILY = Family(
    name="cnn",
    summary="convolutional network, LeNet-5 by default (--channels, --kernel-size, --padding, --pool, --fc)",
    options=(CHANNELS, KERNEL_SIZE, PADDING, POOL, BATCH_NORM, FC, ACTIVATION),
    defaults=DEFAULTS,
    build=build,
    input_shape=lambda spec, input_size: IMAGE_SHAPE,
    describe=describe,
    # Measured (docs/cnn.md "Measured", seed 0, 10 epochs): SGD lr 0.05 with the cosine schedule at batch 32 gives
    # LeNet-5 99.19% (scratch) / 99.20% (torch) on MNIST, 97.98% after one epoch; with batch norm 91.00/90.92% on
    # Fashion-MNIST. The other optimizers' rates are the usual starting points (momentum and Nesterov a tenth of
    # SGD's, as for the MLP; Adam's 1e-3), not yet measured on the CNN.
    training=TrainingDefaults(lr=dict(sgd=0.05, momentum=0.01, nesterov=0.01, adam=1e-3, adamw=1e-3),
                              batch_size=32, lr_schedule="cosine"),
    check=check,
    engine_problem=engine_problem,
    kinked=lambda spec: spec["activation"] in KINKED_ACTIVATIONS or spec["pool"] == "max",
    label=label,
    step_flops=step_flops,
    step_activations=lambda spec, input_size, num_classes: traffic.cnn_activations(
        conv_shapes(spec), fc_widths(spec, num_classes), spec["batch_norm"]),
    bench_specs=(dict(), dict(batch_norm=True)),
    pictures=pictures,
)
