"""Tensor parallelism by hand (Megatron-LM's): the matrices of two Linear layers in a row split across N processes.

    layers = split(model, pairs, rank, N, Collectives("ring"))   # the pairs' layers replaced, in place
    logits = model.forward(x)                                    # every process: the whole batch, the same logits

Every process holds the whole network except the pairs' two matrices, of which it holds 1/N, and
sees every example. For a pair y = act(x W^T + b) V^T + c (W [F, E], V [E, F]) with F split in N
blocks of F/N:

    W = [W_0; W_1; ...]   rows (output features) split:   x W^T = [x W_0^T, x W_1^T, ...]
    V = [V_0, V_1, ...]   columns (input features) split: h V^T = sum_r h_r V_r^T

so process r computes h_r = act(x W_r^T + b_r), its F/N features (an activation acts on each feature
alone), then its term h_r V_r^T, and the N terms are summed across processes: one all-reduce in the
forward pass, and, by the same algebra backwards, one in the backward pass (dx = sum_r dy_r W_r).
Two operators carry those sums, each the other's converse (Megatron's f and g):

    f  CopyToParallel       forward: identity (x is the same in every process)   backward: all-reduce of dx
    g  ReduceFromParallel   forward: all-reduce of the partial sums                backward: identity

and the two layers are written as scratch layers are (forward caches, backward fills d<param> and
returns dx), each computing its backward on its own shard:

    ColumnParallelLinear   forward:  x' = f(x);  y_r = x' W_r^T + b_r                      [B, F/N]
                           backward: dW_r = dy_r^T x';  db_r = sum_b dy_r;  dx = f.backward(dy_r W_r)
    RowParallelLinear      forward:  z = g(h_r V_r^T);  y = z + c       (c once, after the sum) [B, E]
                           backward: dz = g.backward(dy) = dy;  dc = sum_b dz;  dV_r = dz^T h_r;  dh_r = dz V_r

The layers live here, not in scratch/: their arithmetic is plain tensors, but f and g are collectives
of torch.distributed, and scratch/ holds networks that run in one process. Communication per step:
the forward all-reduces [B, E] once per pair (g), the backward once more (f), except where nobody
needs dx (the MLP's first layer, whose input is the images); 2(N-1)/N of each in a ring.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from compare.distributed.collectives import Collectives
from compare.models import SplitPair
from scratch.linear import Linear
from scratch.module import Module, Sequential


class CopyToParallel(Module):
    """f: forward identity, backward all-reduce (sum over the processes of each one's dx)."""

    def __init__(self, comm: Collectives) -> None:
        super().__init__()
        self.comm = comm

    def forward(self, x: Tensor) -> Tensor:
        return x

    def backward(self, dout: Tensor) -> Tensor:
        dx = dout.contiguous()  # a fresh product in every use here: summed in place
        self.comm.all_reduce_(dx, "f (backward)")
        return dx


class ReduceFromParallel(Module):
    """g: forward all-reduce (sum over the processes of each one's partial output), backward identity."""

    def __init__(self, comm: Collectives) -> None:
        super().__init__()
        self.comm = comm

    def forward(self, x: Tensor) -> Tensor:
        out = x.contiguous()
        self.comm.all_reduce_(out, "g (forward)")
        return out

    def backward(self, dout: Tensor) -> Tensor:
        return dout


class ColumnParallelLinear(Module):
    """y_r = f(x) W_r^T + b_r: this process's F/N output features of a Linear(E, F) (W_r, b_r: its rows of W, b)."""

    param_names = ("weight", "bias")
    split_dims = {"weight": 0, "bias": 0}  # along which dimension the N processes' parameters are cut

    def __init__(self, weight: Tensor, bias: Tensor, comm: Collectives) -> None:
        super().__init__()
        self.weight, self.bias = weight, bias  # F/N,E and F/N
        self.dweight, self.dbias = torch.zeros_like(weight), torch.zeros_like(bias)
        self.f = CopyToParallel(comm)
        self.x: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.x = x = self.f.forward(x)  # B,E
        return torch.addmm(self.bias, x, self.weight.t())  # B,F/N

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        torch.mm(dout.t(), self.x, out=self.dweight)  # F/N,E
        torch.sum(dout, dim=0, out=self.dbias)  # F/N
        if not input_grad:
            return None  # the images: nobody reads dx, so f's all-reduce is skipped too
        return self.f.backward(dout @ self.weight)  # B,E: the sum over processes of dy_r W_r


class RowParallelLinear(Module):
    """y = g(h_r V_r^T) + c: a Linear(F, E) whose input features are split (V_r: this process's columns of V); the
    bias c is whole in every process and added once, after the sum."""

    param_names = ("weight", "bias")
    split_dims = {"weight": 1}  # the bias is not split

    def __init__(self, weight: Tensor, bias: Tensor, comm: Collectives) -> None:
        super().__init__()
        self.weight, self.bias = weight, bias  # E,F/N and E
        self.dweight, self.dbias = torch.zeros_like(weight), torch.zeros_like(bias)
        self.g = ReduceFromParallel(comm)
        self.x: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.x = x  # B,F/N
        return self.g.forward(x @ self.weight.t()) + self.bias  # B,E

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        dz = self.g.backward(dout)  # B,E: the same in every process
        torch.sum(dz, dim=0, out=self.dbias)  # E
        torch.mm(dz.t(), self.x, out=self.dweight)  # E,F/N
        return dz @ self.weight if input_grad else None  # B,F/N


PARALLEL_LAYERS = (ColumnParallelLinear, RowParallelLinear)


def submodule(model: Module, path: str) -> Module:
    module = model
    for name in path.split("."):
        module = dict(module.children())[name]
    return module


def replace(model: Module, path: str, new: Module) -> None:
    """Put `new` where the module at `path` was (an item of a Sequential, or an attribute)."""
    parent_path, _, name = path.rpartition(".")
    parent = submodule(model, parent_path) if parent_path else model
    if isinstance(parent, Sequential):
        parent.layers[int(name)] = new
    else:
        setattr(parent, name, new)


def split(model: Module, pairs: list[SplitPair], rank: int, world_size: int, comm: Collectives) -> dict[str, Module]:
    """Replace each pair's Linear layers by this process's ColumnParallelLinear and RowParallelLinear (their
    parameters cut from the whole ones, copied); path -> the new layer."""
    layers: dict[str, Module] = {}
    for pair in pairs:
        column, row = submodule(model, pair.column), submodule(model, pair.row)
        if not (isinstance(column, Linear) and isinstance(row, Linear)) or column.bias is None or row.bias is None:
            raise ValueError(f"{pair.column} and {pair.row} must be Linear layers with a bias to be split")
        if column.out_features % world_size:
            raise ValueError(f"{pair.option} {column.out_features} does not split into {world_size} equal parts")
        layers[pair.column] = ColumnParallelLinear(column.weight.chunk(world_size, 0)[rank].clone(),
                                                   column.bias.chunk(world_size, 0)[rank].clone(), comm)
        layers[pair.row] = RowParallelLinear(row.weight.chunk(world_size, 1)[rank].clone(), row.bias.clone(), comm)
    for path, layer in layers.items():
        replace(model, path, layer)
    return layers


def gather_parameters(model: Module, layers: dict[str, Module], world_size: int,
                      gradients: bool = False) -> dict[str, Tensor]:
    """Every parameter (or, with gradients=True, every gradient) in full, copied: the split ones all-gathered from
    the processes (call in every process)."""
    split_names = {f"{path}.{name}": (layer, name) for path, layer in layers.items() for name in layer.split_dims}
    result = {}
    for name, p in (model.named_gradients() if gradients else model.named_parameters()):
        if name not in split_names:
            result[name] = p.clone()
            continue
        layer, attr = split_names[name]
        pieces = [torch.empty_like(p) for _ in range(world_size)]
        dist.all_gather(pieces, p.contiguous())
        result[name] = torch.cat(pieces, dim=layer.split_dims[attr])
    return result
