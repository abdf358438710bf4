"""A 2-D convolution written by hand: one small linear layer slid over every k x k window of an image.

    >>> conv = Conv2d(1, 6, kernel_size=5, padding=2)    # LeNet's first layer
    >>> out = conv(x)                                    # x: [B, 1, 28, 28]  ->  out: [B, 6, 28, 28]
    >>> dx = conv.backward(dout)                         # fills conv.dweight, conv.dbias

How: im2col ("image to columns") copies every window into one column of a matrix, so the whole
convolution becomes ONE matrix product (one per slice of a large batch, see Conv2d); col2im is its
adjoint, adding each column back onto the pixels it came from. docs/cnn.md works both through on
a 4x4 example with numbers, and derives the backward pass; tests/conv_reference.py holds the same
convolution as plain loops (the definition).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.linear import linear_init_
from scratch.module import Module


def output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """How many window positions fit along one side: floor((size + 2 padding - k) / stride) + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


# A batch is convolved in slices whose columns take about this many bytes (the size of the CPU's L2
# cache, 1-2 MB): see the last paragraph of Conv2d's docstring.
SLICE_BYTES = 2 * 2**20


def batch_slices(batch: int, bytes_per_example: int) -> list[slice]:
    """Consecutive slices of the batch, each with at most SLICE_BYTES of columns (at least one example)."""
    step = max(1, SLICE_BYTES // bytes_per_example)
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


def im2col(x: Tensor, kernel_size: int, stride: int, padding: int, out: Tensor | None = None) -> Tensor:
    """Every k x k window of the zero-padded x, one window per column.

    cols[(c, i, j), (y, x, b)] = xpad[b, c, s*y + i, s*x + j]         x: [B, C, H, W] -> cols: [C*k*k, OH*OW*B]

    The batch index is the innermost (fastest-varying) one of a column's (y, x, b), so the copy
    below, and col2im's adds, move OW*B consecutive numbers at a time instead of OW: LeNet's second
    layer measured 1.3-1.5x faster (forward and backward) than with columns ordered (b, y, x).
    With `out` (a tensor of at least C*k*k*OH*OW*B elements) the columns are written into its first ones.
    """
    batch, channels, height, width = x.shape
    k, s, p = kernel_size, stride, padding
    out_h, out_w = output_size(height, k, s, p), output_size(width, k, s, p)
    xpad = x.new_zeros(channels, height + 2 * p, width + 2 * p, batch)  # C,H+2p,W+2p,B: batch innermost
    xpad[:, p:p + height, p:p + width] = x.permute(1, 2, 3, 0)
    # Tensor.unfold(dim, k, s) is a view: along dim, window y starts at s*y and the window's k
    # entries become a new last dimension. Nothing is copied until the reshape.
    windows = xpad.unfold(1, k, s).unfold(2, k, s)  # C,OH,OW,B,k,k
    shape = (channels * k * k, out_h * out_w * batch)
    if out is None:
        return windows.permute(0, 4, 5, 1, 2, 3).reshape(shape)  # C*k*k,OH*OW*B
    cols = out.view(-1)[:shape[0] * shape[1]].view(shape)  # C*k*k,OH*OW*B: the first elements of out
    cols.view(channels, k, k, out_h, out_w, batch).copy_(windows.permute(0, 4, 5, 1, 2, 3))
    return cols


def col2im(cols: Tensor, x_shape: tuple[int, ...], kernel_size: int, stride: int, padding: int) -> Tensor:
    """The adjoint of im2col: add every column entry back onto the input pixel it was copied from.

    dx[b, c, s*y + i - p, s*x + j - p] += cols[(c, i, j), (y, x, b)]   cols: [C*k*k, OH*OW*B] -> dx: [B, C, H, W]

    A pixel inside n windows receives n entries (the sum of the gradients of every output it
    fed); the padding's entries are dropped by cropping. One strided add per kernel offset (i, j):
    k*k large adds, much faster than an index_add_ of every single entry. Returns a view in the
    [B, C, H, W] order (its memory is batch-innermost): the caller copies it where it belongs.
    """
    batch, channels, height, width = x_shape
    k, s, p = kernel_size, stride, padding
    out_h, out_w = output_size(height, k, s, p), output_size(width, k, s, p)
    cols = cols.view(channels, k, k, out_h, out_w, batch)  # C,k,k,OH,OW,B
    dxpad = cols.new_zeros(channels, height + 2 * p, width + 2 * p, batch)  # C,H+2p,W+2p,B
    for i in range(k):
        for j in range(k):
            # Offset (i, j) of window (y, x) is the padded pixel (s*y + i, s*x + j).
            dxpad[:, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s] += cols[:, i, j]  # C,OH,OW,B
    return dxpad[:, p:p + height, p:p + width].permute(3, 0, 1, 2)  # B,C,H,W


class Conv2d(Module):
    """out = weight * x + bias, a cross-correlation over every window (as PyTorch's `nn.Conv2d`).

    Output channel o at position (y, x) is one neuron looking at one k x k window of every input channel:
        out[b, o, y, x] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xpad[b, c, s*y + i, s*x + j]
    with xpad the input with `padding` zeros on each side and s the stride. With the window
    copied into a column (im2col), that sum is a dot product, and all of them are one product:

    forward:   cols  = im2col(x)                                   [C_in*k*k, OH*OW*B]
               out   = W @ cols + bias                             [C_out, OH*OW*B] -> [B, C_out, OH, OW]
    backward:  dW    = dout @ cols^T                               [C_out, C_in*k*k] (sum over every window)
               dbias = sum_{b, y, x} dout[b, :, y, x]              [C_out]
               dcols = W^T @ dout                                  [C_in*k*k, OH*OW*B]
               dx    = col2im(dcols)                               [B, C_in, H, W]
    with W = weight viewed as [C_out, C_in*k*k] and dout viewed as [C_out, OH*OW*B]. This is Linear's
    backward (dW = dout^T x, dx = dout W) with one "example" per window.
    cache: x. The columns are k*k times larger (25x for a 5x5 kernel), so backward rebuilds them.
    Square kernels, one stride and one padding for both directions (the cases PyTorch's int arguments cover).
    backward(dout, input_grad=False) skips dx and returns None: for the first layer, whose input is the data.

    Speed: the formulas above run on slices of the batch, each slice's columns about SLICE_BYTES (2 MB),
    forward and backward alike; dW sums the slices' products. The columns of a whole batch of 512
    MNIST images are 40 MB: written to memory, then read back by the product, and again by dW.
    A slice's columns stay in the CPU's cache from the copy to the products. Measured at batch 512
    on LeNet's first layer: 1.8x faster than one product over the whole batch (with its columns in
    a buffer kept between steps), 4x faster than with columns allocated afresh each step (the
    operating system then hands over 40 MB of new pages, one page fault per 4 KB). At batch 32 the
    first layer runs in 2 slices, the second in one.
    """

    param_names: tuple[str, ...] = ("weight", "bias")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        for name, value, least in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                   ("kernel_size", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"Conv2d: {name} must be an int >= {least} (square kernels, the same stride and "
                                 f"padding in both directions), got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        # Drawn in float32 like nn.Conv2d, by nn.Linear's rule with fan_in = in_channels * k * k.
        self.weight = torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        self.bias = torch.empty(out_channels) if bias else None
        if not bias:
            self.param_names = ("weight",)
        linear_init_(self.weight, self.bias, generator)
        self.dweight = torch.zeros_like(self.weight)
        self.dbias = torch.zeros_like(self.bias) if bias else None
        self.x: Tensor | None = None
        self.cols: Tensor | None = None  # one slice's columns, refilled slice after slice (see columns_buffer)

    def slices(self, x: Tensor, out_height: int, out_width: int) -> list[slice]:
        k = self.kernel_size
        return batch_slices(x.shape[0], self.in_channels * k * k * out_height * out_width * x.element_size())

    def columns_buffer(self, x: Tensor, out_height: int, out_width: int, examples: int) -> Tensor:
        """Room for the columns of `examples` examples, kept from call to call.

        A 2 MB tensor allocated and freed every step can be handed back to the operating system
        and mapped in again, one page fault per 4 KB: measured 960 faults and 2.5x the time per
        step of LeNet's first layer at batch 32, depending on what else the process allocated.
        """
        numel = self.in_channels * self.kernel_size ** 2 * out_height * out_width * examples
        if self.cols is None or self.cols.numel() < numel or self.cols.dtype != x.dtype or self.cols.device != x.device:
            self.cols = x.new_empty(numel)
        return self.cols

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input of shape [batch, {self.in_channels}, height, width], "
                             f"got {list(x.shape)}")
        batch, _, height, width = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        out_h, out_w = output_size(height, k, s, p), output_size(width, k, s, p)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"{self!r}: a {height}x{width} input with padding {p} is smaller than the "
                             f"{k}x{k} kernel; use a larger input or more padding")
        self.x = x  # B,C_in,H,W
        weight = self.weight.view(self.out_channels, -1)  # C_out,C_in*k*k
        out = x.new_empty(batch, self.out_channels, out_h, out_w)  # B,C_out,OH,OW
        parts = self.slices(x, out_h, out_w)
        buffer = self.columns_buffer(x, out_h, out_w, parts[0].stop)
        for part in parts:
            cols = im2col(x[part], k, s, p, out=buffer)  # C_in*k*k,OH*OW*b for the b examples of this slice
            if self.bias is None:
                out_part = weight @ cols  # C_out,OH*OW*b
            else:
                out_part = torch.addmm(self.bias.unsqueeze(1), weight, cols)  # C_out,OH*OW*b
            out[part] = out_part.view(self.out_channels, out_h, out_w, -1).permute(3, 0, 1, 2)  # b,C_out,OH,OW
        return out  # B,C_out,OH,OW

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.x is None:
            raise RuntimeError("Conv2d.backward called before forward; run forward on a batch first")
        x, k, s, p = self.x, self.kernel_size, self.stride, self.padding
        weight = self.weight.view(self.out_channels, -1)  # C_out,C_in*k*k
        dweight = self.dweight.view(self.out_channels, -1)  # C_out,C_in*k*k: the same memory
        dweight.zero_()  # the slices' products are added up below
        if self.dbias is not None:
            torch.sum(dout, dim=(0, 2, 3), out=self.dbias)  # C_out
        dx = torch.empty_like(x) if input_grad else None  # B,C_in,H,W
        parts = self.slices(x, dout.shape[2], dout.shape[3])
        buffer = self.columns_buffer(x, dout.shape[2], dout.shape[3], parts[0].stop)
        for part in parts:
            cols = im2col(x[part], k, s, p, out=buffer)  # C_in*k*k,OH*OW*b: rebuilt (see "cache:" above)
            dout_part = dout[part].permute(1, 2, 3, 0).reshape(self.out_channels, -1)  # C_out,OH*OW*b
            dweight.addmm_(dout_part, cols.t())  # C_out,C_in*k*k
            if dx is not None:
                dcols = weight.t() @ dout_part  # C_in*k*k,OH*OW*b
                dx[part] = col2im(dcols, tuple(x[part].shape), k, s, p)  # b,C_in,H,W
        return dx  # B,C_in,H,W (None without input_grad: saves the product for dcols and col2im)

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")
