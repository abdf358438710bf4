"""A convolutional network, built by hand from a spec: conv stages, then fully connected layers.

The default is LeNet-5 as it is usually built today (ReLU and max pooling):

    image [B, 1, 28, 28]
    -> Conv2d(1, 6, 5, padding=2) -> ReLU -> MaxPool2d(2)      [B, 6, 14, 14]
    -> Conv2d(6, 16, 5)           -> ReLU -> MaxPool2d(2)      [B, 16, 5, 5]
    -> Flatten                                                 [B, 400]
    -> Linear(400, 120) -> ReLU -> Linear(120, 84) -> ReLU -> Linear(84, 10)   logits [B, 10]

    >>> from scratch.cnn import CNN
    >>> model = CNN()
    >>> logits = model(x)                       # x: [B, 1, 28, 28], or flattened [B, 784]
    >>> dx = model.backward(dlogits)            # fills every layer's d<param>; dx has x's shape
    >>> model.backward(dlogits, input_grad=False)   # the same without dx (training: faster)
    >>> maps = model.feature_maps(x)            # [B, 6, 28, 28], [B, 16, 10, 10]: each stage's activations

Layer k of `layers` has the same index and parameter names as in `torch_impl.cnn.CNN`
("layers.0.weight", "layers.0.bias", "layers.3.weight", ...), so state dicts copy across.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from scratch.activations import ACTIVATIONS
from scratch.batchnorm import BatchNorm2d
from scratch.conv import Conv2d
from scratch.linear import Linear
from scratch.module import Module, Sequential
from scratch.pooling import AvgPool2d, MaxPool2d
from scratch.shape import Flatten

POOLS: dict[str, type[Module]] = {"max": MaxPool2d, "avg": AvgPool2d}
POOL_SIZE = 2  # every stage ends in 2x2 pooling with stride 2: it halves the feature maps' sides
# (pooling, activation) pairs that commute exactly, values and gradients: CNN applies such a pair pooling first
POOL_FIRST = {("max", "relu")}


@dataclass(frozen=True)
class ConvStage:
    in_channels: int
    out_channels: int
    padding: int
    conv_size: int  # side of the feature maps after the convolution
    size: int  # side after the pooling: what the next stage (or Flatten) receives


def plan_stages(in_channels: int, image_size: int, channels: Sequence[int], kernel_size: int,
                padding: int | Sequence[int], pool: str) -> list[ConvStage]:
    """Check a CNN spec and work out each conv stage's channels, padding and feature-map sizes.

    Shared by scratch.cnn.CNN and torch_impl.cnn.CNN, so both accept and refuse the same specs with
    the same messages. `padding` is one int for every stage, or a sequence with one entry per stage.
    """
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
    for name, value in (("in_channels", in_channels), ("image_size", image_size), ("kernel_size", kernel_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"CNN: {name} must be a positive int, got {value!r}")
    channels = tuple(channels)
    if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
        raise ValueError(f"CNN: channels must be one positive int per conv stage, e.g. (6, 16), got {channels!r}")
    paddings = (padding,) * len(channels) if isinstance(padding, int) else tuple(padding)
    if len(paddings) != len(channels):
        raise ValueError(f"CNN: padding {tuple(paddings)} has {len(paddings)} entries for {len(channels)} conv stages "
                         f"(channels={channels}); give one padding per stage, or one int for all")
    if any(not isinstance(p, int) or p < 0 for p in paddings):
        raise ValueError(f"CNN: paddings must be ints >= 0, got {paddings!r}")
    stages, size, fan_in = [], image_size, in_channels
    for number, (out_channels, pad) in enumerate(zip(channels, paddings, strict=True), start=1):
        conv_size = size + 2 * pad - kernel_size + 1
        if conv_size < POOL_SIZE:
            raise ValueError(f"CNN: conv stage {number} ({kernel_size}x{kernel_size} kernel, padding {pad}) gets "
                             f"{size}x{size} feature maps and would leave {conv_size}x{conv_size}, too small for "
                             f"its {POOL_SIZE}x{POOL_SIZE} pooling; use a larger image_size, a smaller kernel_size, "
                             "more padding or fewer stages")
        stages.append(ConvStage(fan_in, out_channels, pad, conv_size, conv_size // POOL_SIZE))
        size, fan_in = conv_size // POOL_SIZE, out_channels
    return stages


class CNN(Module):
    """Conv stages (Conv2d -> [BatchNorm2d] -> activation -> 2x2 pooling), Flatten, then fully connected layers.

    forward:   h_0 = x;  h_k = pool(act(conv_k(h_{k-1})))  for each stage;  then Flatten and an MLP to logits
    backward:  the chain rule, layer by layer from the output back to the input (see Sequential).

    channels: output channels of each conv stage; padding: one int for every stage, or one per stage;
    every convolution has stride 1 and a kernel_size x kernel_size kernel. With batch_norm=True each
    convolution has no bias (batch norm's own bias replaces it). fc_sizes: the hidden fully connected
    layers between Flatten and the final Linear(.., num_classes).

    Pooling before ReLU: max_{window} relu(h) = relu(max_{window} h) exactly (ReLU never rounds, and keeps
    the order of the values), so forward and backward apply a stage's ReLU and max pooling the other way
    round, pooling first: ReLU then works on a quarter of the numbers. The gradients are exactly those of
    ReLU then pooling: where the window's maximum is positive, both send dout to the same pixel (the first
    maximum), and where it is not, both send 0 (ReLU's derivative there). The layers keep torch's order and
    indices (`layers` reads conv, ReLU, pooling; run one by one they give the same numbers), and
    tests/test_conv.py checks the logits and every gradient bit for bit against the other order. Pairs
    that do not commute exactly (other activations, average pooling) run in their order.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        channels: Sequence[int] = (6, 16),
        kernel_size: int = 5,
        padding: int | Sequence[int] = (2, 0),
        pool: str = "max",
        batch_norm: bool = False,
        fc_sizes: Sequence[int] = (120, 84),
        activation: str = "relu",
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        stages = plan_stages(in_channels, image_size, channels, kernel_size, padding, pool)
        self.in_channels, self.image_size = in_channels, image_size
        layers: list[Module] = []
        self.stage_ends: list[int] = []  # index in `layers` of each stage's activation (see feature_maps)
        for stage in stages:
            layers.append(Conv2d(stage.in_channels, stage.out_channels, kernel_size, padding=stage.padding,
                                 bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm2d(stage.out_channels))
            layers.append(ACTIVATIONS[activation]())
            self.stage_ends.append(len(layers) - 1)
            layers.append(POOLS[pool](POOL_SIZE))
        layers.append(Flatten())
        sizes = [stages[-1].out_channels * stages[-1].size ** 2, *fc_sizes]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(Linear(fan_in, fan_out))
            layers.append(ACTIVATIONS[activation]())
        layers.append(Linear(sizes[-1], num_classes))
        self.layers = Sequential(*layers)
        # The order forward applies the layers in: an index, or (activation, pooling) applied pooling first
        self.plan: list[int | tuple[int, int]] = []
        for i in range(len(layers)):
            if self.plan and self.plan[-1] == i - 1 and i - 1 in self.stage_ends and (pool, activation) in POOL_FIRST:
                self.plan[-1] = (i - 1, i)
            else:
                self.plan.append(i)

    def children(self) -> list[tuple[str, Module]]:
        return [("layers", self.layers)]

    def as_images(self, x: Tensor) -> Tensor:
        """x as [B, C, S, S] images; flattened rows [B, C*S*S] (as the data loader gives them) are reshaped."""
        c, s = self.in_channels, self.image_size
        if x.dim() == 2 and x.shape[1] == c * s * s:
            return x.reshape(-1, c, s, s)  # B,C,S,S
        if x.dim() == 4 and tuple(x.shape[1:]) == (c, s, s):
            return x
        raise ValueError(f"CNN expects images of shape [batch, {c}, {s}, {s}] (or flattened, [batch, {c * s * s}]), "
                         f"got {list(x.shape)}; build it with in_channels and image_size matching the data")

    def forward(self, x: Tensor) -> Tensor:
        self.input_shape = tuple(x.shape)
        h, layers = self.as_images(x), self.layers.layers  # B,C,S,S
        for step in self.plan:
            if isinstance(step, tuple):  # activation and max pooling, pooling first (see the class docstring)
                act, pool = layers[step[0]], layers[step[1]]
                h = act.forward(pool.forward(h))
            else:
                h = layers[step].forward(h)
        return h  # B,num_classes

    def backward(self, dlogits: Tensor, input_grad: bool = True) -> Tensor | None:
        """dL/dx (x's shape), after filling every layer's gradient buffers; input_grad=False skips dL/dx
        and returns None: training never reads the gradient of the images."""
        layers = self.layers.layers
        dout = dlogits  # B,num_classes
        for step in reversed(self.plan[1:]):  # the first layer is always a Conv2d, done below
            if isinstance(step, tuple):  # the reverse of forward's order: the activation's backward first
                dout = layers[step[1]].backward(layers[step[0]].backward(dout))
            else:
                dout = layers[step].backward(dout)
        dx = layers[0].backward(dout, input_grad=input_grad)  # B,C,S,S or None
        return None if dx is None else dx.reshape(self.input_shape)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """The output of each conv stage's activation ([B, channels[k], size, size]), in evaluation mode.

        For plotting what the filters respond to. Runs the conv stages only; the training mode is
        restored afterwards, and the layers' caches hold this batch (run forward again before backward).
        """
        was_training = self.training
        self.eval()
        try:
            h, maps = self.as_images(x), []  # B,C,S,S
            for index, layer in enumerate(self.layers.layers[:self.stage_ends[-1] + 1]):
                h = layer.forward(h)
                if index in self.stage_ends:
                    maps.append(h)
        finally:
            self.train(was_training)
        return maps

    def __repr__(self) -> str:
        inner = ", ".join(type(layer).__name__ for layer in self.layers.layers)
        return f"CNN({inner})"
