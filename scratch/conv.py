"""A 2-D convolution written by hand: one small linear layer slid over every k x k window of an image.

    >>> conv = Conv2d(1, 6, kernel_size=5, padding=2)    # LeNet's first layer
    >>> out = conv(x)                                    # x: [B, 1, 28, 28]  ->  out: [B, 6, 28, 28]
    >>> dx = conv.backward(dout)                         # fills conv.dweight, conv.dbias

How: im2col ("image to columns") copies every window into one column of a matrix, so the whole
convolution becomes ONE matrix product; col2im is its adjoint, adding each column back onto the pixels
it came from. docs/cnn.md works both through on a 4x4 example with numbers, and derives the backward
pass; tests/conv_reference.py holds the same convolution as plain loops (the definition). Conv2d also
has two faster arrangements of the same sums (see its docstring): the input lowered along the width
only, and the input gradient as a convolution with the rotated kernel.

Layout: the batch is the innermost dimension of every tensor this layer makes. A [B, C, H, W] tensor
whose memory is ordered [C, H, W, B] (`batch_last`) is what the columns are cut from and what the
products write, so nothing is transposed between two convolutions; the [B, C, H, W] a caller sees is
a view of it (`Tensor.permute`), equal in every value to a contiguous one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.linear import linear_init_
from scratch.module import Module


def output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """How many window positions fit along one side: floor((size + 2 padding - k) / stride) + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


def batch_last(like: Tensor, batch: int, channels: int, height: int, width: int, zeros: bool = False) -> Tensor:
    """A new [B, C, H, W] tensor whose memory is [C, H, W, B] (batch innermost), as `like`'s dtype and device."""
    make = like.new_zeros if zeros else like.new_empty
    return make(channels, height, width, batch).permute(3, 0, 1, 2)  # B,C,H,W (a view of C,H,W,B)


def as_batch_last(x: Tensor) -> Tensor:
    """x [B, C, H, W] as its [C, H, W, B] view: free when x is batch-last already, else one copy."""
    return x.permute(1, 2, 3, 0).contiguous()  # C,H,W,B


# The products are made in chunks of output rows: the chunk's columns and the output rows its products write take
# about this many bytes on a CPU, half its L2 cache (see Conv2d, "Speed"). A GPU has no such cache to fit: there,
# all rows at once (None).
CHUNK_BYTES: dict[str, int | None] = {"cpu": 2**20}
# How the input is lowered on each device: "strips" (along the width only, k products; stride 1) or "windows"
# (whole k x k windows, im2col: one product). A strided convolution always takes whole windows. See Conv2d.
LOWERING: dict[str, str] = {"cpu": "strips", "cuda": "windows"}
# How dx of whole windows is computed on each device: "col2im" (dcols = W^T dout, then the scatter-add) or
# "rotated" (one convolution of dout with the kernel rotated by 180 degrees). See Conv2d, "Speed".
INPUT_GRADIENT: dict[str, str] = {"cpu": "col2im", "cuda": "rotated"}
# dW = dout @ cols^T is computed as (cols @ dout^T)^T from this many output channels on (see Conv2d, "Speed").
TRANSPOSED_DWEIGHT = 16


def row_chunks(out_height: int, bytes_per_row: int, device: torch.device) -> list[slice]:
    """Consecutive ranges of output rows, each with at most CHUNK_BYTES of columns (at least one row)."""
    budget = CHUNK_BYTES.get(device.type)
    step = out_height if budget is None else max(1, budget // bytes_per_row)
    return [slice(start, min(start + step, out_height)) for start in range(0, out_height, step)]


def im2col(xpad: Tensor, kernel_size: int, stride: int, rows: slice, out: Tensor) -> Tensor:
    """Every k x k window of output rows `rows`, one window per column, written into the first elements of `out`.

    cols[(c, i, j), (y, x, b)] = xpad[c, s*y + i, s*x + j, b]      xpad: [C, Hp, Wp, B] -> cols: [C*k*k, rows*OW*B]

    xpad is the zero-padded input with the batch innermost, so the copy moves OW*B consecutive numbers at
    a time. Tensor.unfold(dim, k, s) is a view: along dim, window y starts at s*y and the window's k
    entries become a new last dimension. Nothing is copied until copy_.
    """
    channels, k = xpad.shape[0], kernel_size
    windows = xpad.unfold(1, k, stride).unfold(2, k, stride)[:, rows]  # C,rows,OW,B,k,k
    _, n_rows, out_w, batch = windows.shape[:4]
    cols = out.view(-1)[:channels * k * k * n_rows * out_w * batch].view(channels, k, k, n_rows, out_w, batch)
    cols.copy_(windows.permute(0, 4, 5, 1, 2, 3))  # C,k,k,rows,OW,B
    return cols.view(channels * k * k, -1)  # C*k*k,rows*OW*B


def col2im_add_(dxpad: Tensor, dcols: Tensor, kernel_size: int, stride: int, rows: slice) -> None:
    """The adjoint of im2col: add every column entry back onto the padded pixel it was copied from.

    dxpad[c, s*y + i, s*x + j, b] += dcols[(c, i, j), (y, x, b)]     for the output rows y of `rows`

    A pixel inside n windows receives n entries (the sum of the gradients of every output it fed). One
    strided add per kernel offset (i, j), k*k in all, each moving OW*B consecutive numbers at a time.
    """
    channels, k, s = dxpad.shape[0], kernel_size, stride
    n_rows, batch = rows.stop - rows.start, dxpad.shape[3]
    dcols = dcols.view(channels, k, k, n_rows, -1, batch)  # C,k,k,rows,OW,B
    out_w = dcols.shape[4]
    for i in range(k):
        for j in range(k):
            top = s * rows.start + i  # offset (i, j) of window (y, x) is the padded pixel (s*y + i, s*x + j)
            dxpad[:, top:top + s * (n_rows - 1) + 1:s, j:j + s * (out_w - 1) + 1:s] += dcols[:, i, j]  # C,rows,OW,B


def strips(xpad: Tensor, kernel_size: int, out: Tensor) -> Tensor:
    """Every 1 x k strip of every padded input row, one strip per column (stride 1):

    strips[(c, j), (r, x, b)] = xpad[c, r, x + j, b]             xpad: [C, Hp, Wp, B] -> [C*k, Hp*OW*B]

    k copies of the input instead of im2col's k*k: window (y, x) is the k strips of rows y .. y+k-1, and
    the columns of padded row r are one contiguous block, so the strips of rows y+i of all output rows y
    of a chunk are a block too (`shifted`). Written into `out`, a tensor of C*k*Hp*OW*B elements.
    """
    channels, height, k = xpad.shape[0], xpad.shape[1], kernel_size
    windows = xpad.unfold(2, k, 1)  # C,Hp,OW,B,k
    out = out.view(channels, k, height, windows.shape[2], windows.shape[3])  # C,k,Hp,OW,B
    out.copy_(windows.permute(0, 4, 1, 2, 3))
    return out.view(channels * k, -1)  # C*k,Hp*OW*B


def shifted(columns: Tensor, rows: slice, shift: int, row_numel: int) -> Tensor:
    """The columns of rows rows.start + shift .. rows.stop - 1 + shift: a contiguous block, as a view."""
    return columns[:, (rows.start + shift) * row_numel:(rows.stop + shift) * row_numel]


def weight_gradient_(dweight: Tensor, cols: Tensor, dout: Tensor, transposed: bool) -> None:
    """dweight += dout @ cols^T [C_out, K], or with `transposed`, dweight^T += cols @ dout^T [K, C_out]."""
    if transposed:
        dweight.addmm_(cols, dout.t())  # K,C_out
    else:
        dweight.addmm_(dout, cols.t())  # C_out,K


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

    The same sums, arranged two other ways:
    - strips (stride 1): a window is k strips of width k, one per kernel row i, so with S = strips(x)
      [C_in*k, Hp*OW*B] and W_i = weight[:, :, i, :] as [C_out, C_in*k], and S_i the columns of rows y + i:
               out    = bias + sum_i W_i @ S_i                     k products
               dW_i   = dout @ S_i^T        dS_i += W_i^T @ dout   dx = the strips added back (k adds)
    - rotated: dx is a convolution of dout, framed in k-1 zeros (and spread out by s-1 zeros between
      entries for a stride s), with the kernel rotated by 180 degrees and its two channel axes swapped:
               dxpad[b, c, u, v] = sum_{o, i, j} doutpad[b, o, u + i, v + j] * weight[o, c, k-1-i, k-1-j]
      that is im2col of doutpad and one product, no scatter.
    cache: the padded input, batch innermost, and with strips, the strips (k times the input; whole
    windows, k*k times, are rebuilt in backward instead: measured faster than keeping them).
    Square kernels, one stride and one padding for both directions (the cases PyTorch's int arguments cover).
    backward(dout, input_grad=False) skips dx and returns None: for the first layer, whose input is the data.

    Speed (CPU, LeNet-5; docs/cnn.md "Speed" has the figures, measured side by side):
    - The batch is innermost (module docstring): the products write the next layer's input as it is, and
      every copy and add of the lowering moves OW*B consecutive numbers.
    - The products are made in chunks of output rows whose columns and output rows take about CHUNK_BYTES
      (1 MB, half the L2 cache): a chunk's columns are still in the cache when the products read them, and
      its output rows while the k products of strips add into them. Whole windows of a batch of 512 MNIST
      images are 40 MB, written to memory and read back. On CUDA: all rows at once.
    - Strips on the CPU: a k-th of im2col's copying (LeNet's first layer: 5 copies of the image instead of
      25), k adds instead of k*k for dx, and columns small enough to keep for backward. On CUDA whole
      windows: one copy and one product (k products are k launches).
    - dW's products have the long N = rows*OW*B inner on both sides, and the BLAS library (MKL) runs them
      2-4x faster one way round or the other depending on the channel counts: measured on this CPU, as
      (cols @ dout^T)^T from C_out = TRANSPOSED_DWEIGHT (16) on, as dout @ cols^T below. The same sums.
    - dx of whole windows: col2im on the CPU; on CUDA the rotated kernel (3 kernel launches instead of
      k*k + 2, no GPU has timed that choice yet). The rotated kernel gathers from doutpad, which for LeNet's
      second layer means 5x the columns of the forward pass, and on this CPU measured slower than col2im.
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
        self.xpad: Tensor | None = None
        self.strips: Tensor | None = None  # with strips: the forward's strips, for backward
        self.cols: Tensor | None = None  # with whole windows: one chunk's columns, refilled chunk after chunk

    def uses_strips(self, device: torch.device) -> bool:
        return LOWERING.get(device.type, "windows") == "strips" and self.stride == 1

    def chunks(self, out_height: int, out_width: int, batch: int, like: Tensor) -> list[slice]:
        """The ranges of output rows whose products are made together (all of them on CUDA): the columns (whole
        windows or strips) and the output rows of a chunk take about CHUNK_BYTES."""
        k = self.kernel_size
        terms = self.in_channels * k * (1 if self.uses_strips(like.device) else k)
        return row_chunks(out_height, (terms + self.out_channels) * out_width * batch * like.element_size(),
                          like.device)

    def columns_buffer(self, like: Tensor, numel: int) -> Tensor:
        """Room for `numel` numbers of columns, kept from call to call.

        A 2 MB tensor allocated and freed every step can be handed back to the operating system
        and mapped in again, one page fault per 4 KB: measured 960 faults and 2.5x the time per
        step of LeNet's first layer at batch 32, depending on what else the process allocated.
        """
        if self.cols is None or self.cols.numel() < numel or self.cols.dtype != like.dtype \
                or self.cols.device != like.device:
            self.cols = like.new_empty(numel)
        return self.cols

    def pad(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] zero-padded, as [C, H+2p, W+2p, B]: a view of x when it is batch-last and p = 0."""
        p = self.padding
        if p == 0:
            return as_batch_last(x)  # C,H,W,B
        batch, channels, height, width = x.shape
        xpad = x.new_zeros(channels, height + 2 * p, width + 2 * p, batch)  # C,H+2p,W+2p,B
        xpad[:, p:p + height, p:p + width] = x.permute(1, 2, 3, 0)
        return xpad

    def row_weights(self) -> Tensor:
        """W_i = weight[:, :, i, :] as [C_out, C_in*k], for each kernel row i: [k, C_out, C_in*k]."""
        return self.weight.permute(2, 0, 1, 3).reshape(self.kernel_size, self.out_channels, -1)

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
        self.x_shape = tuple(x.shape)
        self.xpad = self.pad(x)  # C_in,H+2p,W+2p,B
        out = x.new_empty(self.out_channels, out_h * out_w * batch)  # C_out,OH*OW*B
        bias = None if self.bias is None else self.bias.unsqueeze(1)  # C_out,1
        chunks, row = self.chunks(out_h, out_w, batch, x), out_w * batch
        self.strips = None
        if self.uses_strips(x.device):  # C_in*k,Hp*OW*B, kept for backward
            height_p = self.xpad.shape[1]
            self.strips = strips(self.xpad, k, self.workspace("strips", (self.in_channels * k * height_p * out_w
                                                                            * batch,), x))
        if self.strips is not None:
            weights = self.row_weights()  # k,C_out,C_in*k
            for rows in chunks:
                out_rows = shifted(out, rows, 0, row)  # C_out,rows*OW*B: a view, written in place
                for i in range(k):
                    part = shifted(self.strips, rows, i, row)  # C_in*k,rows*OW*B: strips of rows y + i
                    if i > 0:
                        out_rows.addmm_(weights[i], part)
                    elif bias is None:
                        torch.mm(weights[0], part, out=out_rows)
                    else:
                        torch.addmm(bias, weights[0], part, out=out_rows)
        else:
            weight = self.weight.view(self.out_channels, -1)  # C_out,C_in*k*k
            buffer = self.columns_buffer(x, weight.shape[1] * (chunks[0].stop - chunks[0].start) * row)
            for rows in chunks:
                cols = im2col(self.xpad, k, s, rows, out=buffer)  # C_in*k*k,rows*OW*B
                out_rows = shifted(out, rows, 0, row)  # C_out,rows*OW*B: a view, written in place
                if bias is None:
                    torch.mm(weight, cols, out=out_rows)
                else:
                    torch.addmm(bias, weight, cols, out=out_rows)
        return out.view(self.out_channels, out_h, out_w, batch).permute(3, 0, 1, 2)  # B,C_out,OH,OW (batch last)

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.xpad is None:
            raise RuntimeError("Conv2d.backward called before forward; run forward on a batch first")
        batch, _, out_h, out_w = dout.shape
        dout_m = as_batch_last(dout).view(self.out_channels, -1)  # C_out,OH*OW*B
        if self.dbias is not None:
            torch.sum(dout_m, dim=1, out=self.dbias)  # C_out
        if self.strips is not None:
            dxpad = self.backward_strips(dout_m, out_h, out_w, batch, input_grad)
        else:
            dxpad = self.backward_windows(dout_m, out_h, out_w, batch, input_grad)
        if dxpad is None:
            return None  # without input_grad: saves the products for dx
        height, width, p = self.x_shape[2], self.x_shape[3], self.padding
        return dxpad[:, p:p + height, p:p + width].permute(3, 0, 1, 2)  # B,C_in,H,W (a view; batch last)

    def backward_windows(self, dout_m: Tensor, out_h: int, out_w: int, batch: int, input_grad: bool) -> Tensor | None:
        """dW (and dxpad [C_in, Hp, Wp, B] with input_grad) from whole windows, rebuilt chunk by chunk."""
        k, s, row = self.kernel_size, self.stride, out_w * batch
        weight = self.weight.view(self.out_channels, -1)  # C_out,C_in*k*k
        transposed = self.out_channels >= TRANSPOSED_DWEIGHT
        dweight = dout_m.new_zeros(weight.t().shape if transposed else weight.shape)  # the chunks add up here
        rotated = input_grad and INPUT_GRADIENT.get(dout_m.device.type, "col2im") == "rotated"
        dxpad = dout_m.new_zeros(self.xpad.shape) if input_grad and not rotated else None  # C_in,Hp,Wp,B
        chunks = self.chunks(out_h, out_w, batch, dout_m)
        buffer = self.columns_buffer(dout_m, weight.shape[1] * (chunks[0].stop - chunks[0].start) * row)
        for rows in chunks:
            cols = im2col(self.xpad, k, s, rows, out=buffer)  # C_in*k*k,rows*OW*B: rebuilt (see "cache:")
            dout_rows = shifted(dout_m, rows, 0, row)  # C_out,rows*OW*B
            weight_gradient_(dweight, cols, dout_rows, transposed)
            if dxpad is not None:
                col2im_add_(dxpad, weight.t() @ dout_rows, k, s, rows)  # dcols: C_in*k*k,rows*OW*B
        self.dweight.view(self.out_channels, -1).copy_(dweight.t() if transposed else dweight)  # C_out,C_in*k*k
        if rotated:
            return self.input_gradient_rotated(dout_m.view(self.out_channels, out_h, out_w, batch))
        return dxpad

    def backward_strips(self, dout_m: Tensor, out_h: int, out_w: int, batch: int, input_grad: bool) -> Tensor | None:
        """dW (and dxpad [C_in, Hp, Wp, B] with input_grad) from the forward's strips."""
        k, channels, row = self.kernel_size, self.in_channels, out_w * batch
        weights = self.row_weights()  # k,C_out,C_in*k
        transposed = self.out_channels >= TRANSPOSED_DWEIGHT
        dweights = dout_m.new_zeros(k, *(weights.shape[2:0:-1] if transposed else weights.shape[1:]))  # per row i
        dstrips = self.workspace("dstrips", self.strips.shape, dout_m).zero_() if input_grad else None  # C_in*k,Hp*OW*B
        for rows in self.chunks(out_h, out_w, batch, dout_m):
            dout_rows = shifted(dout_m, rows, 0, row)  # C_out,rows*OW*B
            for i in range(k):
                weight_gradient_(dweights[i], shifted(self.strips, rows, i, row), dout_rows, transposed)
                if dstrips is not None:
                    shifted(dstrips, rows, i, row).addmm_(weights[i].t(), dout_rows)  # dS_i += W_i^T dout
        dweights = dweights.transpose(1, 2) if transposed else dweights  # k,C_out,C_in*k
        self.dweight.copy_(dweights.view(k, self.out_channels, channels, k).permute(1, 2, 0, 3))  # C_out,C_in,k,k
        if dstrips is None:
            return None
        height, batch = self.xpad.shape[1], self.xpad.shape[3]
        dstrips = dstrips.view(channels, k, height, -1, batch)  # C_in,k,Hp,OW,B
        dxpad = dout_m.new_zeros(self.xpad.shape)  # C_in,Hp,Wp,B
        for j in range(k):  # strip entry j of column x came from padded pixel x + j
            dxpad[:, :, j:j + dstrips.shape[3]] += dstrips[:, j]
        return dxpad

    def input_gradient_rotated(self, dout: Tensor) -> Tensor:
        """dxpad [C_in, H+2p, W+2p, B] as a convolution of dout [C_out, OH, OW, B] with the rotated kernel.

        doutpad holds dout[o, y, x] at (k-1 + s*y, k-1 + s*x), zeros elsewhere: k-1 zeros around, s-1 between.
        Output (y, x) fed padded pixel (s*y + i, s*x + j) through weight[o, c, i, j]; in the correlation below,
        pixel (u, v) reads doutpad[u + i', v + j'] with weight[o, c, k-1-i', k-1-j'], and u + i' = k-1 + s*y
        exactly when i = u - s*y = k-1-i'.
        """
        k, s = self.kernel_size, self.stride
        channels, height, width, batch = self.xpad.shape  # C_in, H+2p, W+2p, B
        out_h, out_w = dout.shape[1], dout.shape[2]
        doutpad = dout.new_zeros(self.out_channels, height + k - 1, width + k - 1, batch)  # C_out,Hp+k-1,Wp+k-1,B
        doutpad[:, k - 1:k - 1 + s * (out_h - 1) + 1:s, k - 1:k - 1 + s * (out_w - 1) + 1:s] = dout
        rotated = self.weight.flip(2, 3).transpose(0, 1).reshape(channels, -1)  # C_in,C_out*k*k
        dxpad = dout.new_empty(channels, height * width * batch)  # C_in,Hp*Wp*B
        chunks = row_chunks(height, self.out_channels * k * k * width * batch * dout.element_size(), dout.device)
        buffer = dout.new_empty(rotated.shape[1] * (chunks[0].stop - chunks[0].start) * width * batch)
        for rows in chunks:
            cols = im2col(doutpad, k, 1, rows, out=buffer)  # C_out*k*k,rows*Wp*B
            torch.mm(rotated, cols, out=shifted(dxpad, rows, 0, width * batch))
        return dxpad.view(channels, height, width, batch)  # C_in,Hp,Wp,B

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")
