"""Layers on the scratch autograd engine (scratch/engine.py): each writes its forward pass only.

The engine derives every backward pass from the forward. Each block holds its parameters as
Values made with requires_grad=True, under the names and shapes of its torch twin
(`weight`, `bias`; `in_proj_weight`, `out_proj.weight`; `weight_ih_l0`, ...), and draws
them as torch's `reset_parameters` does, so state dicts copy across and, from one seed,
engine and torch blocks start bit-identical.

    blocks:      Linear, Activation, MLP (the lesson's 784-16-16-10 network), Conv2d, MaxPool2d,
                 AvgPool2d, Flatten, LayerNorm, MultiheadAttention, LSTM
    models:      CNN (LeNet-5 by default: the spec, names and initialisation of scratch.cnn.CNN); at the end
                 the ViT and LSTM models
    functions:   conv2d, max_pool2d, avg_pool2d, layer_norm (what the blocks compute, on Values)

scratch/mlp.py spells out every backward formula; here the engine derives them. The MLP has
the same spec, parameter names ("layers.0.weight", "layers.0.bias", "layers.2.weight", ...)
and initialisation as scratch.MLP and torch_impl.MLP, so all three start bit-identical.

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

import math
from collections.abc import Iterator, Sequence
from typing import TypeVar

import torch
from torch import Tensor

from scratch.cnn import POOL_SIZE, plan_stages  # plain arithmetic on the spec: every CNN accepts the same specs
from scratch.engine import Value, cat, no_grad, stack
from scratch.linear import linear_init_
from scratch.vit import POOLS, POS_EMBED_STD

ACTIVATIONS = ("relu", "sigmoid", "tanh")  # names of Value methods the MLP may use

LayerT = TypeVar("LayerT", bound="Layer")


class Layer:
    """What every block here shares, as torch's nn.Module does: its parameters, found by attribute name.

    A parameter is an attribute holding a leaf Value with requires_grad; a child block is an
    attribute holding a Layer, or a list of Layers (named "layers.0", "layers.1", ...). So the
    names follow the attribute names, in the order they were set, as torch's do. A block only
    writes __init__ and __call__ (its forward pass).
    """

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        for name, item in vars(self).items():
            children = [(f"{name}.{i}", c) for i, c in enumerate(item)] if isinstance(item, list) else [(name, item)]
            for child_name, child in children:
                if isinstance(child, Value) and child.requires_grad and child.is_leaf:
                    yield child_name, child
                elif isinstance(child, Layer):
                    yield from ((f"{child_name}.{n}", p) for n, p in child.named_parameters())

    def parameters(self) -> list[Value]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def to(self: LayerT, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> LayerT:
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


# ---------------------------------------------------------------------- the lesson's MLP


class Linear(Layer):
    """out = x @ W^T + b: a transpose, a matmul and a broadcasting add; no backward written here.

    The engine works out dW = dout^T @ x (via the matmul and transpose rules) and
    db = sum over the batch of dout (broadcasting b over the batch rows, undone).
    Input [batch, in] or, as torch, [batch, ..., in]: the leading dims are merged into one
    batch first, so that dW is one matrix product.
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
        if x.dim() < 2 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}) expects input of shape [batch, {self.in_features}] "
                f"(or [batch, ..., {self.in_features}]), got {list(x.shape)}; flatten 28x28 images to 784 values first"
            )
        if x.dim() == 2:
            return x @ self.weight.T + self.bias  # B,out
        lead = list(x.shape[:-1])
        return (x.reshape(-1, self.in_features) @ self.weight.T + self.bias).reshape(*lead, self.out_features)

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"


class Activation(Layer):
    """An activation as a layer without parameters: calls the Value method of that name (relu, ...)."""

    def __init__(self, name: str) -> None:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.name = name

    def __call__(self, x: Value) -> Value:
        return getattr(x, self.name)()

    def __repr__(self) -> str:
        return self.name.capitalize() if self.name != "relu" else "ReLU"


class MLP(Layer):
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
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.layers += [Linear(fan_in, fan_out), Activation(activation)]
        self.layers.append(Linear(sizes[-1], num_classes))
        for name, p in self.named_parameters():
            p.name = name  # graph printouts then say "layers.0.weight"

    def __call__(self, x: Value) -> Value:
        for layer in self.layers:
            x = layer(x)
        return x  # B,classes

    forward = __call__

    def __repr__(self) -> str:
        return f"MLP({', '.join(map(repr, self.layers))}) on the autograd engine"


# ---------------------------------------------------------------------- convolution and pooling


def conv2d(x: Value, weight: Value, bias: Value | None = None, stride: int = 1, padding: int = 0) -> Value:
    """A 2-D convolution (cross-correlation), as torch's conv2d, built from the engine's ops as im2col.

        out[b, o, y, x] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xpad[b, c, s*y + i, s*x + j]

    forward:   xpad = pad2d(x)                                       B,C,H+2p,W+2p
               windows = xpad.unfold(2, kh, s).unfold(3, kw, s)     B,C,OH,OW,kh,kw  (a view: nothing copied)
               cols = each window as a column                        C*kh*kw, B*OH*OW
               out = W @ cols + bias                                 O, B*OH*OW  ->  B,O,OH,OW
    backward:  no rule of its own. The matmul rule gives dW = dout @ cols^T (summed over every
               window) and dcols = W^T @ dout; the two unfold rules add each window's gradient back
               where it was cut from (col2im: one strided add per kernel offset), pad2d's crops the border.
    Windows as columns, not rows: gathering them then copies runs of OW neighbouring pixels
    instead of runs of kw (measured 2-10x faster on LeNet's layers).
    """
    out_channels, in_channels, kh, kw = weight.shape
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"conv2d with weight {list(weight.shape)} expects input [batch, {in_channels}, height, "
                         f"width], got {list(x.shape)}")
    batch = x.shape[0]
    windows = x.pad2d(padding).unfold(2, kh, stride).unfold(3, kw, stride)  # B,C,OH,OW,kh,kw
    oh, ow = windows.shape[2], windows.shape[3]
    cols = windows.permute(1, 4, 5, 0, 2, 3).reshape(in_channels * kh * kw, batch * oh * ow)  # C*kh*kw,B*OH*OW
    out = weight.reshape(out_channels, in_channels * kh * kw) @ cols  # O,B*OH*OW
    if bias is not None:
        out = out + bias.reshape(out_channels, 1)
    return out.reshape(out_channels, batch, oh, ow).permute(1, 0, 2, 3)  # B,O,OH,OW


def _windows(x: Value, kernel_size: int, stride: int | None, name: str) -> Value:
    """Every kernel_size x kernel_size window of x [B, C, H, W]: [B, C, OH, OW, k, k], a view."""
    if x.dim() != 4:
        raise ValueError(f"{name} expects input [batch, channels, height, width], got {list(x.shape)}")
    k, s = kernel_size, stride or kernel_size
    return x.unfold(2, k, s).unfold(3, k, s)  # B,C,OH,OW,k,k


def max_pool2d(x: Value, kernel_size: int, stride: int | None = None) -> Value:
    """out = the largest entry of each k x k window (stride defaults to k), as torch's max_pool2d.

    The max of each window row, then the max of those: no copy of the windows. When several
    entries tie, max keeps the first of a row and then the first row, so the window's first
    largest entry in reading order wins, as in torch.
    backward: no rule of its own; the two max rules send each window's dout to that entry, and
    unfold's adds them back into place.
    """
    rows = _windows(x, kernel_size, stride, "max_pool2d").max(dim=-1).values  # B,C,OH,OW,k
    return rows.max(dim=-1).values  # B,C,OH,OW


def avg_pool2d(x: Value, kernel_size: int, stride: int | None = None) -> Value:
    """out = the mean of each k x k window (stride defaults to k), as torch's avg_pool2d without padding.

    backward: no rule of its own; mean's rule spreads dout / k^2 over the window, unfold's adds it back.
    """
    return _windows(x, kernel_size, stride, "avg_pool2d").mean(dim=(-2, -1))  # B,C,OH,OW


class Conv2d(Layer):
    """conv2d with weight [out_channels, in_channels, k, k] and bias [out_channels], as PyTorch's nn.Conv2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        if min(in_channels, out_channels, kernel_size, stride) <= 0 or padding < 0:
            raise ValueError(f"Conv2d needs positive sizes and padding >= 0, got in_channels={in_channels}, "
                             f"out_channels={out_channels}, kernel_size={kernel_size}, stride={stride}, "
                             f"padding={padding}")
        self.stride, self.padding = stride, padding
        weight = torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        bias_data = torch.empty(out_channels) if bias else None
        # torch draws a Conv2d as a Linear with fan_in = in_channels * k * k: the same draws, in the same order
        linear_init_(weight.view(out_channels, -1), bias_data)
        self.weight = Value(weight, requires_grad=True, name="weight")  # O,C,k,k
        self.bias = Value(bias_data, requires_grad=True, name="bias") if bias else None  # O

    def __call__(self, x: Value) -> Value:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def __repr__(self) -> str:
        out_channels, in_channels, k, _ = self.weight.shape
        return f"Conv2d({in_channels}, {out_channels}, kernel_size={k}, stride={self.stride}, padding={self.padding})"


class MaxPool2d(Layer):
    """max_pool2d as a layer (as PyTorch's nn.MaxPool2d without padding): no parameters."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def __call__(self, x: Value) -> Value:
        return max_pool2d(x, self.kernel_size, self.stride)

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"


class AvgPool2d(Layer):
    """avg_pool2d as a layer (as PyTorch's nn.AvgPool2d without padding): no parameters."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def __call__(self, x: Value) -> Value:
        return avg_pool2d(x, self.kernel_size, self.stride)

    def __repr__(self) -> str:
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride})"


class Flatten(Layer):
    """Dims start_dim..end_dim merged into one, as PyTorch's nn.Flatten: [B, C, H, W] -> [B, C*H*W] by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim, self.end_dim = start_dim, end_dim

    def __call__(self, x: Value) -> Value:
        return x.flatten(self.start_dim, self.end_dim)

    def __repr__(self) -> str:
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"


# ---------------------------------------------------------------------- transformer blocks


def layer_norm(x: Value, normalized_dims: int, weight: Value, bias: Value, eps: float = 1e-5) -> Value:
    """Normalise each example over its last `normalized_dims` dims, then scale and shift (as torch's layer_norm).

    forward:   mu = mean(x),  var = mean((x - mu)^2)   (biased, as torch),  out = (x - mu) / sqrt(var + eps) * w + b
    backward:  no rule of its own: mean, sub, mul and rsqrt's rules, chained by the engine.
    """
    dims = tuple(range(-normalized_dims, 0))
    centered = x - x.mean(dim=dims, keepdim=True)
    var = (centered * centered).mean(dim=dims, keepdim=True)
    return centered * (var + eps).rsqrt() * weight + bias


class LayerNorm(Layer):
    """layer_norm with weight (ones) and bias (zeros) of shape normalized_shape, as PyTorch's nn.LayerNorm."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Value(torch.ones(shape), requires_grad=True, name="weight")
        self.bias = Value(torch.zeros(shape), requires_grad=True, name="bias")

    def __call__(self, x: Value) -> Value:
        if tuple(x.shape[-len(self.normalized_shape):]) != self.normalized_shape:
            raise ValueError(f"LayerNorm({list(self.normalized_shape)}) expects input [..., "
                             f"{', '.join(map(str, self.normalized_shape))}], got {list(x.shape)}")
        return layer_norm(x, len(self.normalized_shape), self.weight, self.bias, self.eps)

    def __repr__(self) -> str:
        return f"LayerNorm({list(self.normalized_shape)}, eps={self.eps})"


class MultiheadAttention(Layer):
    """Multi-head self-attention (q = k = v = x), as PyTorch's nn.MultiheadAttention(E, heads, batch_first=True).

    With E = embed_dim split into h heads of d = E / h, for x [B, T, E]:
        q, k, v  = x W_q^T + b_q,  x W_k^T + b_k,  x W_v^T + b_v       (W_q; W_k; W_v = in_proj_weight [3E, E])
        per head:  A = softmax(q k^T / sqrt(d))  [T, T],   head = A v  [T, d]
        out      = concat(heads) W_o^T + b_o                             (out_proj: a Linear(E, E))
    Returns out [B, T, E], what torch's `mha(x, x, x, need_weights=False)[0]` is. No dropout, no mask.
    backward: the engine's, through softmax, the batched matmuls and the reshapes of the heads.
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention needs embed_dim divisible by num_heads, got embed_dim={embed_dim}, "
                             f"num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        weight, bias = torch.empty(3 * embed_dim, embed_dim), torch.empty(3 * embed_dim)
        self.in_proj_weight = Value(weight, requires_grad=True, name="in_proj_weight")  # 3E,E
        self.in_proj_bias = Value(bias, requires_grad=True, name="in_proj_bias")  # 3E
        self.out_proj = Linear(embed_dim, embed_dim)  # draws its weight and bias first, as torch's out_proj
        # then torch's _reset_parameters: xavier_uniform_(in_proj_weight), zero biases
        bound = math.sqrt(3.0) * (1.0 * math.sqrt(2.0 / float(embed_dim + 3 * embed_dim)))
        weight.uniform_(-bound, bound)
        bias.zero_()
        self.out_proj.bias.data.zero_()

    def __call__(self, x: Value) -> Value:
        if x.dim() != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"MultiheadAttention({self.embed_dim}) expects input [batch, time, {self.embed_dim}] "
                             f"(batch_first), got {list(x.shape)}")
        batch, time, e = x.shape
        h, d = self.num_heads, self.head_dim
        qkv = (x.reshape(batch * time, e) @ self.in_proj_weight.T + self.in_proj_bias).reshape(batch, time, 3 * e)
        q, k, v = (qkv[:, :, i * e:(i + 1) * e].reshape(batch, time, h, d).transpose(1, 2)  # B,h,T,d
                   for i in range(3))
        scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(-2, -1)  # B,h,T,T; q scaled first, as torch
        heads = scores.softmax(dim=-1) @ v  # B,h,T,d
        return self.out_proj(heads.transpose(1, 2).reshape(batch, time, e))  # B,T,E

    def __repr__(self) -> str:
        return f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"


# ---------------------------------------------------------------------- recurrence


class LSTM(Layer):
    """A one-layer LSTM over [B, T, input_size] (batch_first), as PyTorch's nn.LSTM(I, H, batch_first=True).

    Each step t, with gates in torch's order i, f, g, o (rows of weight_ih_l0 [4H, I], weight_hh_l0 [4H, H]):
        z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh                          B,4H
        i, f, o = sigmoid(z_t[:, gate]),  g = tanh(z_t[:, 2H:3H])
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)                           B,H
    Returns (output [B, T, H] = every h_t, (h_n [1, B, H], c_n [1, B, H])), as torch.
    backward: the engine's, through time: h_{t-1} and c_{t-1} feed step t, so their gradients
    collect what every later step sends back (backpropagation through time, nothing written here).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"LSTM needs positive sizes, got input_size={input_size}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        rows, stdv = 4 * hidden_size, 1.0 / math.sqrt(hidden_size)

        def uniform(name: str, *shape: int) -> Value:  # as torch's reset_parameters: U(-stdv, stdv), in this order
            return Value(torch.empty(shape).uniform_(-stdv, stdv), requires_grad=True, name=name)

        self.weight_ih_l0 = uniform("weight_ih_l0", rows, input_size)  # 4H,I
        self.weight_hh_l0 = uniform("weight_hh_l0", rows, hidden_size)  # 4H,H
        self.bias_ih_l0 = uniform("bias_ih_l0", rows)  # 4H
        self.bias_hh_l0 = uniform("bias_hh_l0", rows)  # 4H

    def __call__(self, x: Value, hx: tuple[Value, Value] | None = None) -> tuple[Value, tuple[Value, Value]]:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"LSTM({self.input_size}, {self.hidden_size}) expects input [batch, time, "
                             f"{self.input_size}] (batch_first), got {list(x.shape)}")
        batch, time, _ = x.shape
        size = self.hidden_size
        if hx is None:
            h = c = Value(x.data.new_zeros(batch, size))  # B,H: a constant start
        else:
            h, c = hx[0].reshape(batch, size), hx[1].reshape(batch, size)
        w_ih, w_hh = self.weight_ih_l0.T, self.weight_hh_l0.T  # I,4H and H,4H: transposed once, used every step
        bias = self.bias_ih_l0 + self.bias_hh_l0  # 4H
        outputs = []
        for t in range(time):
            z = x[:, t, :] @ w_ih + h @ w_hh + bias  # B,4H
            i, f = z[:, :size].sigmoid(), z[:, size:2 * size].sigmoid()  # B,H each
            g, o = z[:, 2 * size:3 * size].tanh(), z[:, 3 * size:].sigmoid()  # B,H each
            c = f * c + i * g  # B,H
            h = o * c.tanh()  # B,H
            outputs.append(h)
        return stack(outputs, dim=1), (h.reshape(1, batch, size), c.reshape(1, batch, size))

    def __repr__(self) -> str:
        return f"LSTM({self.input_size}, {self.hidden_size}, batch_first=True)"


# ---- models for the vision transformer and the LSTM


class TransformerEncoderLayer(Layer):
    """Pre-norm transformer block, as scratch.TransformerEncoderLayer and torch's `nn.TransformerEncoderLayer(E, H,
    F, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)`, with its children's names.

    forward:   x1 = x + self_attn(norm1(x));   out = x1 + linear2(gelu(linear1(norm2(x1))))     B,T,E
    backward:  the engine's; each residual sum hands dout to both of its terms.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, layer_norm_eps: float = 1e-5) -> None:
        # torch's order of construction, which is the order of the random draws (the norms draw nothing)
        self.self_attn = MultiheadAttention(d_model, nhead)
        self.linear1 = Linear(d_model, dim_feedforward)
        self.linear2 = Linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps)

    def __call__(self, x: Value) -> Value:
        x1 = x + self.self_attn(self.norm1(x))  # B,T,E
        return x1 + self.linear2(self.linear1(self.norm2(x1)).gelu())  # B,T,E

    def __repr__(self) -> str:
        return (f"TransformerEncoderLayer(d_model={self.self_attn.embed_dim}, nhead={self.self_attn.num_heads}, "
                f"dim_feedforward={self.linear1.out_features})")


class ViT(Layer):
    """The small vision transformer of scratch/vit.py on the engine: the same constructor, parameter names
    ("pos_embed", "patch_embed.weight", "blocks.0.self_attn.in_proj_weight", ..., "head.bias") and draws.

    forward:   patches [B, N, C*p*p] (row by row) -> patch_embed -> [class token |] tokens + pos_embed
               -> blocks -> norm -> mean over tokens (pool="mean") or the class token (pool="cls") -> head
    backward:  the engine's, through every block and back to the patch embedding.
    """

    def __init__(self, image_size: int = 28, patch_size: int = 7, in_channels: int = 1, dim: int = 64,
                 depth: int = 3, heads: int = 4, mlp_dim: int = 128, num_classes: int = 10,
                 pool: str = "mean") -> None:
        if image_size % patch_size:
            raise ValueError(f"ViT: image_size {image_size} is not a multiple of patch_size {patch_size}; "
                             "choose a patch size that divides it (for 28x28 digits: 4, 7 or 14)")
        if pool not in POOLS:
            raise ValueError(f"ViT: unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        self.image_size, self.patch_size, self.in_channels, self.pool = image_size, patch_size, in_channels, pool
        num_tokens = (image_size // patch_size) ** 2 + (pool == "cls")
        # Drawn in scratch.vit.ViT's order (patch_embed, pos_embed, blocks, head), but set as attributes with
        # the parameters of the model itself first, as scratch and torch list them.
        patch_embed = Linear(in_channels * patch_size * patch_size, dim)
        if pool == "cls":
            self.cls_token = Value(torch.zeros(1, 1, dim), requires_grad=True, name="cls_token")  # 1,1,D
        self.pos_embed = Value(torch.randn(1, num_tokens, dim) * POS_EMBED_STD, requires_grad=True,
                               name="pos_embed")  # 1,T,D
        self.patch_embed = patch_embed
        self.blocks = [TransformerEncoderLayer(dim, heads, mlp_dim) for _ in range(depth)]
        self.norm = LayerNorm(dim)
        self.head = Linear(dim, num_classes)
        for name, p in self.named_parameters():
            p.name = name

    def __call__(self, x: Value) -> Value:
        pixels, c, p = self.in_channels * self.image_size ** 2, self.in_channels, self.patch_size
        if x.dim() < 2 or x.data[0].numel() != pixels:
            raise ValueError(f"ViT(image_size={self.image_size}, in_channels={c}) expects images of {pixels} values "
                             f"each ([B, {pixels}] or [B, {c}, {self.image_size}, {self.image_size}]), "
                             f"got {list(x.shape)}")
        batch, g = x.shape[0], self.image_size // p
        patches = x.reshape(batch, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(batch, g * g, c * p * p)  # B,N,P
        tokens = self.patch_embed(patches)  # B,N,D
        if self.pool == "cls":
            cls = self.cls_token + tokens.data.new_zeros(batch, 1, tokens.shape[2])  # B,1,D: broadcast, undone
            tokens = cat([cls, tokens], dim=1)  # B,T,D
        h = tokens + self.pos_embed  # B,T,D
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)  # B,T,D
        return self.head(h.mean(dim=1) if self.pool == "mean" else h[:, 0])  # B,classes

    def __repr__(self) -> str:
        return (f"ViT(image_size={self.image_size}, patch_size={self.patch_size}, depth={len(self.blocks)}, "
                f"pool={self.pool!r}) on the autograd engine")


class LSTMClassifier(Layer):
    """The LSTM classifier of scratch/sequence.py on the engine: rows of the image as a sequence, the LSTM
    above, a Linear head on the last hidden state; parameter names "lstm.weight_ih_l0", ..., "head.bias".

    forward:   s = x as [B, T, input_size];  logits = head(lstm(s)[0][:, T-1])
    backward:  the engine's, through time.
    """

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10) -> None:
        self.input_size = input_size
        self.lstm = LSTM(input_size, hidden_size)  # drawn first, as in scratch and torch
        self.head = Linear(hidden_size, num_classes)
        for name, p in self.named_parameters():
            p.name = name

    def __call__(self, x: Value) -> Value:
        if x.dim() < 2 or x.data[0].numel() % self.input_size:
            raise ValueError(f"LSTMClassifier(input_size={self.input_size}) reads each image in steps of "
                             f"{self.input_size} values, got shape {list(x.shape)}; give [B, 784] or [B, 28, 28]")
        states, _ = self.lstm(x.reshape(x.shape[0], -1, self.input_size))  # B,T,H
        return self.head(states[:, -1])  # B,classes

    def __repr__(self) -> str:
        return f"LSTMClassifier({self.lstm!r}, head={self.head!r}) on the autograd engine"


# ---------------------------------------------------------------------- models


class CNN(Layer):
    """Conv2d -> activation -> 2x2 pooling per stage, Flatten, then Linear -> activation layers and a Linear output.

    forward:   h_0 = x;  h_k = pool(act(conv2d(h_{k-1}, W_k) + b_k))  for each stage;  then Flatten and
               the fully connected layers to logits
    backward:  loss.backward(), on the graph this forward pass recorded: conv2d's, max_pool2d's and
               avg_pool2d's gradients come from the matmul, unfold, max and mean rules (see them above).

    The arguments, layer order, parameter names ("layers.0.weight", "layers.3.weight", ...) and
    initialisation of scratch.cnn.CNN and torch_impl.cnn.CNN, so from one seed all three start
    bit-identical. No batch norm here: the engine has no BatchNorm2d block.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        channels: Sequence[int] = (6, 16),
        kernel_size: int = 5,
        padding: int | Sequence[int] = (2, 0),
        pool: str = "max",
        fc_sizes: Sequence[int] = (120, 84),
        activation: str = "relu",
        num_classes: int = 10,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        stages = plan_stages(in_channels, image_size, channels, kernel_size, padding, pool)
        self.in_channels, self.image_size = in_channels, image_size
        pools = {"max": MaxPool2d, "avg": AvgPool2d}
        self.layers: list[Layer] = []
        self.stage_ends: list[int] = []  # index in `layers` of each stage's activation (see feature_maps)
        for stage in stages:  # the draws happen here, in the order of the other two CNNs' constructors
            self.layers += [Conv2d(stage.in_channels, stage.out_channels, kernel_size, padding=stage.padding),
                            Activation(activation)]
            self.stage_ends.append(len(self.layers) - 1)
            self.layers.append(pools[pool](POOL_SIZE))
        self.layers.append(Flatten())
        sizes = [stages[-1].out_channels * stages[-1].size ** 2, *fc_sizes]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.layers += [Linear(fan_in, fan_out), Activation(activation)]
        self.layers.append(Linear(sizes[-1], num_classes))
        for name, p in self.named_parameters():
            p.name = name  # graph printouts then say "layers.0.weight"

    def as_images(self, x: Value) -> Value:
        """x as [B, C, S, S] images; flattened rows [B, C*S*S] (as the data loader gives them) are reshaped."""
        c, s = self.in_channels, self.image_size
        if x.dim() == 2 and x.shape[1] == c * s * s:
            return x.reshape(-1, c, s, s)  # B,C,S,S
        if x.dim() == 4 and tuple(x.shape[1:]) == (c, s, s):
            return x
        raise ValueError(f"CNN expects images of shape [batch, {c}, {s}, {s}] (or flattened, [batch, {c * s * s}]), "
                         f"got {list(x.shape)}; build it with in_channels and image_size matching the data")

    def __call__(self, x: Value) -> Value:
        x = self.as_images(x)  # B,C,S,S
        for layer in self.layers:
            x = layer(x)
        return x  # B,classes

    forward = __call__

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """The output of each conv stage's activation ([B, channels[k], size, size]), nothing recorded."""
        with no_grad():
            h, maps = self.as_images(Value(x)), []  # B,C,S,S
            for index, layer in enumerate(self.layers[:self.stage_ends[-1] + 1]):
                h = layer(h)
                if index in self.stage_ends:
                    maps.append(h.data)
        return maps

    def __repr__(self) -> str:
        return f"CNN({', '.join(map(repr, self.layers))}) on the autograd engine"
