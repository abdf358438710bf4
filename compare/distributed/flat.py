"""A scratch model's parameters and gradients as flat buffers, cut into units, each padded to a multiple of N.

    units = flatten(model, unit_modules(model, "layer"), world_size=2)
    units[0].params          # [size]: the unit's parameters end to end (+ zeros up to a multiple of N)
    model.layers[0].weight   # now a view of units[0].params: the layers compute on the flat buffer
    free(units[0].params); allocate(units[0].params)    # give the memory back, take it again

A unit is what a sharded step gathers or reduces at once: FSDP's FlatParameter, or what one call
of `fully_shard` manages. With wrap "layer", every module that holds parameters inside a Sequential
(each Linear of the MLP, each transformer block of the ViT) is a unit, and the parameters outside
them (the ViT's embeddings, final norm and head) form the root's unit; with wrap "model", the whole
model is one unit. Rank r owns the r-th contiguous 1/N of each unit's flat buffer: padding each unit
to a multiple of N makes the N shards equal, so each reduce-scatter and all-gather of a unit sends
exactly (N-1)/N of its bytes.

Freeing keeps the tensor and its views: only the storage behind them shrinks to 0 bytes
(`untyped_storage().resize_(0)`, what FSDP does with the unsharded parameters), and grows back
before the next use; the layers' attributes stay views of it throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from scratch.module import Module, Sequential

WRAPS = ("layer", "model")


@dataclass
class Slot:
    """One parameter inside a unit's flat buffer."""

    name: str  # its full name, as named_parameters gives it ("layers.0.weight")
    owner: Module  # the layer that holds it
    attr: str  # the attribute: the parameter is owner.<attr>, its gradient owner.d<attr>
    offset: int  # where it starts in the flat buffer
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Unit:
    path: str  # the module's path in the model ("" for the root)
    module: Module  # the module whose forward and backward use these parameters
    slots: list[Slot]
    params: Tensor  # [size], the parameters end to end and zero padding; the layers hold views of it
    grads: Tensor  # [size], the gradients likewise

    @property
    def numel(self) -> int:
        """Values before padding."""
        return sum(s.numel for s in self.slots)

    @property
    def size(self) -> int:
        return self.params.numel()


def owned_parameters(module: Module, prefix: str = "") -> list[tuple[str, Module, str]]:
    """(full name, owning layer, attribute) of every parameter under `module`, in named_parameters order."""
    found = [(prefix + name, module, name) for name in module.param_names]
    for child_name, child in module.children():
        found += owned_parameters(child, f"{prefix}{child_name}.")
    return found


def unit_modules(model: Module, wrap: str) -> list[tuple[str, Module]]:
    """(path, module) of the units below the root: with "layer", each child of a Sequential that holds parameters
    (not looked into further); with "model", none (the root's unit holds everything)."""
    if wrap not in WRAPS:
        raise ValueError(f"unknown wrap {wrap!r}; choose one of {', '.join(WRAPS)}")
    if wrap == "model":
        return []
    found: list[tuple[str, Module]] = []

    def visit(module: Module, prefix: str) -> None:
        for name, child in module.children():
            if isinstance(module, Sequential) and owned_parameters(child):
                found.append((prefix + name, child))
            else:
                visit(child, f"{prefix}{name}.")

    visit(model, "")
    return found


def padded(numel: int, world_size: int) -> int:
    return math.ceil(numel / world_size) * world_size


def flatten(model: Module, units: list[tuple[str, Module]], world_size: int) -> list[Unit]:
    """Move the model's parameters and gradient buffers into one flat buffer per unit (the root's unit, of the
    parameters outside every unit, first when it has any), the layers' attributes becoming views of them."""
    inside = {name for path, module in units for name, _, _ in owned_parameters(module, f"{path}.")}
    groups = [("", model, [p for p in owned_parameters(model) if p[0] not in inside])]
    groups += [(path, module, owned_parameters(module, f"{path}.")) for path, module in units]
    result = []
    for path, module, members in groups:
        if not members:
            continue
        first = getattr(members[0][1], members[0][2])
        slots, offset = [], 0
        for name, owner, attr in members:
            shape = tuple(getattr(owner, attr).shape)
            slots.append(Slot(name, owner, attr, offset, shape))
            offset += math.prod(shape)
        size = padded(offset, world_size)
        params = torch.zeros(size, dtype=first.dtype, device=first.device)
        grads = torch.zeros_like(params)
        for slot in slots:
            view = params[slot.offset:slot.offset + slot.numel].view(slot.shape)
            view.copy_(getattr(slot.owner, slot.attr))
            setattr(slot.owner, slot.attr, view)
            setattr(slot.owner, "d" + slot.attr, grads[slot.offset:slot.offset + slot.numel].view(slot.shape))
        result.append(Unit(path, module, slots, params, grads))
    return result


def free(t: Tensor) -> None:
    """Give back the memory behind t and all its views (they stay, pointing at 0 bytes)."""
    t.untyped_storage().resize_(0)


def allocate(t: Tensor, zero: bool = False) -> None:
    """Give t (and its views) memory again, if it was freed; zeroed on request."""
    nbytes = t.numel() * t.element_size()
    if t.untyped_storage().nbytes() != nbytes:
        t.untyped_storage().resize_(nbytes)
        if zero:
            t.zero_()


def allocated(t: Tensor) -> bool:
    return t.untyped_storage().nbytes() > 0
