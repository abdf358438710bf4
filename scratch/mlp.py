"""The multilayer perceptron, built by hand from a spec: input layer, hidden layers, output layer.

The lesson's network is the default: 784 input neurons (a 28x28 digit flattened row by
row), two hidden layers of 16 ReLU neurons, 10 output neurons (one per digit):

    >>> from scratch.mlp import MLP
    >>> model = MLP()                       # 784-16-16-10, ReLU
    >>> logits = model(x)                   # x: [B, 784]  ->  [B, 10]
    >>> dx = model.backward(dlogits)        # fills model.layers[k].dweight / .dbias
    >>> model.backward(dlogits, input_grad=False)   # the same without dx (training: faster)

Layer k of `layers` has the same index and parameter names as in `torch_impl.mlp.MLP`
("layers.0.weight", "layers.0.bias", "layers.2.weight", ...), so state dicts copy across.

With batch_norm=True and dropout=p each hidden layer is
Linear (without bias: batch norm's own bias replaces it) -> BatchNorm1d -> activation -> Dropout(p):

    >>> model = MLP(hidden_sizes=(256, 128), batch_norm=True, dropout=0.2)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from scratch.activations import ACTIVATIONS
from scratch.batchnorm import BatchNorm1d
from scratch.dropout import Dropout
from scratch.linear import Linear
from scratch.module import Module, Sequential


class MLP(Module):
    """Fully connected layers with an activation after each hidden layer; raw scores (logits) out.

    forward:   h_0 = x;  h_k = act(h_{k-1} W_k^T + b_k) for hidden layers;  logits = h_L W_out^T + b_out
    backward:  the chain rule, layer by layer from the output back to the input (see Sequential).
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
        layers: list[Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(Linear(fan_in, fan_out, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm1d(fan_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout))
        layers.append(Linear(sizes[-1], num_classes))
        self.layers = Sequential(*layers)

    def children(self) -> list[tuple[str, Module]]:
        return [("layers", self.layers)]

    def forward(self, x: Tensor) -> Tensor:
        return self.layers.forward(x)  # B,784 -> B,10

    def backward(self, dlogits: Tensor, input_grad: bool = True) -> Tensor | None:
        """dL/dx (B,784), after filling every layer's gradient buffers; input_grad=False skips dL/dx
        and returns None: training never reads the gradient of the images, the largest one to compute."""
        if input_grad:
            return self.layers.backward(dlogits)  # B,10 -> B,784
        first, *rest = self.layers.layers  # the first layer is always a Linear
        dout = dlogits  # B,10
        for layer in reversed(rest):
            dout = layer.backward(dout)
        return first.backward(dout, input_grad=False)

    def __repr__(self) -> str:
        inner = ", ".join(type(layer).__name__ for layer in self.layers.layers)
        return f"MLP({inner})"
