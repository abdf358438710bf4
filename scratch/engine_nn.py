"""The lesson's MLP once more, built on the scratch autograd engine: only the forward pass is written.

scratch/mlp.py spells out every backward formula; here the engine (scratch/engine.py)
derives them from the forward pass. Same spec, same parameter names ("layers.0.weight",
"layers.0.bias", "layers.2.weight", ...), same initialisation, so from one seed all three
networks (hand-derived, engine, torch) start bit-identical.

    >>> import torch
    >>> from scratch.engine import Value, cross_entropy
    >>> from scratch.engine_nn import MLP
    >>> torch.manual_seed(0); model = MLP()                   # 784-16-16-10, ReLU
    >>> loss = cross_entropy(model(Value(x, name="x")), y)    # x: [B, 784], y: [B]
    >>> model.zero_grad(); loss.backward()
    >>> model.layers[0].weight.grad.shape                     # dL/dW of the first layer
    torch.Size([16, 784])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from scratch.engine import Value
from scratch.linear import linear_init_

ACTIVATIONS = ("relu", "sigmoid", "tanh")  # names of Value methods


class Linear:
    """out = x @ W^T + b: a transpose, a matmul and a broadcasting add; no backward written here.

    The engine works out dW = dout^T @ x (via the matmul and transpose rules) and
    db = sum over the batch of dout (broadcasting b over the batch rows, undone).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        weight, bias = torch.empty(out_features, in_features), torch.empty(out_features)
        linear_init_(weight, bias)  # the same draws, in the same order, as scratch.Linear and nn.Linear
        self.weight = Value(weight, requires_grad=True, name="weight")  # out,in
        self.bias = Value(bias, requires_grad=True, name="bias")  # out

    def __call__(self, x: Value) -> Value:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}) expects input of shape [batch, {self.in_features}], "
                f"got {list(x.shape)}; flatten 28x28 images to 784 values first"
            )
        return x @ self.weight.T + self.bias  # B,out

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        yield "weight", self.weight
        yield "bias", self.bias

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"


class Activation:
    """An activation as a layer without parameters: calls the Value method of that name (relu, ...)."""

    def __init__(self, name: str) -> None:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.name = name

    def __call__(self, x: Value) -> Value:
        return getattr(x, self.name)()

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        return iter(())

    def __repr__(self) -> str:
        return self.name.capitalize() if self.name != "relu" else "ReLU"


class MLP:
    """Linear -> activation for each hidden layer, then a Linear output layer (logits).

    forward:   h_0 = x;  h_k = act(h_{k-1} W_k^T + b_k);  logits = h_L W_out^T + b_out
    backward:  loss.backward(), on the graph this forward pass recorded.
    """

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (16, 16),
        activation: str = "relu",
        num_classes: int = 10,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        sizes = [input_size, *hidden_sizes]
        self.layers: list[Linear | Activation] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            self.layers += [Linear(fan_in, fan_out), Activation(activation)]
        self.layers.append(Linear(sizes[-1], num_classes))
        for name, p in self.named_parameters():
            p.name = name  # graph printouts then say "layers.0.weight"

    def __call__(self, x: Value) -> Value:
        for layer in self.layers:
            x = layer(x)
        return x  # B,classes

    forward = __call__

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                yield f"layers.{i}.{name}", p

    def parameters(self) -> list[Value]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MLP:
        """Move parameters and their gradient buffers; create optimizers after this call."""
        for p in self.parameters():
            p.data = p.data.to(device=device, dtype=dtype)
            p.grad = p.grad.to(device=device, dtype=dtype)
        return self

    def state_dict(self) -> dict[str, Tensor]:
        return {name: p.data.clone() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Copy values in place, so an optimizer holding these tensors keeps working."""
        own = dict(self.named_parameters())
        if set(own) != set(state):
            raise KeyError(f"state dict keys {sorted(state)} do not match this model's parameters {sorted(own)}")
        for name, p in own.items():
            if tuple(state[name].shape) != tuple(p.shape):
                raise ValueError(f"parameter {name!r}: expected shape {list(p.shape)}, got {list(state[name].shape)}")
            p.data.copy_(state[name])

    def __repr__(self) -> str:
        return f"MLP({', '.join(map(repr, self.layers))}) on the autograd engine"
