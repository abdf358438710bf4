"""A small vision transformer on 28x28 digits (`--model vit`): patches as tokens, attention between them.

    python -m compare train --model vit --epochs 10                 # 16 patches of 7x7, 3 blocks of width 64
    python -m compare grads --model vit --dtype float64             # every gradient against autograd and FD
    python -m compare train --model vit --depth 1 --dim 32 --heads 2 --mlp-dim 64 --readout cls --epochs 1

The digit is cut into (28 / patch size)^2 square patches, each embedded as a token of --dim
features plus a learned position; --depth pre-norm transformer blocks (--heads heads of
attention, an MLP of width --mlp-dim with GELU) mix the tokens; a final layer norm, then the
mean over tokens (--readout mean) or a class token (--readout cls) feeds the classifier.
Variants: scratch/vit.py (hand-written backward), torch_impl/vit.py (nn.TransformerEncoderLayer),
and the ViT on the scratch autograd engine (scratch/engine_nn.py). Derivations: docs/attention.md.
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
from compare.models.family import Family, ModelOption, SplitPair, TrainingDefaults
from compare.models.spec import ModelSpec
from compare.pictures.families import attention_maps
from scratch import engine_nn

IMAGE_SIZE = 28  # the family reads 28x28 single-channel images: 784 values per example
POOLS = ("mean", "cls")

PATCH_SIZE = ModelOption("patch_size", "side of the square patches the 28x28 image is cut into (a divisor of 28)",
                         dict(type=argtypes.positive_int, metavar="P"))
DIM = ModelOption("dim", "features per token (the transformer's width)", dict(type=argtypes.positive_int))
DEPTH = ModelOption("depth", "number of transformer blocks", dict(type=argtypes.positive_int))
HEADS = ModelOption("heads", "attention heads per block (must divide --dim)", dict(type=argtypes.positive_int))
MLP_DIM = ModelOption("mlp_dim", "hidden width of each block's MLP", dict(type=argtypes.positive_int))
READOUT = ModelOption("readout", "how the tokens become one vector for the classifier: their mean, or a learned class "
                   "token", dict(choices=POOLS))

DEFAULTS = dict(patch_size=7, dim=64, depth=3, heads=4, mlp_dim=128, readout="mean")


def _kwargs(spec: ModelSpec, num_classes: int) -> dict:
    return dict(image_size=IMAGE_SIZE, patch_size=spec["patch_size"], in_channels=1, dim=spec["dim"],
                depth=spec["depth"], heads=spec["heads"], mlp_dim=spec["mlp_dim"], num_classes=num_classes,
                pool=spec["readout"])


def check_images(input_size: int) -> None:
    if input_size != IMAGE_SIZE * IMAGE_SIZE:
        raise UsageError(f"--model vit reads 28x28 images (784 values each), but the data has {input_size} values "
                         "per example; use --dataset mnist or fashion-mnist, or --model mlp for other inputs")


def build(spec: ModelSpec, impl: str, input_size: int, num_classes: int) -> object:
    check_images(input_size)
    kind = {"scratch": scratch.ViT, "torch": torch_impl.ViT, "engine": engine_nn.ViT}[impl]
    return kind(**_kwargs(spec, num_classes))


def check(spec: ModelSpec) -> None:
    if IMAGE_SIZE % spec["patch_size"]:
        raise UsageError(f"--patch-size {spec['patch_size']} does not divide the 28x28 image; choose 2, 4, 7 or 14")
    if spec["dim"] % spec["heads"]:
        raise UsageError(f"--heads {spec['heads']} does not divide --dim {spec['dim']}: each head takes dim / heads "
                         "features; choose e.g. --dim 64 --heads 4")
    if spec["readout"] not in POOLS:
        raise UsageError(f"unknown --readout {spec['readout']!r}; choose one of {', '.join(POOLS)}")


def tokens(spec: ModelSpec) -> int:
    return (IMAGE_SIZE // spec["patch_size"]) ** 2 + (spec["readout"] == "cls")


def describe(spec: ModelSpec, input_size: int, num_classes: int) -> str:
    p = spec["patch_size"]
    return (f"ViT {p}x{p} patches ({tokens(spec)} tokens), dim {spec['dim']}, depth {spec['depth']}, "
            f"{spec['heads']} heads, MLP {spec['mlp_dim']}, {spec['readout']} pool, {num_classes} classes")


def label(spec: ModelSpec, input_size: int, num_classes: int) -> str:
    return f"vit p{spec['patch_size']} d{spec['dim']}x{spec['depth']}"


def parameter_count(spec: ModelSpec, num_classes: int) -> int:
    d, f, p = spec["dim"], spec["mlp_dim"], spec["patch_size"]
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    return (p * p * d + d) + tokens(spec) * d + d * (spec["readout"] == "cls") + spec["depth"] * block + 2 * d \
        + d * num_classes + num_classes


def step_flops(spec: ModelSpec, input_size: int, num_classes: int, batch_size: int) -> tuple[int, float]:
    p = spec["patch_size"]
    matmuls = flops.vit_step_flops(batch_size, (IMAGE_SIZE // p) ** 2, p * p, spec["dim"], spec["depth"],
                                   spec["mlp_dim"], num_classes, tokens(spec))
    elementwise = flops.vit_elementwise(batch_size, spec["dim"], spec["depth"], spec["heads"], spec["mlp_dim"],
                                        tokens(spec), parameter_count(spec, num_classes))
    return matmuls, elementwise / (elementwise + matmuls)


def pictures(folder: str | Path, spec: ModelSpec, trained: Mapping[str, object], x, classes) -> list[Path]:
    """attention.png: each block's head-averaged attention for the first test digit, scratch beside torch."""
    one = x[:1]
    grid = IMAGE_SIZE // spec["patch_size"]
    first_patch = tokens(spec) - grid * grid  # 1 with a class token, else 0
    maps, received = {}, {}
    for side, model in trained.items():
        with torch.no_grad():
            averaged = [m[0].mean(dim=0) for m in model.attention_maps(one)]  # T,T per block
        maps[side] = averaged
        # mean pool: what all tokens, on average, attend to; cls pool: what the class token attends to
        looked_at = [(a[0] if spec["readout"] == "cls" else a.mean(dim=0))[first_patch:] for a in averaged]  # N
        received[side] = [r.reshape(grid, grid) for r in looked_at]
    image = one[0].reshape(IMAGE_SIZE, IMAGE_SIZE)
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)  # 0..1 for drawing
    return [attention_maps(folder, image, maps, received,
                           f"Attention of a ViT ({spec['readout']} pool) on a test digit, averaged over heads")]


def split_pairs(spec: ModelSpec) -> list[SplitPair]:
    """Tensor parallelism's plan: each block's feed-forward MLP, linear1 column-parallel and linear2 row-parallel
    (Megatron's); attention, norms, embeddings and head stay whole in every process."""
    return [SplitPair(f"blocks.{k}.linear1", f"blocks.{k}.linear2", spec["mlp_dim"], "--mlp-dim")
            for k in range(spec["depth"])]


FAMILY = Family(
    name="vit",
    summary="a small vision transformer: 7x7 patches as tokens, pre-norm attention blocks",
    options=(PATCH_SIZE, DIM, DEPTH, HEADS, MLP_DIM, READOUT),
    defaults=DEFAULTS,
    build=build,
    input_shape=lambda spec, input_size: (1, IMAGE_SIZE, IMAGE_SIZE),
    describe=describe,
    # Adam at 2e-3 learns the default ViT well in 3 epochs (docs/attention.md's table of sizes, runs
    # attention-depth-2/3/4 of docs/build.py), so the family trains with Adam unless --optimizer says otherwise.
    # The rates of the other optimizers are NOT measured for this family yet: sgd as the mlp's, momentum and
    # nesterov a tenth of it (momentum multiplies the step by about 10), adamw as adam.
    training=TrainingDefaults(lr=dict(sgd=0.1, momentum=0.01, nesterov=0.01, adam=2e-3, adamw=2e-3),
                              batch_size=64, lr_schedule="cosine", optimizer="adam"),
    check=check,
    # GELU, softmax and layer norm are smooth everywhere. But a class token starts at zero, so its first layer
    # norm standardizes pos_embed's entries of about 0.02 (variance ~4e-4, near eps = 1e-5): so sharp a curve that
    # the truncation error of finite differences at the smooth step h = 1e-5 comes within an order of magnitude of
    # the 1e-7 tolerance (fake data); the small step of kinked networks keeps it far below.
    kinked=lambda spec: spec["readout"] == "cls",
    label=label,
    step_flops=step_flops,
    step_activations=lambda spec, input_size, num_classes: traffic.vit_activations(
        spec["dim"], spec["depth"], spec["heads"], spec["mlp_dim"], tokens(spec), num_classes),
    bench_specs=(dict(),),
    pictures=pictures,
    tensor_parallel=split_pairs,
)
