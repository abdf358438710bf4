"""The scratch CNN's twin: the same layers, names and shapes, as an ordinary `torch.nn.Module`.

    >>> from torch_impl.cnn import CNN
    >>> model = CNN()                 # LeNet-5 (ReLU, max pooling); parameters "layers.0.weight", ...
    >>> loss = nn.CrossEntropyLoss()(model(x), y); loss.backward()   # autograd fills .grad
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from scratch.cnn import POOL_SIZE, plan_stages  # plain arithmetic on the spec: both twins accept the same specs
from torch_impl.activations import ACTIVATIONS

POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class CNN(nn.Module):
    """Conv2d -> [BatchNorm2d] -> activation -> 2x2 pooling per stage, Flatten, then Linear layers.

    The layer order (and so the parameter names) of scratch.cnn.CNN; see it for the arguments.
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
        layers: list[nn.Module] = []
        self.stage_ends: list[int] = []
        for stage in stages:
            layers.append(nn.Conv2d(stage.in_channels, stage.out_channels, kernel_size, padding=stage.padding,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(stage.out_channels))
            layers.append(ACTIVATIONS[activation]())
            self.stage_ends.append(len(layers) - 1)
            layers.append(POOLS[pool](POOL_SIZE))
        layers.append(nn.Flatten())
        sizes = [stages[-1].out_channels * stages[-1].size ** 2, *fc_sizes]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(nn.Linear(fan_in, fan_out))
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def as_images(self, x: Tensor) -> Tensor:
        c, s = self.in_channels, self.image_size
        if x.dim() == 2 and x.shape[1] == c * s * s:
            return x.reshape(-1, c, s, s)
        if x.dim() == 4 and tuple(x.shape[1:]) == (c, s, s):
            return x
        raise ValueError(f"CNN expects images of shape [batch, {c}, {s}, {s}] (or flattened, [batch, {c * s * s}]), "
                         f"got {list(x.shape)}; build it with in_channels and image_size matching the data")

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.as_images(x))

    @torch.no_grad()
    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """The output of each conv stage's activation, in evaluation mode (the training mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            h, maps = self.as_images(x), []
            for index, layer in enumerate(self.layers[:self.stage_ends[-1] + 1]):
                h = layer(h)
                if index in self.stage_ends:
                    maps.append(h)
        finally:
            self.train(was_training)
        return maps
