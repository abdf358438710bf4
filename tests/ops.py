"""The table of every scratch op: each hand-written layer, loss and engine op, with its torch twin, its
sample inputs and its claims. tests/test_ops.py generates the tests from it; tests/op_kinds.py says what
the fields mean and how each kind is run.

Adding a layer (or a loss, or an engine op) adds one entry here and no test code; a layer or op that
exists in scratch/ without an entry fails tests/test_ops.py::test_every_scratch_op_has_an_entry.

    pytest tests/test_ops.py -q                      # every entry
    pytest tests/test_ops.py -q -k "conv"            # the entries whose name holds "conv"
"""

from __future__ import annotations

import torch
from op_kinds import ErrorCase, OpInfo, sample
from torch import nn
from torch.nn import functional
from twins import copy_state

import scratch
import torch_impl
from compare.base.agreement import AUTOGRAD_EXPRESSIONS_FLOAT64
from scratch import engine_nn
from scratch.engine import Value, cat, cross_entropy, mse_loss, stack
from scratch.engine_nn import avg_pool2d, conv2d, max_pool2d

# ---------------------------------------------------------------------- twins torch spells differently


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention(batch_first=True) called as self-attention with one input, as scratch's."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__(embed_dim, num_heads, batch_first=True)

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


class RNNOutput(nn.RNN):
    """nn.RNN(batch_first=True) returning only the hidden states [B, T, H], as the scratch layer's forward."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, batch_first=True)

    def forward(self, x, state=None):
        return super().forward(x, state)[0]


class LSTMOutput(nn.LSTM):
    """nn.LSTM(batch_first=True) returning only the hidden states [B, T, H]."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, batch_first=True)

    def forward(self, x, state=None):
        return super().forward(x, state)[0]


# How both dropout layers get the same mask: on the CPU, nn.Dropout draws it with empty_like(x).bernoulli_(1 - p)
# from torch's global generator, and scratch.Dropout makes the same call; so both set that generator to one state
# before every forward pass: ours, torch's and each finite-difference evaluation alike.
MASK_SEED = 1234


class ScratchDropoutSameMask(scratch.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(MASK_SEED)
        return super().forward(x)


class TorchDropoutSameMask(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(MASK_SEED)
        return super().forward(x)


def random_affine(layer):
    """Batch norm off its initial weight 1, bias 0 (which would hide a swapped weight and bias)."""
    g = torch.Generator().manual_seed(5)
    layer.weight.uniform_(0.5, 1.5, generator=g)
    layer.bias.uniform_(-0.5, 0.5, generator=g)
    return layer


def trained_statistics(layer):
    """Batch norm for evaluation, with running statistics that are not the initial 0 and 1."""
    g = torch.Generator().manual_seed(6)
    layer.running_mean.uniform_(-1, 1, generator=g)
    layer.running_var.uniform_(0.5, 2, generator=g)
    return random_affine(layer)


def twin_of(make_torch):
    """A twin factory: the torch module built by `make_torch`, holding the scratch layer's parameters and buffers."""
    return lambda layer: copy_state(layer, make_torch())


def conv(name, *args, shape, **kwargs):
    return layer(name, lambda: scratch.Conv2d(*args, **kwargs), twin_of(lambda: nn.Conv2d(*args, **kwargs)),
                 sample("typical", shape), sample("batch-of-1", (1, *shape[1:])), errors=CONV_ERRORS)


def layer(name, ours, twin, *samples, **claims) -> OpInfo:
    return OpInfo(name, "layer", (), samples, ours, twin, **claims)


def engine_op(name, fn, *samples, covers, twin=None, **claims) -> OpInfo:
    return OpInfo(f"engine.{name}", "engine op", covers, samples, fn, twin, forward_ad=True, double_backward=True,
                  **claims)


def engine_layer(name, ours, twin, *samples, **claims) -> OpInfo:
    return OpInfo(name, "engine layer", (), samples, ours, twin, float64_tolerance=AUTOGRAD_EXPRESSIONS_FLOAT64,
                  forward_ad=True, double_backward=True, **claims)


def error(name, call, exception, match) -> ErrorCase:
    return ErrorCase(name, call, exception, match)


def targets_for(logits):
    """Fixed class targets for the engine's losses: one per row, on the logits' device."""
    data = logits.data if isinstance(logits, Value) else logits
    return torch.arange(data.shape[0], device=data.device) % data.shape[1]


def one_hot_mse(output, target):
    return ((output - functional.one_hot(target, output.shape[1]).to(output.dtype)) ** 2).mean()


def lstm_outputs(lstm, x) -> list:
    out, (h_n, c_n) = lstm(x)
    return [out, h_n, c_n]


def not_flattened(make, x_shape):
    return lambda: make()(torch.zeros(x_shape))


# Models small enough for finite differences at every coordinate (a few hundred parameters each)
TINY_VIT = dict(image_size=4, patch_size=2, in_channels=1, dim=4, depth=1, heads=2, mlp_dim=6, num_classes=3)
TINY_CLASSIFIER = dict(input_size=4, hidden_size=5, num_classes=3)
SMALL_CNN = dict(image_size=6, channels=(2, 3), kernel_size=3, padding=1, fc_sizes=(4,), activation="tanh",
                 in_channels=2, num_classes=3)
SMALL_BN_CNN = dict(image_size=6, channels=(2, 3), kernel_size=3, padding=1, fc_sizes=(5,), in_channels=1,
                    num_classes=3, batch_norm=True, pool="avg")
SMALL_MLP = dict(input_size=6, hidden_sizes=(5, 4), activation="relu", num_classes=3)
SMALL_BN_MLP = dict(input_size=6, hidden_sizes=(5, 4), activation="gelu", num_classes=3, batch_norm=True)
ENGINE_CNN = dict(image_size=8, channels=(2, 3), kernel_size=3, padding=1, fc_sizes=(5,), activation="tanh",
                  num_classes=3)
BIG = dict(finite_differences=False, why="100,000 parameters: the small entry of the same model checks every one")
SATURATED = dict(finite_differences=False, why="saturated: slopes of 1e-13, below what a finite difference resolves")

CONV_ERRORS = (
    error("wrong channels", lambda: scratch.Conv2d(3, 4, 3).forward(torch.zeros(2, 1, 5, 5)), ValueError,
          r"expects input of shape \[batch, 3, height, width\], got \[2, 1, 5, 5\]"),
    error("image smaller than the kernel", lambda: scratch.Conv2d(1, 4, 5).forward(torch.zeros(2, 1, 3, 3)),
          ValueError, "smaller than the 5x5 kernel"),
    error("a non-square kernel", lambda: scratch.Conv2d(1, 4, (3, 5)), ValueError, "kernel_size must be an int >= 1"),
    error("backward before forward", lambda: scratch.Conv2d(1, 1, 1).backward(torch.zeros(1, 1, 1, 1)),
          RuntimeError, "before forward"),
)
POOL_ERRORS = (
    error("padding", lambda: scratch.MaxPool2d(2, padding=1), ValueError, "padding=0 and ceil_mode=False only"),
    error("dilation", lambda: scratch.MaxPool2d(2, dilation=2), ValueError, "dilation=1 only"),
    error("backward before forward", lambda: scratch.MaxPool2d(2).backward(torch.zeros(1, 1, 1, 1)), RuntimeError,
          "before forward"),
)
BATCHNORM1D_ERRORS = (
    error("wrong features", lambda: scratch.BatchNorm1d(4).forward(torch.zeros(3, 5)), ValueError,
          r"expects input of shape \[batch, 4\], got \[3, 5\]"),
    error("one example in training", lambda: scratch.BatchNorm1d(4).forward(torch.zeros(1, 4)), ValueError,
          "at least 2 examples"),
)
BATCHNORM2D_ERRORS = (
    error("flat input", lambda: scratch.BatchNorm2d(3).forward(torch.zeros(2, 3)), ValueError,
          r"expects input of shape \[batch, 3, height, width\], got \[2, 3\]"),
    error("one value per channel in training", lambda: scratch.BatchNorm2d(3).forward(torch.zeros(1, 3, 1, 1)),
          ValueError, "at least 2 values per feature"),
)
LOSS_ERRORS = {
    name: (error("targets of another batch", lambda c=cls: c().forward(torch.zeros(3, 10), torch.zeros(4).long()),
                 ValueError, "integer targets"),
           error("float targets", lambda c=cls: c().forward(torch.zeros(3, 10), torch.zeros(3)), TypeError,
                 "int64 class indices"))
    for name, cls in scratch.LOSSES.items()
}
RECURRENT_ERRORS = (
    error("a flat image", lambda: scratch.LSTM(28, 8)(torch.zeros(2, 784)), ValueError,
          r"expects a sequence \[batch, steps, 28\].*row by row"),
    error("backward before forward", lambda: scratch.LSTM(3, 4).backward(torch.zeros(1, 2, 4)), RuntimeError,
          "before forward"),
)


# ---------------------------------------------------------------------- hand-written layers and losses

LAYERS = [
    layer("linear", lambda: scratch.Linear(7, 5), twin_of(lambda: nn.Linear(7, 5)),
          sample("typical", (4, 7)), sample("batch-of-1", (1, 7)),
          errors=(error("images not flattened", not_flattened(lambda: scratch.Linear(784, 16), (2, 28, 28)), ValueError,
                        r"expects input of shape \[batch, 784\].*flatten"),
                  error("backward before forward", lambda: scratch.Linear(3, 2).backward(torch.zeros(1, 2)),
                        RuntimeError, "before forward"))),
    layer("linear-no-bias", lambda: scratch.Linear(7, 5, bias=False), twin_of(lambda: nn.Linear(7, 5, bias=False)),
          sample("typical", (4, 7)), sample("odd-sizes", (3, 7))),
    layer("relu", scratch.ReLU, lambda s: nn.ReLU(), sample("typical", (4, 6), values="away"),
          sample("batch-of-1", (1, 5), values="away"), sample("zeros", (4, 6), values="small-integers", kink=True),
          kinked=True),
    layer("leaky-relu", scratch.LeakyReLU, lambda s: nn.LeakyReLU(), sample("typical", (4, 6), values="away"),
          sample("zeros", (4, 6), values="small-integers", kink=True), kinked=True),
    layer("leaky-relu-0.2", lambda: scratch.LeakyReLU(0.2), lambda s: nn.LeakyReLU(0.2),
          sample("typical", (4, 6), values="away"), sample("zeros", (3, 5), values="small-integers", kink=True),
          kinked=True),
    layer("sigmoid", scratch.Sigmoid, lambda s: nn.Sigmoid(), sample("typical", (4, 6)),
          sample("batch-of-1", (1, 5)), sample("saturated", (4, 6), values="large", **SATURATED)),
    layer("tanh", scratch.Tanh, lambda s: nn.Tanh(), sample("typical", (4, 6)),
          sample("saturated", (4, 6), values="large", **SATURATED)),
    layer("identity", scratch.Identity, lambda s: nn.Identity(), sample("typical", (4, 6))),
    layer("gelu", scratch.GELU, lambda s: nn.GELU(), sample("typical", (4, 6)), sample("batch-of-1", (1, 5)),
          sample("large", (4, 6), values="large", **SATURATED)),
    layer("batchnorm1d-train", lambda: random_affine(scratch.BatchNorm1d(6)), twin_of(lambda: nn.BatchNorm1d(6)),
          sample("typical", (9, 6), values="shifted"), sample("odd-sizes", (5, 6), values="shifted"),
          # two examples: every output is +-1 whatever x is (up to eps), so dx is eps-small
          sample("batch-of-2", (2, 6), values="shifted", finite_differences=False,
                 why="outputs +-1 whatever x is: dx is eps-small, a finite difference measures rounding only"),
          modes_differ=True, errors=BATCHNORM1D_ERRORS),
    layer("batchnorm1d-train-eps-momentum", lambda: random_affine(scratch.BatchNorm1d(6, eps=1e-3, momentum=0.3)),
          twin_of(lambda: nn.BatchNorm1d(6, eps=1e-3, momentum=0.3)), sample("typical", (9, 6), values="shifted"),
          modes_differ=True),
    layer("batchnorm1d-eval", lambda: trained_statistics(scratch.BatchNorm1d(6)), twin_of(lambda: nn.BatchNorm1d(6)),
          sample("typical", (9, 6), values="shifted"), sample("batch-of-1", (1, 6), values="shifted"),
          training=False, modes_differ=True),
    layer("batchnorm2d-train", lambda: random_affine(scratch.BatchNorm2d(3)), twin_of(lambda: nn.BatchNorm2d(3)),
          sample("typical", (4, 3, 3, 5), values="shifted"), sample("batch-of-1", (1, 3, 3, 4), values="shifted"),
          modes_differ=True, errors=BATCHNORM2D_ERRORS),
    layer("batchnorm2d-train-eps-momentum", lambda: random_affine(scratch.BatchNorm2d(2, eps=1e-3, momentum=0.3)),
          twin_of(lambda: nn.BatchNorm2d(2, eps=1e-3, momentum=0.3)), sample("typical", (3, 2, 4, 3), values="shifted"),
          modes_differ=True),
    layer("batchnorm2d-eval", lambda: trained_statistics(scratch.BatchNorm2d(3)), twin_of(lambda: nn.BatchNorm2d(3)),
          sample("typical", (4, 3, 3, 5), values="shifted"), training=False, modes_differ=True),
    layer("dropout-train", lambda: ScratchDropoutSameMask(0.3), lambda s: TorchDropoutSameMask(0.3),
          sample("typical", (10, 6)), sample("batch-of-1", (1, 7)), modes_differ=True,
          errors=(error("p above 1", lambda: scratch.Dropout(1.5), ValueError, "between 0 and 1"),)),
    layer("dropout-train-p-1", lambda: ScratchDropoutSameMask(1.0), lambda s: TorchDropoutSameMask(1.0),
          sample("typical", (4, 6)), modes_differ=True),
    layer("dropout-eval", lambda: scratch.Dropout(0.3), lambda s: nn.Dropout(0.3), sample("typical", (20, 6)),
          training=False, modes_differ=True),
    layer("flatten", scratch.Flatten, lambda s: nn.Flatten(), sample("typical", (3, 2, 4, 5)),
          sample("batch-of-1", (1, 3, 2, 2))),
    layer("sequential", lambda: scratch.Sequential(scratch.Linear(5, 4), scratch.Tanh(), scratch.Linear(4, 3)),
          twin_of(lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))), sample("typical", (4, 5))),
    conv("conv-5x5-pad-2", 2, 3, 5, padding=2, shape=(2, 2, 7, 6)),
    conv("conv-3x3-stride-2-pad-1", 3, 4, 3, stride=2, padding=1, shape=(2, 3, 7, 8)),
    conv("conv-no-bias", 2, 3, 3, bias=False, shape=(3, 2, 5, 6)),
    conv("conv-2x2-stride-3", 2, 2, 2, stride=3, shape=(2, 2, 8, 7)),  # gaps between windows, rows left over
    conv("conv-1x1", 3, 2, 1, shape=(2, 3, 4, 5)),
    layer("maxpool-2", lambda: scratch.MaxPool2d(2), lambda s: nn.MaxPool2d(2), sample("typical", (2, 3, 6, 8)),
          sample("odd-sides", (2, 2, 5, 7)), sample("batch-of-1", (1, 1, 4, 4)),
          sample("ties", (2, 3, 6, 8), values="small-integers", kink=True), kinked=True, errors=POOL_ERRORS),
    layer("maxpool-3-stride-2", lambda: scratch.MaxPool2d(3, 2), lambda s: nn.MaxPool2d(3, 2),
          sample("typical", (2, 2, 7, 9)), sample("ties", (2, 3, 7, 8), values="small-integers", kink=True),
          kinked=True),
    layer("avgpool-2", lambda: scratch.AvgPool2d(2), lambda s: nn.AvgPool2d(2), sample("typical", (2, 3, 6, 8)),
          sample("odd-sides", (2, 2, 5, 7)), sample("batch-of-1", (1, 1, 4, 4)),
          errors=(error("image smaller than the window", lambda: scratch.AvgPool2d(3).forward(torch.zeros(1, 1, 2, 5)),
                        ValueError, "smaller than the 3x3 window"),)),
    layer("avgpool-3-stride-2", lambda: scratch.AvgPool2d(3, 2), lambda s: nn.AvgPool2d(3, 2),
          sample("typical", (2, 2, 7, 9))),
    layer("layernorm", lambda: scratch.LayerNorm(6), twin_of(lambda: nn.LayerNorm(6)), sample("typical", (3, 4, 6)),
          sample("batch-of-1", (1, 6)), perturb=0.5,
          errors=(error("wrong last dim", lambda: scratch.LayerNorm(8)(torch.zeros(2, 7)), ValueError,
                        "last dimension is 8"),)),
    layer("attention", lambda: scratch.MultiheadAttention(6, 2), twin_of(lambda: SelfAttention(6, 2)),
          sample("typical", (2, 4, 6)), sample("batch-of-1", (1, 3, 6)), sample("odd-length", (2, 5, 6)), perturb=0.5,
          errors=(error("heads do not divide", lambda: scratch.MultiheadAttention(10, 4), ValueError,
                        "divisible by num_heads"),)),
    layer("transformer-block", lambda: scratch.TransformerEncoderLayer(6, 2, 8),
          twin_of(lambda: torch_impl.TransformerEncoderLayer(6, 2, 8)), sample("typical", (2, 4, 6)),
          sample("batch-of-1", (1, 3, 6)), perturb=0.5),
    layer("rnn", lambda: scratch.RNN(3, 4), twin_of(lambda: RNNOutput(3, 4)), sample("typical", (2, 6, 3)),
          sample("batch-of-1", (1, 6, 3)), sample("one-step", (2, 1, 3)), perturb=0.5, errors=RECURRENT_ERRORS),
    layer("lstm", lambda: scratch.LSTM(3, 4), twin_of(lambda: LSTMOutput(3, 4)), sample("typical", (2, 6, 3)),
          sample("batch-of-1", (1, 6, 3)), sample("one-step", (2, 1, 3)), perturb=0.5),
    # whole models, small enough for finite differences at every coordinate, then at their real size
    layer("mlp", lambda: scratch.MLP(**SMALL_MLP), twin_of(lambda: torch_impl.MLP(**SMALL_MLP)),
          sample("typical", (4, 6), values="away"), sample("batch-of-1", (1, 6), values="away"),
          errors=(error("unknown activation", lambda: scratch.MLP(activation="swish"), ValueError,
                        "unknown activation"),)),
    layer("mlp-batchnorm-gelu", lambda: scratch.MLP(**SMALL_BN_MLP), twin_of(lambda: torch_impl.MLP(**SMALL_BN_MLP)),
          sample("typical", (5, 6)), modes_differ=True),
    layer("cnn-small-tanh", lambda: scratch.CNN(**SMALL_CNN), twin_of(lambda: torch_impl.CNN(**SMALL_CNN)),
          sample("typical", (2, 2, 6, 6)), sample("flattened", (1, 72))),
    layer("cnn-batchnorm-avgpool", lambda: scratch.CNN(**SMALL_BN_CNN), twin_of(lambda: torch_impl.CNN(**SMALL_BN_CNN)),
          sample("typical", (3, 1, 6, 6), values="shifted"), modes_differ=True),
    layer("vit-mean", lambda: scratch.ViT(**TINY_VIT), twin_of(lambda: torch_impl.ViT(**TINY_VIT)),
          sample("typical", (2, 1, 4, 4)), sample("flattened-batch-of-1", (1, 16)), perturb=0.5,
          errors=(error("images of another size", lambda: scratch.ViT()(torch.zeros(2, 32, 32)), ValueError,
                        r"expects images of 784 values.*\[B, 1, 28, 28\]"),
                  error("patches do not tile", lambda: scratch.ViT(patch_size=5), ValueError,
                        "not a multiple of patch_size"))),
    layer("vit-cls", lambda: scratch.ViT(**TINY_VIT, pool="cls"),
          twin_of(lambda: torch_impl.ViT(**TINY_VIT, pool="cls")), sample("typical", (2, 1, 4, 4)), perturb=0.5),
    layer("lstm-classifier", lambda: scratch.LSTMClassifier(**TINY_CLASSIFIER),
          twin_of(lambda: torch_impl.LSTMClassifier(**TINY_CLASSIFIER)), sample("typical", (2, 1, 4, 4)),
          sample("flattened-batch-of-1", (1, 16)), perturb=0.5,
          errors=(error("rows of another width", lambda: scratch.LSTMClassifier()(torch.zeros(2, 30)), ValueError,
                        "in steps of 28 values"),)),
    layer("vit-28x28-mean", scratch.ViT, twin_of(torch_impl.ViT), sample("mnist-batch", (4, 1, 28, 28), **BIG),
          perturb=0.1),
    layer("vit-28x28-cls", lambda: scratch.ViT(pool="cls"), twin_of(lambda: torch_impl.ViT(pool="cls")),
          sample("mnist-batch", (4, 1, 28, 28), **BIG), perturb=0.1),
    layer("lstm-classifier-28x28", scratch.LSTMClassifier, twin_of(torch_impl.LSTMClassifier),
          sample("mnist-batch", (4, 1, 28, 28), **BIG)),
]

LOSSES = [
    OpInfo(name, "loss", (), (sample("typical", (6, 10)), sample("batch-of-1", (1, 10)),
                              sample("huge-logits", (3, 10), values="huge", finite_differences=False,
                                     why="logits of 1e4: the loss is linear there, its slopes 0 or 1/B, "
                                         "rounding swamps a finite difference")),
           scratch.LOSSES[name], torch_impl.LOSSES[name], errors=LOSS_ERRORS[name])
    for name in scratch.LOSSES
]


# ---------------------------------------------------------------------- the engine's ops

V = Value  # for covers

ENGINE_OPS = [
    engine_op("add", lambda a, b: a + b, sample("broadcast", (3, 4), (4,)), sample("same-shape", (2, 3), (2, 3)),
              covers=(V.__add__,)),
    engine_op("add-number", lambda a: 2.5 + a, sample("typical", (3, 4)), covers=(V.__radd__,)),
    engine_op("sub", lambda a, b: a - b, sample("broadcast-both", (3, 1), (1, 4)), covers=(V.__sub__,)),
    engine_op("sub-from-number", lambda a: 1 - a, sample("typical", (3, 4)), covers=(V.__rsub__,)),
    engine_op("mul", lambda a, b: a * b, sample("broadcast", (2, 3, 4), (3, 1)), covers=(V.__mul__,)),
    engine_op("mul-number", lambda a: a * -3.0, sample("typical", (3, 4)), covers=(V.__mul__,)),
    engine_op("number-mul", lambda a: -3.0 * a, sample("typical", (3, 4)), covers=(V.__rmul__,)),
    engine_op("div", lambda a, b: a / b, sample("broadcast", (3, 4), (4,), values="positive"),
              covers=(V.__truediv__,)),
    engine_op("number-div", lambda a: 2.0 / a, sample("typical", (3, 4), values="positive"),
              covers=(V.__rtruediv__,)),
    engine_op("neg", lambda a: -a, sample("typical", (3, 4)), covers=(V.__neg__,)),
    engine_op("pow-integer", lambda a: a ** 3, sample("typical", (3, 4)), covers=(V.__pow__,)),
    engine_op("pow-fraction", lambda a: a ** 0.5, sample("typical", (3, 4), values="positive"), covers=(V.__pow__,)),
    # 0^0: torch's gradient is 0, not nan
    engine_op("pow-zero", lambda a: (a * 0.0) ** 0, sample("typical", (3, 4)), covers=(V.__pow__,)),
    engine_op("pow-value", lambda a, b: a ** b, sample("broadcast", (3, 4), (1, 4), values="positive"),
              covers=(V.__pow__,)),
    engine_op("number-pow", lambda a: 2.0 ** a, sample("typical", (3, 4)), covers=(V.__rpow__,)),
    engine_op("matmul", lambda a, b: a @ b, sample("typical", (3, 5), (5, 2)), sample("one-row", (1, 5), (5, 3)),
              covers=(V.__matmul__,)),
    engine_op("matmul-batched", lambda a, b: a @ b, sample("typical", (2, 3, 5), (5, 4)), covers=(V.__matmul__,)),
    engine_op("matmul-batch-broadcast", lambda a, b: a @ b, sample("typical", (2, 1, 3, 5), (4, 5, 2)),
              sample("both-sides", (2, 1, 3, 5), (1, 4, 5, 2)), sample("3d", (2, 3, 5), (2, 5, 4)),
              covers=(V.__matmul__,)),
    engine_op("tensor-matmul", lambda a: torch.linspace(-1, 1, 12, dtype=a.dtype).reshape(3, 4).to(
        (a.data if isinstance(a, Value) else a).device) @ a, sample("typical", (4, 2)), covers=(V.__rmatmul__,)),
    engine_op("sum-all", lambda a: a.sum(), sample("typical", (3, 4)), covers=(V.sum,)),
    engine_op("sum-dim", lambda a: a.sum(dim=1), sample("typical", (2, 3, 4)), covers=(V.sum,)),
    engine_op("sum-dims-keepdim", lambda a: a.sum(dim=(0, 2), keepdim=True), sample("typical", (2, 3, 4)),
              covers=(V.sum,)),
    # a 0-dim value has one dim to name (0 or -1), and reducing over it changes nothing
    engine_op("sum-dim0-of-0d", lambda a: a.sum(dim=0), sample("0d", ()), covers=(V.sum,)),
    engine_op("sum-dim-1-keepdim-of-0d", lambda a: a.sum(dim=-1, keepdim=True), sample("0d", ()), covers=(V.sum,)),
    engine_op("mean-all", lambda a: a.mean(), sample("typical", (3, 4)), covers=(V.mean,)),
    engine_op("mean-dim", lambda a: a.mean(dim=-1), sample("typical", (2, 3, 4)), covers=(V.mean,)),
    engine_op("mean-dim-keepdim", lambda a: a.mean(dim=0, keepdim=True), sample("typical", (3, 4)), covers=(V.mean,)),
    engine_op("mean-dim0-of-0d", lambda a: a.mean(dim=0), sample("0d", ()), covers=(V.mean,)),
    engine_op("mean-dim-1-of-0d", lambda a: a.mean(dim=-1), sample("0d", ()), covers=(V.mean,)),
    engine_op("reshape", lambda a: a.reshape(4, 6), sample("typical", (2, 3, 4)), covers=(V.reshape,)),
    engine_op("transpose", lambda a: a.transpose(0, 2), sample("typical", (2, 3, 4)), covers=(V.transpose,)),
    engine_op("transpose-4d", lambda a: a.transpose(-2, -1), sample("typical", (2, 3, 4, 5)), covers=(V.transpose,)),
    engine_op("T", lambda a: a.T, sample("typical", (3, 4)), covers=(V.T,)),
    engine_op("permute", lambda a: a.permute(2, 0, 1), sample("typical", (2, 3, 4)), covers=(V.permute,)),
    engine_op("permute-4d", lambda a: a.permute(0, 2, -1, 1), sample("typical", (2, 3, 4, 5)), covers=(V.permute,)),
    engine_op("flatten", lambda a: a.flatten(1), sample("typical", (2, 3, 4, 5)), covers=(V.flatten,)),
    engine_op("expand", lambda a: a.expand(2, 3, 4), sample("typical", (3, 1)), sample("same-shape", (2, 3, 4)),
              covers=(V.expand,)),
    engine_op("flatten-middle", lambda a: a.flatten(1, 2), sample("typical", (2, 3, 4, 5)), covers=(V.flatten,)),
    engine_op("getitem-time-step", lambda a: a[:, 1, :], sample("typical", (2, 3, 4)), covers=(V.__getitem__,)),
    engine_op("getitem-slice", lambda a: a[:, :, 1:3], sample("typical", (2, 3, 4)), covers=(V.__getitem__,)),
    engine_op("getitem-int-ellipsis-none-step", lambda a: a[1, ..., None, ::2], sample("typical", (2, 3, 5)),
              covers=(V.__getitem__,)),
    engine_op("unfold", lambda a: a.unfold(1, 3, 2), sample("typical", (2, 8, 3)), covers=(V.unfold,)),
    engine_op("unfold-overlapping", lambda a: a.unfold(-1, 3, 1), sample("typical", (2, 6)), covers=(V.unfold,)),
    engine_op("pad2d", lambda a: a.pad2d(2), sample("typical", (2, 3, 4, 5)), covers=(V.pad2d,),
              twin=lambda a: functional.pad(a, (2, 2, 2, 2))),
    # a twice: its shares add up
    engine_op("cat", lambda a, b: cat([a, b, a * 2.0], dim=1), sample("typical", (2, 3, 4), (2, 1, 4)),
              covers=(cat,), twin=lambda a, b: torch.cat([a, b, a * 2.0], dim=1)),
    engine_op("stack", lambda a, b: stack([a, b, a * 2.0], dim=-1), sample("typical", (2, 3), (2, 3)),
              covers=(stack,), twin=lambda a, b: torch.stack([a, b, a * 2.0], dim=-1)),
    engine_op("exp", lambda a: a.exp(), sample("typical", (3, 4)), covers=(V.exp,)),
    engine_op("log", lambda a: a.log(), sample("typical", (3, 4), values="positive"), covers=(V.log,)),
    engine_op("sqrt", lambda a: a.sqrt(), sample("typical", (3, 4), values="positive"), covers=(V.sqrt,)),
    engine_op("rsqrt", lambda a: a.rsqrt(), sample("typical", (3, 4), values="positive"), covers=(V.rsqrt,)),
    engine_op("relu", lambda a: a.relu(), sample("typical", (3, 4), values="away"),
              sample("zeros", (3, 4), values="small-integers", kink=True), covers=(V.relu,), kinked=True),
    engine_op("sigmoid", lambda a: a.sigmoid(), sample("typical", (3, 4)),
              sample("saturated", (3, 4), values="large", **SATURATED), covers=(V.sigmoid,)),
    engine_op("tanh", lambda a: a.tanh(), sample("typical", (3, 4)),
              sample("saturated", (3, 4), values="large", **SATURATED), covers=(V.tanh,)),
    engine_op("gelu", lambda a: a.gelu(), sample("typical", (3, 4)), covers=(V.gelu,), twin=functional.gelu),
    engine_op("log_softmax", lambda a: a.log_softmax(dim=1), sample("typical", (3, 5)),
              sample("one-winner", (3, 5), values="large", **SATURATED), covers=(V.log_softmax,)),
    engine_op("log_softmax-dim0", lambda a: a.log_softmax(dim=0), sample("typical", (3, 5)), covers=(V.log_softmax,)),
    engine_op("softmax", lambda a: a.softmax(dim=-1), sample("typical", (3, 5)),
              sample("one-winner", (3, 5), values="large", **SATURATED), covers=(V.softmax,)),
    engine_op("softmax-dim0", lambda a: a.softmax(dim=0), sample("typical", (3, 5)), covers=(V.softmax,)),
    engine_op("max-dim", lambda a: a.max(dim=1).values, sample("typical", (2, 3, 4)),
              sample("ties", (2, 3, 7), values="small-integers", kink=True), covers=(V.max,), kinked=True),
    engine_op("max-dim-keepdim", lambda a: a.max(dim=-1, keepdim=True)[0], sample("typical", (2, 3, 4)),
              sample("ties", (2, 3, 7), values="small-integers", kink=True), covers=(V.max,), kinked=True),
    engine_op("max-of-0d", lambda a: a.max(dim=0).values, sample("0d", ()), covers=(V.max,)),
    engine_op("conv2d", conv2d, sample("typical", (2, 3, 6, 6), (4, 3, 3, 3), (4,)),
              sample("batch-of-1", (1, 3, 5, 5), (2, 3, 3, 3), (2,)), covers=(conv2d,), twin=functional.conv2d),
    engine_op("conv2d-stride-padding", lambda x, w, b: conv2d(x, w, b, stride=2, padding=1),
              sample("typical", (2, 2, 7, 7), (3, 2, 3, 3), (3,)), covers=(conv2d,),
              twin=lambda x, w, b: functional.conv2d(x, w, b, stride=2, padding=1)),
    engine_op("conv2d-no-bias-2x3-kernel", lambda x, w: conv2d(x, w), sample("typical", (1, 2, 5, 6), (3, 2, 2, 3)),
              covers=(conv2d,), twin=functional.conv2d),
    engine_op("max_pool2d", lambda x: max_pool2d(x, 2), sample("typical", (2, 3, 6, 6)),
              sample("ties", (2, 3, 7, 7), values="small-integers", kink=True), covers=(max_pool2d,),
              twin=lambda x: functional.max_pool2d(x, 2), kinked=True),
    engine_op("max_pool2d-overlapping", lambda x: max_pool2d(x, 3, stride=2), sample("typical", (2, 2, 7, 7)),
              sample("ties", (2, 3, 7, 7), values="small-integers", kink=True), covers=(max_pool2d,),
              twin=lambda x: functional.max_pool2d(x, 3, stride=2), kinked=True),
    engine_op("avg_pool2d", lambda x: avg_pool2d(x, 2), sample("typical", (2, 3, 6, 7)), covers=(avg_pool2d,),
              twin=lambda x: functional.avg_pool2d(x, 2)),
    engine_op("avg_pool2d-overlapping", lambda x: avg_pool2d(x, 3, stride=2), sample("typical", (2, 2, 7, 7)),
              covers=(avg_pool2d,), twin=lambda x: functional.avg_pool2d(x, 3, stride=2)),
    engine_op("layer_norm", lambda x, w, b: engine_nn.layer_norm(x, 1, w, b), sample("typical", (3, 4, 6), (6,), (6,)),
              covers=(engine_nn.layer_norm,), twin=lambda x, w, b: functional.layer_norm(x, (6,), w, b)),
    engine_op("cross_entropy", lambda z: cross_entropy(z, targets_for(z)), sample("typical", (6, 10)),
              sample("huge-logits", (3, 10), values="huge", finite_differences=False,
                     why="logits of 1e4: slopes 0 or 1/B, rounding swamps a finite difference"),
              covers=(cross_entropy, scratch.engine.one_hot),
              twin=lambda z: functional.cross_entropy(z, targets_for(z))),
    engine_op("mse_loss", lambda z: mse_loss(z, targets_for(z)), sample("typical", (6, 10)), covers=(mse_loss,),
              twin=lambda z: one_hot_mse(z, targets_for(z))),
]


# ---------------------------------------------------------------------- the engine's layers


def engine_shape_error(make, x_shape, match) -> tuple[ErrorCase]:
    return (error("wrong input shape", lambda: make()(Value(torch.zeros(x_shape))), ValueError, match),)


ENGINE_LAYERS = [
    engine_layer("engine-linear-3d-input", lambda: engine_nn.Linear(5, 4), lambda: nn.Linear(5, 4),
                 sample("typical", (2, 3, 5)), sample("batch-of-1", (1, 5))),
    engine_layer("engine-tanh", lambda: engine_nn.Activation("tanh"), nn.Tanh, sample("typical", (3, 4))),
    engine_layer("engine-conv2d", lambda: engine_nn.Conv2d(3, 4, 3, padding=1), lambda: nn.Conv2d(3, 4, 3, padding=1),
                 sample("typical", (2, 3, 8, 8)), sample("batch-of-1", (1, 3, 5, 5)),
                 errors=engine_shape_error(lambda: engine_nn.Conv2d(3, 4, 3), (2, 1, 8, 8),
                                           r"expects input \[batch, 3, height, width\]")),
    engine_layer("engine-conv2d-stride-2-no-bias", lambda: engine_nn.Conv2d(2, 3, 5, stride=2, padding=2, bias=False),
                 lambda: nn.Conv2d(2, 3, 5, stride=2, padding=2, bias=False), sample("typical", (2, 2, 9, 9))),
    engine_layer("engine-maxpool2d", lambda: engine_nn.MaxPool2d(2), lambda: nn.MaxPool2d(2),
                 sample("typical", (2, 3, 8, 8)), sample("ties", (2, 3, 8, 8), values="small-integers", kink=True),
                 kinked=True, errors=engine_shape_error(lambda: engine_nn.MaxPool2d(2), (8, 8),
                                                        r"expects input \[batch, channels, height, width\]")),
    engine_layer("engine-maxpool2d-3-stride-2", lambda: engine_nn.MaxPool2d(3, 2), lambda: nn.MaxPool2d(3, 2),
                 sample("typical", (2, 2, 9, 9)), sample("ties", (2, 2, 9, 9), values="small-integers", kink=True),
                 kinked=True),
    engine_layer("engine-avgpool2d", lambda: engine_nn.AvgPool2d(2), lambda: nn.AvgPool2d(2),
                 sample("typical", (2, 3, 8, 9))),
    engine_layer("engine-flatten", engine_nn.Flatten, nn.Flatten, sample("typical", (2, 3, 4, 4))),
    engine_layer("engine-layernorm", lambda: engine_nn.LayerNorm(6), lambda: nn.LayerNorm(6),
                 sample("typical", (2, 5, 6)), sample("batch-of-1", (1, 6)),
                 errors=engine_shape_error(lambda: engine_nn.LayerNorm(6), (2, 5), r"expects input \[\.\.\., 6\]")),
    engine_layer("engine-layernorm-2d", lambda: engine_nn.LayerNorm((4, 6)), lambda: nn.LayerNorm((4, 6)),
                 sample("typical", (3, 4, 6))),
    engine_layer("engine-attention", lambda: engine_nn.MultiheadAttention(8, 2),
                 lambda: nn.MultiheadAttention(8, 2, batch_first=True), sample("typical", (3, 5, 8)),
                 sample("batch-of-1", (1, 4, 8)), twin_call=lambda m, x: [m(x, x, x, need_weights=False)[0]],
                 errors=(*engine_shape_error(lambda: engine_nn.MultiheadAttention(8, 2), (2, 8),
                                             r"expects input \[batch, time, 8\]"),
                         error("heads do not divide", lambda: engine_nn.MultiheadAttention(10, 3), ValueError,
                               "divisible by num_heads"))),
    engine_layer("engine-lstm", lambda: engine_nn.LSTM(4, 6), lambda: nn.LSTM(4, 6, batch_first=True),
                 sample("typical", (2, 4, 4)), sample("one-step", (2, 1, 4)), call=lstm_outputs,
                 errors=engine_shape_error(lambda: engine_nn.LSTM(4, 6), (2, 4), r"expects input \[batch, time, 4\]")),
    engine_layer("engine-transformer-block", lambda: engine_nn.TransformerEncoderLayer(6, 2, 8),
                 lambda: torch_impl.TransformerEncoderLayer(6, 2, 8), sample("typical", (2, 4, 6))),
    engine_layer("engine-mlp", lambda: engine_nn.MLP(**SMALL_MLP), lambda: torch_impl.MLP(**SMALL_MLP),
                 sample("typical", (4, 6), values="away"),
                 errors=(error("unknown activation", lambda: engine_nn.MLP(activation="gelu"), ValueError,
                               "unknown activation"),)),
    engine_layer("engine-cnn", lambda: engine_nn.CNN(**ENGINE_CNN), lambda: torch_impl.CNN(**ENGINE_CNN),
                 sample("typical", (2, 1, 8, 8)), sample("flattened", (1, 64))),
    engine_layer("engine-vit", lambda: engine_nn.ViT(**TINY_VIT, pool="cls"),
                 lambda: torch_impl.ViT(**TINY_VIT, pool="cls"), sample("typical", (2, 1, 4, 4))),
    engine_layer("engine-lstm-classifier", lambda: engine_nn.LSTMClassifier(**TINY_CLASSIFIER),
                 lambda: torch_impl.LSTMClassifier(**TINY_CLASSIFIER), sample("typical", (2, 16))),
]

OPS = [*LAYERS, *LOSSES, *ENGINE_OPS, *ENGINE_LAYERS]
OPS_BY_NAME = {op.name: op for op in OPS}
assert len(OPS_BY_NAME) == len(OPS), "two entries share a name"
