"""A reverse-mode automatic differentiation engine over tensors, written from scratch.

Every hand-written `backward` in scratch/ applies the chain rule to one layer. This
file makes the chain rule automatic: each operation on a `Value` records its inputs
(its parents) and a small backward rule, and `Value.backward()` walks that record
from the loss back to the parameters. It is micrograd's idea (one number per node)
lifted to tensors (one tensor per node), on plain torch tensors and nothing else:
none of PyTorch's autograd, nn or func modules. It speaks torch's vocabulary, as micrograd,
minitorch and tinygrad do (`requires_grad`, `grad`, `backward`, `no_grad`), but every one
of those words is this engine's own, defined below: a `Value` is not a torch tensor, and
the tensors it holds never have torch's gradient flag set (tests/test_purity.py checks both).

The lesson's neuron, 2*3 + 5*6 - 2 = 34, then a ReLU:

    >>> import torch
    >>> from scratch.engine import Value
    >>> x = Value(torch.tensor([[2.0, 5.0]]), name="x")                       # 1,2  an input: no gradient
    >>> w = Value(torch.tensor([[3.0, 6.0]]), requires_grad=True, name="w")   # 1,2  weights
    >>> b = Value(torch.tensor([-2.0]), requires_grad=True, name="b")         # 1    bias
    >>> a = (x @ w.T + b).relu()                                              # 1,1  34
    >>> a.backward()
    >>> w.grad, b.grad                                                        # da/dw = x, da/db = 1
    (tensor([[2., 5.]]), tensor([1.]))

Each op's backward rule sits right under its forward, in the notation of the README:
`dout` is the gradient of the final result with respect to this op's output, and the
rule returns the gradient with respect to each input (`da`, `db`, ...), from dout, the
op's output and its inputs. The engine, not the rule, undoes broadcasting (`_sum_to_shape`)
and adds up the gradients of a value that is used more than once. See docs/autograd.md for a
walk-through. A rule is called with tensors; with create_graph=True it is called with the
Values themselves, so the backward pass is recorded and can be differentiated again (second
derivatives, Hessian-vector products).

Forward mode rides along: a Value may carry a tangent `t` (a direction, of its own shape), and
each op's tangent rule, beside its backward rule, gives its output's tangent from its inputs'
(`ta`, `tb`; None where an input has none), in the same forward pass. `jvp(f, primals, tangents)`
returns f(primals) and the Jacobian-vector product J t, as torch.func.jvp: dual numbers,
x + t eps with eps^2 = 0, one op at a time.

The ops, as torch names them:
    arithmetic   + - * / ** and @ (batched, broadcasting), broadcasting like torch
    shapes       reshape, flatten, transpose (.T), permute, indexing x[:, t, :], unfold, pad2d; cat, stack
    reductions   sum, mean, max (with indices)
    functions    exp, log, sqrt, rsqrt, relu, sigmoid, tanh, gelu, softmax, log_softmax
    losses       cross_entropy, mse_loss (built from the ops)
Layers built from them (convolution, pooling, layer norm, attention, LSTM) are in scratch/engine_nn.py.
Forward mode: jvp, jacfwd (a Jacobian, one column per jvp). Reverse mode as functions: grad (also of a
gradient: create_graph=True records the backward pass), vjp, jacrev (a row per backward); second order:
hvp (forward over reverse), hessian.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from numbers import Number
from typing import NamedTuple

import torch
from torch import Tensor

from scratch.activations import INV_SQRT_2PI, SQRT_HALF
from scratch.losses import check_loss_inputs

# A backward rule: given dout (same shape as the op's output), the output and the inputs, one gradient per
# parent (None where that parent needs no gradient and the rule did not compute one). It is called with
# tensors, or, for a graph of the backward pass itself (create_graph=True), with Values: every rule is
# written with operations both have, so each formula is written once and can be differentiated again.
BackwardRule = Callable[..., Sequence["Tensor | Value | None"]]
Either = "Tensor | Value"  # what a rule computes with: tensors, or Values when the backward pass is recorded
# A tangent rule: given each parent's tangent (None where a parent has none), the output's tangent.
TangentRule = Callable[..., Tensor]

_recording = True  # switched off inside `no_grad()`
_forward_mode = False  # switched on inside `jvp()`: only then do ops look for tangents (reverse mode pays nothing)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block operations record nothing: no parents, no backward rules.

    Use it for evaluation and for optimizer updates, where no gradient is wanted and
    keeping the graph would only cost memory. Also works as a decorator.
    """
    global _recording
    previous, _recording = _recording, False
    try:
        yield
    finally:
        _recording = previous


def is_recording() -> bool:
    return _recording


class MaxResult(NamedTuple):
    """What Value.max(dim) returns, as torch's max(dim): the values (a Value) and their indices (a tensor)."""

    values: Value
    indices: Tensor


class GraphError(RuntimeError):
    """backward() was asked for something the graph cannot give (freed graph, missing upstream gradient...)."""


class Value:
    """A tensor that remembers how it was computed, so its gradient can be worked out backwards.

    data:           the tensor itself
    grad:           dL/d(this value), same shape as data. A parameter (a leaf made with
                    requires_grad=True) has a zero buffer from the start, which backward()
                    adds into in place, so an optimizer can hold on to it (see zero_grad).
                    An intermediate result gets its gradient when backward() reaches it.
    requires_grad:  whether any gradient flows here: true for parameters (made with
                    requires_grad=True) and for every result computed from one (outside
                    no_grad), false for data and constants. The same meaning as torch's flag,
                    kept by this engine on its own Values.
    _parents:       the Values this one was computed from (empty for a leaf)
    _op:            the name of the operation that made it ("matmul", "relu", ...)
    _backward:      its backward rule; set to None once backward() has used it (the graph is freed)
    tangent:        forward mode: d(this value)/d(eps) along the direction jvp() was given, same shape
                    as data; None when no input of this value carries one
    """

    def __init__(
        self,
        data: Tensor | Number | Sequence,
        requires_grad: bool = False,
        name: str = "",
        *,
        _parents: tuple[Value, ...] = (),
        _op: str = "",
        _backward: BackwardRule | None = None,
    ) -> None:
        if not isinstance(data, Tensor):
            data = torch.as_tensor(data, dtype=torch.get_default_dtype())
        self.data = data
        self.requires_grad = requires_grad
        self.name = name  # shown in graph printouts ("x", "layers.0.weight", ...)
        self._parents = _parents
        self._op = _op
        self._backward = _backward
        self.grad: Tensor | None = torch.zeros_like(data) if requires_grad and not _parents else None
        self.tangent: Tensor | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    def dim(self) -> int:
        return self.data.dim()

    def numel(self) -> int:
        return self.data.numel()

    def item(self) -> float:
        return self.data.item()

    @property
    def is_leaf(self) -> bool:
        """Made directly (data or a parameter), not computed by an op."""
        return not self._parents

    def detach(self) -> Value:
        """The same numbers, cut off from the graph: gradients stop here."""
        return Value(self.data, name=self.name)

    def zero_grad(self) -> None:
        """Set the gradient to zero: in place for a leaf's buffer (an optimizer may hold it); an
        intermediate result's gradient may be shared with another value's, so it is replaced."""
        if self.grad is None or self._parents:
            self.grad = torch.zeros_like(self.data)
        else:
            self.grad.zero_()

    def __repr__(self) -> str:
        what = f"{self.data.item():.6g}" if self.data.numel() == 1 else f"shape {list(self.data.shape)}"
        how = f", op {self._op!r}" if self._op else (f", {self.name!r}" if self.name else "")
        return f"Value({what}, {str(self.data.dtype).replace('torch.', '')}{how}" + \
               (", requires_grad)" if self.requires_grad else ")")

    def _lift(self, other: Value | Tensor | Number) -> Value:
        """Wrap a number or tensor as a constant Value (no gradient), in this value's dtype and device."""
        if isinstance(other, Value):
            return other
        return Value(torch.as_tensor(other, dtype=self.data.dtype, device=self.data.device))

    # ------------------------------------------------------------------ elementwise arithmetic
    # Binary ops broadcast like torch. Their rules return gradients of the *output's*
    # shape; backward() then sums them back down to each input's shape.

    def __add__(self, other: Value | Tensor | Number) -> Value:
        """out = a + b.   da = dout,  db = dout.   t = ta + tb."""
        other = self._lift(other)

        def backward(dout: Either, out: Either, a: Either, b: Either) -> tuple[Either, Either]:
            return dout, dout

        return _result(self.data + other.data, (self, other), "add", backward, lambda ta, tb: _plus(ta, tb))

    def __sub__(self, other: Value | Tensor | Number) -> Value:
        """out = a - b.   da = dout,  db = -dout.   t = ta - tb."""
        other = self._lift(other)

        def backward(dout: Either, out: Either, a: Either, b: Either) -> tuple[Either, Either]:
            return dout, -dout

        return _result(self.data - other.data, (self, other), "sub", backward, lambda ta, tb: _plus(ta, _neg(tb)))

    def __mul__(self, other: Value | Tensor | Number) -> Value:
        """out = a * b.   da = dout * b,  db = dout * a.   t = ta * b + a * tb (the product rule).   Saves a and b."""
        other = self._lift(other)
        a, b = self.data, other.data

        def backward(dout: Either, out: Either, a: Either, b: Either) -> tuple[Either, Either]:
            return dout * b, dout * a

        return _result(a * b, (self, other), "mul", backward, lambda ta, tb: _plus(_times(ta, b), _times(tb, a)))

    def __truediv__(self, other: Value | Tensor | Number) -> Value:
        """out = a / b.   da = dout / b,  db = -dout * a / b^2.   t = ta / b - a * tb / b^2.   Saves a and b."""
        other = self._lift(other)
        a, b = self.data, other.data

        def backward(dout: Either, out: Either, a: Either, b: Either) -> tuple[Either, Either]:
            return dout / b, -dout * a / (b * b)

        def tangent(ta: Tensor | None, tb: Tensor | None) -> Tensor:
            return _plus(None if ta is None else ta / b, None if tb is None else -tb * a / (b * b))

        return _result(a / b, (self, other), "div", backward, tangent)

    def __neg__(self) -> Value:
        """out = -a.   da = -dout.   t = -ta."""

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (-dout,)

        return _result(-self.data, (self,), "neg", backward, lambda ta: -ta)

    def __pow__(self, exponent: Value | Tensor | Number) -> Value:
        """out = a ** p.

        p a number:  da = dout * p * a^(p-1)   (0 for p = 0, also at a = 0, as torch)   Saves a.
        p a Value:   da = dout * p * a^(p-1),  dp = dout * out * log(a)   (needs a > 0 where dp matters)
        tangent:     t = p * a^(p-1) * ta  (+ out * log(a) * tp when p is a Value)
        """
        a = self.data
        if isinstance(exponent, Number):
            p = exponent

            def backward_const(dout: Either, out: Either, a: Either) -> tuple[Either]:
                if p == 0:  # a^0 = 1 is flat; p * a^(p-1) would be 0 * inf = nan at a = 0
                    return (dout * 0.0,)
                return (dout * p * a ** (p - 1),)

            def tangent_const(ta: Tensor) -> Tensor:
                return torch.zeros_like(ta) if p == 0 else ta * p * a ** (p - 1)

            return _result(a ** p, (self,), f"pow {p:g}", backward_const, tangent_const)
        exponent = self._lift(exponent)
        p, out = exponent.data, a ** exponent.data

        def backward(dout: Either, out: Either, a: Either, p: Either) -> tuple[Either, Either]:
            return dout * p * a ** (p - 1), dout * out * a.log()

        def tangent(ta: Tensor | None, tp: Tensor | None) -> Tensor:
            return _plus(_times(ta, p * a ** (p - 1)), _times(tp, out * torch.log(a)))

        return _result(out, (self, exponent), "pow", backward, tangent)

    def __radd__(self, other: Tensor | Number) -> Value:
        return self._lift(other) + self

    def __rsub__(self, other: Tensor | Number) -> Value:
        return self._lift(other) - self

    def __rmul__(self, other: Tensor | Number) -> Value:
        return self._lift(other) * self

    def __rtruediv__(self, other: Tensor | Number) -> Value:
        return self._lift(other) / self

    def __rpow__(self, other: Tensor | Number) -> Value:
        return self._lift(other) ** self

    # ------------------------------------------------------------------ matrix product and shapes

    def __matmul__(self, other: Value | Tensor) -> Value:
        """out = a @ b  (the last two dims are matrices; leading dims broadcast as batches).

        da = dout @ b^T        db = a^T @ dout        (^T swaps the last two dims)   Saves a and b.
        t = ta @ b + a @ tb   (the product rule, for matrices)
        For a layer, out = x @ W^T: dW^T = x^T @ dout, the sum over the batch of outer products.
        """
        other = self._lift(other)
        a, b = self.data, other.data
        if a.dim() < 2 or b.dim() < 2:
            raise ValueError(
                f"matmul needs operands with at least 2 dims, got shapes {list(a.shape)} and {list(b.shape)}; "
                "reshape a vector of n entries to [1, n] (a row) or [n, 1] (a column) first"
            )
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"matmul of shapes {list(a.shape)} and {list(b.shape)}: the inner sizes {a.shape[-1]} and "
                f"{b.shape[-2]} must match (a is [..., n, k], b must be [..., k, m])"
            )

        need_a, need_b = self.requires_grad, other.requires_grad

        def backward(dout: Either, out: Either, a: Either, b: Either) -> tuple[Either | None, Either | None]:
            # Only the gradients someone needs: for a first layer, da is the input images' gradient.
            return (dout @ b.transpose(-2, -1) if need_a else None,
                    a.transpose(-2, -1) @ dout if need_b else None)

        def tangent(ta: Tensor | None, tb: Tensor | None) -> Tensor:
            return _plus(None if ta is None else ta @ b, None if tb is None else a @ tb)

        return _result(a @ b, (self, other), "matmul", backward, tangent)

    def __rmatmul__(self, other: Tensor) -> Value:
        return self._lift(other) @ self

    def transpose(self, dim0: int, dim1: int) -> Value:
        """out = a with dims dim0 and dim1 swapped.   da = dout with the same two dims swapped back.
        t = ta with the same two dims swapped."""

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout.transpose(dim0, dim1),)

        return _result(self.data.transpose(dim0, dim1), (self,), "transpose", backward,
                       lambda ta: ta.transpose(dim0, dim1))

    @property
    def T(self) -> Value:  # noqa: N802 (torch's name)
        """The transpose of a matrix (2 dims)."""
        if self.data.dim() != 2:
            raise ValueError(f".T is for matrices (2 dims), this Value has shape {list(self.shape)}; "
                             "use .transpose(dim0, dim1)")
        return self.transpose(0, 1)

    def reshape(self, *shape: int | Sequence[int]) -> Value:
        """out = the same entries in a new shape.   da = dout reshaped back to a's shape.   t = ta reshaped."""
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        in_shape = self.data.shape

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout.reshape(in_shape),)

        return _result(self.data.reshape(shape), (self,), "reshape", backward, lambda ta: ta.reshape(shape))

    def permute(self, *dims: int | Sequence[int]) -> Value:
        """out = a with its dims reordered: out dim i is a's dim dims[i].   da = dout with the inverse order.
        t = ta reordered as a."""
        if len(dims) == 1 and not isinstance(dims[0], int):
            dims = tuple(dims[0])
        ndim = self.data.dim()
        if sorted(d % max(ndim, 1) for d in dims) != list(range(ndim)):
            raise ValueError(f"permute{tuple(dims)} of a Value with {ndim} dims: name every dim once")
        inverse = [0] * ndim
        for i, d in enumerate(dims):
            inverse[d % ndim] = i

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout.permute(inverse),)

        return _result(self.data.permute(dims), (self,), "permute", backward, lambda ta: ta.permute(dims))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Value:
        """Dims start_dim..end_dim merged into one, as torch: a reshape, so reshape's rule undoes it."""
        shape = list(self.data.shape)
        start, end = start_dim % max(len(shape), 1), end_dim % max(len(shape), 1)
        if not shape:
            return self.reshape(1)
        return self.reshape(shape[:start] + [-1] + shape[end + 1:])

    def expand(self, *shape: int | Sequence[int]) -> Value:
        """out = a repeated along its dims of size 1 (and new leading dims) to `shape`, as torch's expand.

        da = dout summed back over every repeated dim (the rule of broadcasting).   t = ta expanded.
        """
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        in_shape = self.data.shape

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (_sum_to_shape(dout, in_shape, "expand"),)

        return _result(self.data.expand(shape), (self,), "expand", backward, lambda ta: ta.expand(shape))

    def __getitem__(self, index: int | slice | tuple | None) -> Value:
        """out = a[index], with torch's basic indexing: ints, slices (x[:, t, :], x[:, :, 0:H]), None and ...

        da = zeros of a's shape with dout written back at `index` (basic indexing picks every
        entry at most once, so writing is enough). Saves only a's shape.   t = ta[index].
        """
        parts = index if isinstance(index, tuple) else (index,)
        if not all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts):
            raise TypeError(f"a Value takes basic indices (ints, slices, None, ...), got {index!r}; "
                            "indexing by a tensor or a list of indices is not supported")
        in_shape = self.data.shape

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (_put_at(dout, index, in_shape),)

        return _result(self.data[index], (self,), "getitem", backward, lambda ta: ta[index])

    def unfold(self, dim: int, size: int, step: int) -> Value:
        """Every window of `size` entries along `dim`, `step` apart, as torch's Tensor.unfold.

        forward:   dim of length n becomes the window index w (n_w = (n - size) // step + 1 windows),
                   and a new last dim holds the offset i within the window:
                   out[..., w, ..., i] = a[..., w*step + i, ...]   (a view: overlapping windows share entries)
        backward:  da[..., w*step + i, ...] += dout[..., w, ..., i], one strided add for each of the
                   `size` offsets i (an entry in several windows collects a gradient from each):
                   along two dims this is col2im, the backward of the windows a convolution reads.
        tangent:   ta's windows (unfold is linear).   Saves only a's shape.
        """
        in_shape = self.data.shape
        d = dim % max(self.data.dim(), 1)
        out = self.data.unfold(d, size, step)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (_fold(dout, d, size, step, in_shape),)

        return _result(out, (self,), "unfold", backward, lambda ta: ta.unfold(d, size, step))

    def pad2d(self, padding: int) -> Value:
        """out = a with `padding` zeros added on every side of its last two dims (height and width).

        As torch's zero padding, F.pad(a, (p, p, p, p)).   da = dout with the border cut off
        (the zeros are constants: no gradient goes to them).   t = ta padded with zeros.
        """
        if padding == 0:
            return self
        p = padding
        *lead, h, w = self.data.shape
        out = self.data.new_zeros(*lead, h + 2 * p, w + 2 * p)
        out[..., p:p + h, p:p + w] = self.data

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout[..., p:p + h, p:p + w],)

        def tangent(ta: Tensor) -> Tensor:
            t = ta.new_zeros(out.shape)
            t[..., p:p + h, p:p + w] = ta
            return t

        return _result(out, (self,), "pad2d", backward, tangent)

    # ------------------------------------------------------------------ reductions

    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Value:
        """out = sum of a over `dim` (all dims when None).

        da = dout copied back along every summed dim (each summed entry moved the sum by 1).   t = ta summed.
        """
        dims = _dims(dim, self.data.dim())
        in_shape = self.data.shape

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (_unreduce(dout, in_shape, dims, keepdim),)

        return _result(self.data.sum(dim=dims, keepdim=keepdim), (self,), "sum", backward,
                       lambda ta: ta.sum(dim=dims, keepdim=keepdim))

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Value:
        """out = sum of a over `dim` / n, with n the number of entries averaged.   da = dout / n, copied back.
        t = ta averaged."""
        dims = _dims(dim, self.data.dim())
        in_shape = self.data.shape
        out = self.data.mean(dim=dims, keepdim=keepdim)
        n = self.data.numel() // max(out.numel(), 1)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (_unreduce(dout / n, in_shape, dims, keepdim),)

        return _result(out, (self,), "mean", backward, lambda ta: ta.mean(dim=dims, keepdim=keepdim))

    def max(self, dim: int, keepdim: bool = False) -> MaxResult:
        """(values, indices): the largest entry along `dim`, and where it is, as torch's max(dim).

        When several entries tie, the first one wins, as in torch (and in torch's max pooling).
        da = dout at the winning position, 0 elsewhere: only the winner moved the output.
        t = ta at the winning position.   Saves the indices.
        Returns the values as a Value and the indices as a plain tensor.
        """
        if self.data.dim() == 0:  # a 0-dim value is its own maximum
            return MaxResult(_result(self.data.clone(), (self,), "max", lambda dout, out, a: (dout,),
                                     lambda ta: ta.clone()),
                             torch.zeros((), dtype=torch.int64, device=self.data.device))
        d = dim % self.data.dim()
        values, where = self.data.max(dim=d, keepdim=True)  # where: the winners' indices, dim d kept (size 1)
        in_shape = self.data.shape

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            kept = dout if keepdim else dout.reshape(where.shape)  # dim d back, of size 1
            return (_scatter(kept, d, where, in_shape),)

        def tangent(ta: Tensor) -> Tensor:
            picked = ta.gather(d, where)
            return picked if keepdim else picked.squeeze(d)

        if keepdim:
            return MaxResult(_result(values, (self,), "max", backward, tangent), where)
        return MaxResult(_result(values.squeeze(d), (self,), "max", backward, tangent), where.squeeze(d))

    # ------------------------------------------------------------------ elementwise functions

    def exp(self) -> Value:
        """out = e^a.   da = dout * out (e^a is its own derivative).   t = ta * out.   Saves out."""
        out = torch.exp(self.data)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout * out,)

        return _result(out, (self,), "exp", backward, lambda ta: ta * out)

    def log(self) -> Value:
        """out = ln a.   da = dout / a.   t = ta / a.   Saves a."""
        a = self.data

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout / a,)

        return _result(torch.log(a), (self,), "log", backward, lambda ta: ta / a)

    def relu(self) -> Value:
        """out = max(0, a).   da = dout * [out > 0]  (0 at a = 0, as torch).   t = ta * [out > 0].   Saves out."""
        out = torch.clamp_min(self.data, 0.0)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout * (_data(out) > 0),)  # the mask is a constant: relu's second derivative is 0

        return _result(out, (self,), "relu", backward, lambda ta: ta * (out > 0))

    def sigmoid(self) -> Value:
        """out = 1 / (1 + e^-a).   da = dout * out * (1 - out).   t = ta * out * (1 - out).   Saves out."""
        out = torch.sigmoid(self.data)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout * out * (1 - out),)

        return _result(out, (self,), "sigmoid", backward, lambda ta: ta * out * (1 - out))

    def tanh(self) -> Value:
        """out = tanh a.   da = dout * (1 - out^2).   t = ta * (1 - out^2).   Saves out."""
        out = torch.tanh(self.data)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout * (1 - out * out),)

        return _result(out, (self,), "tanh", backward, lambda ta: ta * (1 - out * out))

    def sqrt(self) -> Value:
        """out = a^(1/2).   da = dout / (2 out).   t = ta / (2 out).   Saves out."""
        out = torch.sqrt(self.data)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout / (2 * out),)

        return _result(out, (self,), "sqrt", backward, lambda ta: ta / (2 * out))

    def rsqrt(self) -> Value:
        """out = a^(-1/2), as in layer norm's 1/sqrt(var + eps).   da = -dout * out^3 / 2.   t = -ta * out^3 / 2.
        Saves out."""
        out = torch.rsqrt(self.data)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (-0.5 * dout * out * out * out,)

        return _result(out, (self,), "rsqrt", backward, lambda ta: -0.5 * ta * out * out * out)

    def gelu(self) -> Value:
        """out = a * Phi(a), Phi(a) = (1 + erf(a / sqrt(2))) / 2: the exact (erf) form, as scratch.GELU.

        da = dout * (Phi(a) + a * phi(a)),  phi(a) = e^(-a^2 / 2) / sqrt(2 pi)   (product rule; phi = Phi')
        t = ta * (Phi(a) + a * phi(a)).   Saves a and Phi(a).
        """
        a = self.data
        cdf = 0.5 * (1 + torch.erf(a * SQRT_HALF))

        def slope(a: Either) -> Either:  # Phi(a) + a phi(a); the saved Phi(a) in tensors, recomputed on Values
            return (cdf if isinstance(a, Tensor) else _normal_cdf(a)) + a * (-0.5 * a * a).exp() * INV_SQRT_2PI

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout * slope(a),)

        return _result(a * cdf, (self,), "gelu", backward, lambda ta: ta * slope(a))

    def log_softmax(self, dim: int = -1) -> Value:
        """out = a - log sum_j e^(a_j) along `dim`: log-probabilities that sum (as probabilities) to 1.

        forward:   m = max_j a_j (a constant shift, so e^x never overflows), out = a - m - log sum_j e^(a_j - m)
        backward:  da = dout - softmax(a) * sum_j dout_j,   with softmax(a) = e^out.   Saves out.
        tangent:   t = ta - sum_j softmax(a)_j ta_j   (the same Jacobian, applied from the other side)
        It could be built from sub, exp, sum and log; as one op it is one node and one line of backward.
        """
        shifted = self.data - self.data.amax(dim=dim, keepdim=True)
        out = shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (dout - out.exp() * dout.sum(dim=dim, keepdim=True),)

        return _result(out, (self,), "log_softmax", backward,
                       lambda ta: ta - (torch.exp(out) * ta).sum(dim=dim, keepdim=True))

    def softmax(self, dim: int = -1) -> Value:
        """out = e^a / sum_j e^(a_j) along `dim`: positive, summing to 1 (computed as e^(a - max a)).

        da = out * (dout - sum_j dout_j out_j)   (the Jacobian diag(out) - out out^T, applied to dout).
        t = out * (ta - sum_j out_j ta_j)   (the Jacobian is symmetric: the same formula).   Saves out.
        """
        e = torch.exp(self.data - self.data.amax(dim=dim, keepdim=True))
        out = e / e.sum(dim=dim, keepdim=True)

        def backward(dout: Either, out: Either, a: Either) -> tuple[Either]:
            return (out * (dout - (dout * out).sum(dim=dim, keepdim=True)),)

        return _result(out, (self,), "softmax", backward,
                       lambda ta: out * (ta - (out * ta).sum(dim=dim, keepdim=True)))

    # ------------------------------------------------------------------ backpropagation

    def backward(self, grad: Tensor | Value | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Fill `.grad` of every Value this one was computed from: d(self)/d(value), by the chain rule.

        1. Order the graph so that every value comes after the values it was computed from.
        2. Walk that order backwards, from `self` to the leaves. When a value's turn comes, every
           value computed from it has already passed its share of the gradient down, so its
           gradient is complete: add it to `.grad`, then hand it to the op's backward rule to get
           the gradients of its parents.
        A value used by several ops receives one share from each and the shares add up (the
        multivariable chain rule). Gradients add into `.grad`, as in torch: call `zero_grad`
        between steps. Afterwards the backward rules are dropped (the graph is freed) unless
        retain_graph=True.

        create_graph=True records the backward pass itself, as torch's: the rules run on Values (the
        outputs and inputs of their ops) instead of tensors, so every `.grad` is then a Value with a
        graph of its own, which can be differentiated again (second derivatives). The graph of the
        first pass is kept (retain_graph defaults to create_graph), because the second walks it.
        """
        if not self.requires_grad:
            raise GraphError(
                "backward() was called on a Value that no parameter influences (requires_grad is False): "
                "make the parameters with Value(..., requires_grad=True), and do not compute inside no_grad()"
            )
        seed = _seed(self, grad, "backward(dout)")
        _backpropagate(self, seed, create_graph if retain_graph is None else retain_graph, create_graph)

    def topological_order(self, constants: bool = False) -> list[Value]:
        """Every value `self` was computed from, each after all of its parents; `self` last.

        backward() walks the values that need a gradient (requires_grad); constants=True also
        lists the data and constants, for printing the whole graph (compare/pictures/graph.py).
        A depth-first search that appends a value once all its parents are appended, visiting
        parents in order (the first operand's inputs come first). It keeps its own stack
        instead of recursing, so a deep graph cannot hit Python's recursion limit.
        """
        order: list[Value] = []
        seen: set[Value] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
                continue
            if node in seen:
                continue
            seen.add(node)
            stack.append((node, True))  # comes back here after the parents pushed next
            stack.extend((p, False) for p in reversed(node._parents)  # reversed: the first is popped first
                         if (constants or p.requires_grad) and p not in seen)
        return order

    def _add_to_grad(self, dout: Tensor | Value) -> None:
        if type(dout) is Value or type(self.grad) is Value:  # a recorded pass (create_graph) was here:
            self.grad = dout if self.grad is None else self.grad + dout  # .grad is a Value, with a graph of its own
        elif self._parents:  # an intermediate result: .grad records this pass, and is never changed in place
            self.grad = dout if self.grad is None else self.grad + dout
        elif self.grad is None:
            self.grad = dout.clone()  # a leaf's own buffer: a rule may pass one tensor on to several values
        else:
            self.grad.add_(dout)  # in place, so an optimizer holding this buffer sees the new gradient


def _seed(root: Value, grad: Tensor | Value | None, what: str) -> Tensor | Value:
    """The upstream gradient a backward pass starts from: `grad`, or 1 for a one-number root."""
    if grad is None:
        if root.data.numel() != 1:
            raise GraphError(
                f"backward() on a non-scalar Value of shape {list(root.shape)} needs an upstream gradient: "
                f"call {what} with a tensor of that shape holding dL/d(this value), or reduce it to "
                "one number first (for example .sum() or a loss)"
            )
        return torch.ones_like(root.data)
    if tuple(grad.shape) != tuple(root.shape):
        raise GraphError(f"{what}: dout has shape {list(grad.shape)}, but this Value has shape "
                         f"{list(root.shape)}; they must match")
    return grad if isinstance(grad, Value) else grad.to(dtype=root.dtype, device=root.data.device)


def _backpropagate(root: Value, seed: Tensor | Value, retain_graph: bool, create_graph: bool,
                   wanted: dict[int, int] | None = None) -> list[Tensor | Value | None]:
    """Walk the graph from `root` back to its leaves; each value's gradient, once complete, is added to its
    `.grad` (backward), or, given `wanted` (id of a Value -> position), only collected for those (grad).

    Plain: the rules get tensors (each op's output and inputs) and give tensors. create_graph: they get
    Values (the op's output node and its input nodes) and give Values, every step recorded as ops are.
    """
    order = root.topological_order()
    freed = [node for node in order if node._parents and node._backward is None]
    if freed:
        raise GraphError(
            f"backward() through a graph that was already freed: an earlier backward() dropped the backward "
            f"rule of the {freed[-1]._op!r} node (shape {list(freed[-1].shape)}). Run the forward pass again "
            "to build a new graph, or pass retain_graph=True to the first backward() to go through it twice"
        )
    if create_graph and not isinstance(seed, Value):
        seed = Value(seed)
    grads: dict[Value, Tensor | Value] = {root: seed}  # this pass only
    found: list[Tensor | Value | None] = [None] * len(wanted or ())
    for node in reversed(order):
        dout = grads.pop(node)  # complete: every consumer of `node` came earlier in this loop
        if wanted is None:
            node._add_to_grad(dout)
        elif id(node) in wanted:
            found[wanted[id(node)]] = dout
        if not node._parents:
            continue
        if create_graph:
            shares = node._backward(dout, node, *node._parents)
        else:
            shares = node._backward(dout, node.data, *[p.data for p in node._parents])
        for parent, dparent in zip(node._parents, shares, strict=True):
            if not parent.requires_grad:
                continue  # a constant (input data, a target): nobody asks for its gradient
            dparent = _sum_to_shape(dparent, parent.shape, node._op)
            grads[parent] = grads[parent] + dparent if parent in grads else dparent
        if not retain_graph:
            node._backward = None  # drops the tensors the rule saved
    return found


def grad(outputs: Value | Sequence[Value], inputs: Value | Sequence[Value],
         grad_outputs: Tensor | Value | Sequence[Tensor | Value | None] | None = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | Value | None, ...]:
    """d(outputs)/d(inputs), weighted by grad_outputs, as torch.autograd.grad: returned, not added to `.grad`.

    With several outputs, the gradient of sum_k <output_k, grad_output_k>. With create_graph=True the
    gradients are Values with a graph of their own (see Value.backward), so grad() can be applied to
    them again: a gradient penalty, a Hessian-vector product, Newton's method. An input that no output
    depends on is an error, or None with allow_unused=True.
    """
    outputs = [outputs] if isinstance(outputs, Value) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Value) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, Value)):
        grad_outputs = [grad_outputs] * len(outputs) if len(outputs) == 1 or grad_outputs is None else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs; give one per output")
    for o in outputs:
        if not o.requires_grad:
            raise GraphError("grad(): an output does not depend on any Value with requires_grad=True")
    seeds = [_seed(o, g, "grad(outputs, inputs, grad_outputs)") for o, g in zip(outputs, grad_outputs, strict=True)]
    root, seed = outputs[0], seeds[0]
    if len(outputs) > 1:  # one root: sum_k <o_k, g_k>, whose gradient is exactly the weighted sum asked for
        root = (outputs[0] * seeds[0]).sum()
        for o, g in zip(outputs[1:], seeds[1:], strict=True):
            root = root + (o * g).sum()
        seed = torch.ones_like(root.data)
    wanted = {id(v): i for i, v in enumerate(inputs)}
    retain = create_graph if retain_graph is None else retain_graph
    found = _backpropagate(root, seed, retain, create_graph, wanted)
    missing = [i for i, g in enumerate(found) if g is None]
    if missing and not allow_unused:
        raise GraphError(f"grad(): input {missing[0]} is not used to compute the outputs (or needs no gradient); "
                         "pass allow_unused=True to get None for it")
    return tuple(found)


def vjp(func: Callable[..., Value], *primals: Tensor) -> tuple[Tensor, Callable[[Tensor], tuple[Tensor, ...]]]:
    """(func(*primals), vjp_fn), as torch.func.vjp: vjp_fn(v) is v^T J, the gradient of <func(primals), v> with
    respect to each primal, by one backward pass (reverse mode); vjp_fn may be called again (the graph is kept)."""
    values = [Value(p, requires_grad=True) for p in primals]
    out = func(*values)

    def vjp_fn(v: Tensor) -> tuple[Tensor, ...]:
        grads = grad(out, values, v, retain_graph=True, allow_unused=True)
        return tuple(torch.zeros_like(p) if g is None else g for p, g in zip(primals, grads, strict=True))

    return out.data, vjp_fn


def hvp(func: Callable[..., Value], primals: Sequence[Tensor],
        tangents: Sequence[Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """(func(primals), H v) for a function with one-number output: the Hessian-vector product, forward over reverse.

    The gradient g = dfunc/dx is computed with create_graph=True while forward mode is on, so every op of the
    backward pass carries a tangent too: g's tangent is the directional derivative of the gradient along v, H v,
    at about the cost of one gradient more, without forming H. As torch.func.jvp(torch.func.grad(func), ...).
    """
    global _forward_mode
    if len(primals) != len(tangents):
        raise ValueError(f"hvp: {len(primals)} primals but {len(tangents)} tangents; give one tangent per primal")
    values = []
    for p, t in zip(primals, tangents, strict=True):
        if tuple(p.shape) != tuple(t.shape):
            raise ValueError(f"hvp: a tangent has shape {list(t.shape)}, its primal {list(p.shape)}; they must match")
        value = Value(p, requires_grad=True)
        value.tangent = t.to(dtype=p.dtype, device=p.device)
        values.append(value)
    previous, _forward_mode = _forward_mode, True
    try:
        out = func(*values)
        grads = grad(out, values, create_graph=True, allow_unused=True)
    finally:
        _forward_mode = previous
    return out.data, tuple(torch.zeros_like(p) if g is None or g.tangent is None else g.tangent
                           for p, g in zip(primals, grads, strict=True))


def jacrev(func: Callable[[Value], Value], x: Tensor) -> Tensor:
    """The Jacobian d func(x) / dx, of shape [*out, *x], one row per backward pass (as torch.func.jacrev): m passes
    for m outputs, so it suits few outputs (a loss: one row, its gradient) and many inputs."""
    out, vjp_fn = vjp(func, x)
    rows = []
    for i in range(out.numel()):
        direction = torch.zeros(out.numel(), dtype=out.dtype, device=out.device)
        direction[i] = 1
        rows.append(vjp_fn(direction.reshape(out.shape))[0])
    return torch.stack(rows).reshape(*out.shape, *x.shape)


def hessian(func: Callable[[Value], Value], x: Tensor) -> Tensor:
    """The Hessian d^2 func(x) / dx^2 of a one-number func, of shape [*x, *x], one column per hvp (for small x)."""
    columns = []
    for i in range(x.numel()):
        direction = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
        direction[i] = 1
        columns.append(hvp(func, (x,), (direction.reshape(x.shape),))[1][0])
    return torch.stack(columns, dim=-1).reshape(*x.shape, *x.shape)


def _data(x: Tensor | Value) -> Tensor:
    """The tensor of a Value, or the tensor itself: for what a rule reads but never differentiates (masks)."""
    return x.data if isinstance(x, Value) else x


def _put_at(dout: Either, index: object, shape: torch.Size) -> Either:
    """Zeros of `shape` with dout written at `index` (getitem's gradient); on Values an op, whose rule is getitem."""
    if isinstance(dout, Tensor):
        da = dout.new_zeros(shape)
        da[index] = dout
        return da
    return _result(_put_at(dout.data, index, shape), (dout,), "put_at", lambda g, out, d: (g[index],),
                   lambda t: _put_at(t, index, shape))


def _fold(dout: Either, d: int, size: int, step: int, shape: torch.Size) -> Either:
    """unfold's gradient: each window's entries added back where they were cut out (col2im along one dim).
    On Values an op, whose rule is unfold (the two are each other's transpose)."""
    if isinstance(dout, Tensor):
        da = dout.new_zeros(shape)
        windows = dout.shape[d]
        for i in range(size):
            at = (slice(None),) * d + (slice(i, i + step * (windows - 1) + 1, step),)
            da[at] += dout[..., i]
        return da
    return _result(_fold(dout.data, d, size, step, shape), (dout,), "fold",
                   lambda g, out, x: (g.unfold(d, size, step),), lambda t: _fold(t, d, size, step, shape))


def _scatter(kept: Either, d: int, where: Tensor, shape: torch.Size) -> Either:
    """Zeros of `shape` with kept's entries at the indices `where` along d (max's gradient); on Values an op,
    whose rule is the gather at the same indices."""
    if isinstance(kept, Tensor):
        return kept.new_zeros(shape).scatter_(d, where, kept)
    return _result(_scatter(kept.data, d, where, shape), (kept,), "scatter", lambda g, out, k: (_gather(g, d, where),),
                   lambda t: _scatter(t, d, where, shape))


def _gather(x: Either, d: int, where: Tensor) -> Either:
    """x's entries at the indices `where` along d; on Values an op, whose rule is the scatter back."""
    if isinstance(x, Tensor):
        return x.gather(d, where)
    shape = x.shape
    return _result(x.data.gather(d, where), (x,), "gather", lambda g, out, a: (_scatter(g, d, where, shape),),
                   lambda t: t.gather(d, where))


def _normal_cdf(a: Value) -> Value:
    """Phi(a) = (1 + erf(a / sqrt(2))) / 2 as an op of its own (gelu's, recorded): dPhi/da = phi(a)."""
    def phi(a: Either) -> Either:
        return (-0.5 * a * a).exp() * INV_SQRT_2PI

    return _result(0.5 * (1 + torch.erf(a.data * SQRT_HALF)), (a,), "normal_cdf", lambda g, out, x: (g * phi(x),),
                   lambda t: t * phi(a.data))


def _result(data: Tensor, parents: tuple[Value, ...], op: str, backward: BackwardRule,
            tangent: TangentRule | None = None) -> Value:
    """The output of an op. It records its parents and backward rule only when it will need them:
    while recording (outside no_grad) and when some parent needs a gradient. In forward mode (some
    parent carries a tangent) it gets its own tangent from the tangent rule, in the output's shape."""
    if _recording and any(p.requires_grad for p in parents):
        out = Value(data, requires_grad=True, _parents=parents, _op=op, _backward=backward)
    else:
        out = Value(data, _op=op)
    if _forward_mode and any(p.tangent is not None for p in parents):
        if tangent is None:
            raise NotImplementedError(f"the {op!r} op has no tangent rule: forward mode (jvp) cannot pass through it")
        t = tangent(*(p.tangent for p in parents))
        out.tangent = t if t.shape == data.shape else t.expand(data.shape)  # a broadcast input's tangent, stretched
    return out


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor:
    """The sum of two tangent terms, either of which may be absent (an input without a tangent)."""
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _neg(t: Tensor | None) -> Tensor | None:
    return None if t is None else -t


def _times(t: Tensor | None, factor: Tensor) -> Tensor | None:
    return None if t is None else t * factor


def _sum_to_shape(grad: Either, shape: torch.Size, op: str) -> Either:
    """Undo broadcasting: sum the gradient over every dim along which the input was stretched.

    An input of shape [16] added to [32, 16] was copied into 32 rows; each copy passes on its
    own gradient and the input receives their sum (a bias gradient sums over the batch).
    Dims that broadcasting added in front are summed away; dims of size 1 are summed, kept.
    """
    if grad.shape == shape:
        return grad
    extra = grad.dim() - len(shape)
    if extra > 0:
        grad = grad.sum(dim=tuple(range(extra)))
    stretched = tuple(d for d, n in enumerate(shape) if n == 1 and grad.shape[d] != 1)
    if stretched:
        grad = grad.sum(dim=stretched, keepdim=True)
    if grad.shape != shape:
        raise RuntimeError(f"internal error: the {op!r} rule gave a gradient of shape {list(grad.shape)} "
                           f"for an input of shape {list(shape)}")
    return grad


def _dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """The reduced dims as non-negative ints, sorted; all dims for None."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if any(not -max(ndim, 1) <= d < max(ndim, 1) for d in dims):
        raise IndexError(f"dim {dim} is out of range for a Value with {ndim} dims")
    if ndim == 0:  # a 0-dim value's only dim (0 or -1, as torch allows) is the value itself: nothing to reduce
        return ()
    return tuple(sorted(d % ndim for d in dims))


def _unreduce(dout: Either, in_shape: torch.Size, dims: tuple[int, ...], keepdim: bool) -> Either:
    """Copy a reduction's gradient back along the reduced dims: [B] -> [B, 1] -> [B, C]."""
    if isinstance(dout, Tensor):
        if not keepdim:
            for d in dims:  # sorted, so each unsqueeze lands where the dim was
                dout = dout.unsqueeze(d)
        return dout.expand(in_shape)
    kept = tuple(1 if d in dims else n for d, n in enumerate(in_shape))  # a Value: the same by reshape and expand
    return dout.reshape(kept).expand(in_shape)


# ---------------------------------------------------------------------- ops on several Values


def cat(values: Sequence[Value | Tensor], dim: int = 0) -> Value:
    """out = the inputs joined end to end along `dim`, as torch.cat.

    d(input k) = the slice of dout that input k filled (dout split at the same sizes).
    t = the inputs' tangents joined the same way (zeros for an input without one).
    """
    values = [v if isinstance(v, Value) else Value(v) for v in values]
    sizes = [v.shape[dim] for v in values]

    def backward(dout: Either, out: Either, *inputs: Either) -> tuple[Either, ...]:
        starts = [sum(sizes[:k]) for k in range(len(sizes))]
        return tuple(dout[(slice(None),) * (dim % dout.dim()) + (slice(start, start + size),)]
                     for start, size in zip(starts, sizes, strict=True))

    def tangent(*ts: Tensor | None) -> Tensor:
        return torch.cat([torch.zeros_like(v.data) if t is None else t for v, t in zip(values, ts, strict=True)],
                         dim=dim)

    return _result(torch.cat([v.data for v in values], dim=dim), tuple(values), "cat", backward, tangent)


def stack(values: Sequence[Value | Tensor], dim: int = 0) -> Value:
    """out = the inputs (all of one shape) stacked along a new dim `dim`, as torch.stack.

    d(input k) = dout's k-th slice along `dim`.   t = the inputs' tangents stacked (zeros for one without).
    """
    values = [v if isinstance(v, Value) else Value(v) for v in values]

    def backward(dout: Either, out: Either, *inputs: Either) -> tuple[Either, ...]:
        return tuple(dout[(slice(None),) * (dim % dout.dim()) + (k,)] for k in range(len(inputs)))

    def tangent(*ts: Tensor | None) -> Tensor:
        return torch.stack([torch.zeros_like(v.data) if t is None else t for v, t in zip(values, ts, strict=True)],
                           dim=dim)

    return _result(torch.stack([v.data for v in values], dim=dim), tuple(values), "stack", backward, tangent)


# ---------------------------------------------------------------------- forward mode


def jvp(func: Callable[..., Value | Sequence[Value]], primals: Sequence[Tensor],
        tangents: Sequence[Tensor]) -> tuple[Tensor | tuple[Tensor, ...], Tensor | tuple[Tensor, ...]]:
    """(func(*primals), J t): func's value and its Jacobian-vector product along `tangents`, in one forward pass.

    As torch.func.jvp. Each primal becomes a Value carrying its tangent; every op then carries its
    output's tangent too, by its tangent rule, so the output's tangent is the directional derivative
        J t = lim_{h -> 0} (func(primals + h t) - func(primals)) / h.
    Nothing is recorded for backward (no_grad): forward mode needs no graph. A Value that func uses
    without it being a primal (a layer's weights) may carry a tangent of its own, set beforehand on
    `.tangent`. An output that does not depend on any tangent gets a zero tangent. Tangents travel
    only inside jvp (outside it, ops do not look for them).
    """
    global _forward_mode
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents; give one tangent per primal")
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        if tuple(p.shape) != tuple(t.shape):
            raise ValueError(f"jvp: tangent {i} has shape {list(t.shape)}, its primal {list(p.shape)}; they must match")
    values = []
    for p, t in zip(primals, tangents, strict=True):
        value = Value(p)
        value.tangent = t.to(dtype=p.dtype, device=p.device)
        values.append(value)
    previous, _forward_mode = _forward_mode, True
    try:
        with no_grad():
            out = func(*values)
    finally:
        _forward_mode = previous
    outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    results = tuple(o.data for o in outs)
    pushed = tuple(torch.zeros_like(o.data) if o.tangent is None else o.tangent for o in outs)
    return (results, pushed) if isinstance(out, (tuple, list)) else (results[0], pushed[0])


def jacfwd(func: Callable[[Value], Value], x: Tensor) -> Tensor:
    """The Jacobian d func(x) / dx, of shape [*out, *x], one column per jvp along a basis direction (as
    torch.func.jacfwd): n forward passes for x of n entries, so it suits wide outputs and few inputs."""
    columns = []
    for i in range(x.numel()):
        direction = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
        direction[i] = 1
        _, column = jvp(func, (x,), (direction.reshape(x.shape),))
        columns.append(column)
    return torch.stack(columns, dim=-1).reshape(*columns[0].shape, *x.shape)


# ---------------------------------------------------------------------- losses built from the ops


def one_hot(target: Tensor, num_classes: int, like: Value) -> Value:
    """Integer classes [B] -> a constant [B, C] of 0s with a 1 at each target (no gradient)."""
    onehot = torch.zeros(len(target), num_classes, dtype=like.dtype, device=like.data.device)
    onehot[torch.arange(len(target), device=onehot.device), target] = 1
    return Value(onehot, name="onehot(y)")


def cross_entropy(logits: Value, target: Tensor) -> Value:
    """L = -(1/B) sum_b log softmax(z_b)[y_b], written as ops, so backward() needs no rule of its own:

        L = -mean_b( sum_c onehot[b, c] * log_softmax(z)[b, c] )
    """
    check_loss_inputs(logits.data, target, "cross_entropy")
    picked = (one_hot(target, logits.shape[1], logits) * logits.log_softmax(dim=1)).sum(dim=1)  # B
    return -picked.mean()


def mse_loss(output: Value, target: Tensor) -> Value:
    """L = (1/(B*C)) sum_{b,c} (out[b, c] - onehot[b, c])^2, as `scratch.losses.MSELoss`."""
    check_loss_inputs(output.data, target, "mse_loss")
    return ((output - one_hot(target, output.shape[1], output)) ** 2).mean()


LOSSES: dict[str, Callable[[Value, Tensor], Value]] = {"cross-entropy": cross_entropy, "mse": mse_loss}
