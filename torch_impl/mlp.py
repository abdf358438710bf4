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
    """Linear -> activation for each hidden layer, then a Linear output layer (logits).

    With batch_norm and dropout: Linear(bias=False) -> BatchNorm1d -> activation -> Dropout per
    hidden layer, the layer order (and so the parameter names) of scratch.mlp.MLP.
    """

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (16, 16),
        activation: str = "relu",
        num_classes: int = 10,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
        sizes = [input_size, *hidden_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(nn.Linear(fan_in, fan_out, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
