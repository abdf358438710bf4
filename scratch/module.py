"""The scratch `Module`: parameters, their gradients, and a `Sequential` container.

A scratch layer is a pair of methods on plain tensors:

    out = layer.forward(x)        # caches exactly what backward needs
    dx  = layer.backward(dout)    # returns dL/dx, stores dL/d<param> as d<param>

There is no autograd tape: every gradient is computed by a formula written in the
layer's own `backward`. Parameters keep the names and shapes of PyTorch's `nn`
(`weight`, `bias`), so a state dict copies across to `torch_impl` unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class Module:
    """Base class: a layer with named parameters and same-shaped gradients.

    Subclasses list their parameter names in `param_names`; for each name `p` the
    layer holds the tensor `self.p` and its gradient `self.dp`, a buffer of the same
    shape that `backward` overwrites (not accumulates: one backward per step).
    Buffers (`buffer_names`) are state that is not trained by gradients, such as batch
    norm's running statistics; they follow the module in `to()`, as torch's buffers do.
    Workspaces (`workspace`) are tensors a layer computes into and reads only itself, kept
    from call to call.
    """

    param_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.training = True
        self.workspaces: dict[str, Tensor] = {}

    def workspace(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialized tensor of this shape, in like's dtype and on its device (and in like's memory layout when
        it has like's shape), the same one on every call with the same name and shape (its contents are what the
        last call left there).

        For what a layer writes and reads only itself (caches, intermediate results), never for what it
        returns. Why: a tensor of a few MB allocated and freed every step is handed back to the operating
        system and mapped in again on the next step, one page fault per 4 KB written; measured on this CPU
        (docs/recurrence.md), the LSTM's step at batch 512 spent a third of its time in page faults.
        """
        workspaces = self.__dict__.setdefault("workspaces", {})  # also for a subclass that skipped __init__
        as_like = tuple(shape) == tuple(like.shape)  # then laid out as like is (a batch-last input, say)
        kept = workspaces.get(name)
        if kept is None or kept.shape != shape or kept.dtype != like.dtype or kept.device != like.device \
                or (as_like and kept.stride() != like.stride()):
            kept = workspaces[name] = torch.empty_like(like) if as_like else like.new_empty(shape)
        return kept

    def step_views(self, name: str, bases: tuple[Tensor, ...], make):
        """make(*bases), made once and kept while every base is the same tensor (a workspace, say): the
        per-step views a loop over steps indexes (`unbind`), which cost a call each when made afresh.

        Why: an LSTM's 28 steps index about twenty tensors each; made on every call, those views were about
        600 of a training step's calls (torch.profiler's select, in docs/recurrence.md's profiles).
        """
        kept = self.__dict__.setdefault("views", {}).get(name)
        if kept is None or len(kept[0]) != len(bases) or any(a is not b for a, b in zip(kept[0], bases, strict=True)):
            kept = self.views[name] = (bases, make(*bases))  # holds the bases: no other tensor can match them
        return kept[1]

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, dout: Tensor) -> Tensor:
        raise NotImplementedError

    def children(self) -> list[tuple[str, Module]]:
        return []

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name in self.param_names:
            yield prefix + name, getattr(self, name)
        for child_name, child in self.children():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def named_gradients(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """The gradient buffer `d<name>` of every parameter, in `named_parameters` order."""
        for name in self.param_names:
            yield prefix + name, getattr(self, "d" + name)
        for child_name, child in self.children():
            yield from child.named_gradients(f"{prefix}{child_name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name in self.buffer_names:
            yield prefix + name, getattr(self, name)
        for child_name, child in self.children():
            yield from child.named_buffers(f"{prefix}{child_name}.")

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def gradients(self) -> list[Tensor]:
        return [g for _, g in self.named_gradients()]

    def state_dict(self) -> dict[str, Tensor]:
        """Copies of every parameter and buffer, under PyTorch's key names and in its order (each module's
        parameters, then its buffers, then its children's), so `torch_impl` twins load it and the reverse."""
        state = {prefix: t.detach().clone() for prefix, t in self._own_state()}
        for child_name, child in self.children():
            state.update({f"{child_name}.{k}": v for k, v in child.state_dict().items()})
        return state

    def _own_state(self) -> Iterator[tuple[str, Tensor]]:
        for name in self.param_names + self.buffer_names:
            yield name, getattr(self, name)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Copy values in place (parameters and buffers), so an optimizer holding these tensors keeps working."""
        own = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        if set(own) != set(state):
            missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
            raise KeyError(
                f"state dict does not match this model: missing {missing or 'nothing'}, unexpected "
                f"{unexpected or 'nothing'}; build both models from the same spec (sizes, batch norm, ...)"
            )
        for name, t in own.items():
            if tuple(state[name].shape) != tuple(t.shape):
                raise ValueError(f"{name!r}: expected shape {tuple(t.shape)}, got {tuple(state[name].shape)}")
            t.copy_(state[name])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Module:
        """Convert parameters, gradient buffers and buffers in place, as PyTorch's `nn.Module.to` does.

        The tensors stay the same objects (only their storage changes), so an optimizer created before
        `.to()` keeps updating the model's parameters, as with PyTorch. Optimizer state (momentum, Adam's
        moments) is made on the first step, in the dtype and device of that moment: move the model before
        the first step, as PyTorch asks too.
        """
        for name in self.param_names:
            for tensor in (getattr(self, name), getattr(self, "d" + name)):
                tensor.data = tensor.to(device=device, dtype=dtype)
        for name in self.buffer_names:
            buffer = getattr(self, name)
            # As torch: a dtype change applies to floating-point buffers only (a step counter stays int64).
            buffer.data = buffer.to(device=device, dtype=dtype if buffer.is_floating_point() else None)
        for _, child in self.children():
            child.to(device=device, dtype=dtype)
        return self

    def train(self, mode: bool = True) -> Module:
        """Training mode (the default) or evaluation mode; matters for dropout and batch norm."""
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)


class Sequential(Module):
    """Layers applied in order (forward propagation); backward visits them in reverse
    (backpropagation: the chain rule, from the loss back to the input).

    forward:  h_0 = x,  h_k = layer_k(h_{k-1})
    backward: dh_{k-1} = layer_k.backward(dh_k), from the last layer to the first
    Children are named "0", "1", ... exactly as in PyTorch's `nn.Sequential`.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        self.layers = list(layers)

    def children(self) -> list[tuple[str, Module]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout
