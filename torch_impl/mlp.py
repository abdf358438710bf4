"""The scratch MLP's twin: the same layers, names and shapes, as an ordinary `torch.nn.Module`.

    >>> from torch_impl.mlp import MLP
    >>> model = MLP()                 # 784-16-16-10, ReLU; parameters "layers.0.weight", ...
    >>> loss = nn.CrossEntropyLoss()(model(x), y); loss.backward()   # autograd fills .grad
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from torch_impl.activations import ACTIVATIONS


class MLP(nn.Module):
    """Linear -> activation for each hidden layer, then a Linear output layer (logits)."""

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (16, 16),
        activation: str = "relu",
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        sizes = [input_size, *hidden_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
