"""Pooling written by hand: shrink each feature map by keeping one number per k x k window.

    >>> pool = MaxPool2d(2)          # 2x2 windows, stride 2: [B, 6, 28, 28] -> [B, 6, 14, 14]
    >>> out = pool(h)
    >>> dh = pool.backward(dout)     # each window's gradient goes to its largest pixel
    >>> AvgPool2d(2)(h)              # the windows' means instead; the gradient is shared evenly

Pooling has no parameters and works on each channel separately. Both layers copy the windows into
columns, one row per pixel of the window (the im2col of scratch/conv.py), reduce over the rows, and
give the gradient back with one strided add per kernel offset, as conv.py's col2im does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.module import Module


class _Pool2d(Module):
    """What max and average pooling share: the windows, and adding gradients back onto them."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0, ceil_mode: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        stride = kernel_size if stride is None else stride  # as torch: non-overlapping windows by default
        for arg, value in (("kernel_size", kernel_size), ("stride", stride)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1 (square windows), got {value!r}")
        if padding != 0 or ceil_mode:
            raise ValueError(f"{name} supports padding=0 and ceil_mode=False only (got padding={padding!r}, "
                             f"ceil_mode={ceil_mode!r}): windows that run past the edge are dropped, as torch's "
                             "default; pad the input before the layer if you need them")
        self.kernel_size, self.stride = kernel_size, stride
        self.x_shape: tuple[int, ...] | None = None

    def windows(self, x: Tensor) -> Tensor:
        """Every window of x, one row per offset inside the window (im2col for pooling):

            cols[i*k + j, b, c, y, x] = x[b, c, s*y + i, s*x + j]          [k*k, B, C, OH, OW]

        Row (i, j) is one strided slice of x (pixel (i, j) of every window), so the copy moves
        whole feature-map rows; stacking a [B, C, OH, OW, k, k] view of the windows instead copies
        k numbers at a time (measured 1.9x slower for LeNet's 2x2 pooling). Remembers x's shape for backward.
        """
        if x.dim() != 4:
            raise ValueError(f"{self!r} expects input of shape [batch, channels, height, width], got {list(x.shape)}")
        k, s = self.kernel_size, self.stride
        height, width = x.shape[2], x.shape[3]
        if height < k or width < k:
            raise ValueError(f"{self!r}: a {height}x{width} feature map is smaller than the {k}x{k} window; "
                             "use fewer pooling stages, a larger image or more padding in the convolutions")
        self.x_shape = tuple(x.shape)
        # Rows and columns that no whole window covers are dropped (floor), as torch's default.
        out_h, out_w = (height - k) // s + 1, (width - k) // s + 1
        return torch.stack([x[:, :, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s]
                            for i in range(k) for j in range(k)])  # k*k,B,C,OH,OW

    def add_to_windows(self, dcols: Tensor) -> Tensor:
        """The adjoint of `windows`: dx[b, c, s*y + i, s*x + j] += dcols[i*k + j, b, c, y, x]."""
        if self.x_shape is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward; run forward on a batch first")
        k, s = self.kernel_size, self.stride
        out_h, out_w = dcols.shape[3], dcols.shape[4]
        # When the windows tile x (stride = k, sides divisible by k, as LeNet's 2x2 pooling of even sides),
        # every pixel is in exactly one window: its entry is copied, and dx needs no zeros first
        # (measured 1.4-2x faster than zeros and adds). Otherwise windows overlap or miss pixels.
        tiles = s == k and self.x_shape[2] == k * out_h and self.x_shape[3] == k * out_w
        dx = dcols.new_empty(self.x_shape) if tiles else dcols.new_zeros(self.x_shape)  # B,C,H,W
        for i in range(k):
            for j in range(k):
                pixels = dx[:, :, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s]  # B,C,OH,OW: a view
                if tiles:
                    pixels.copy_(dcols[i * k + j])
                else:
                    pixels += dcols[i * k + j]
        return dx  # B,C,H,W

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool2d(_Pool2d):
    """The largest value of each k x k window (as PyTorch's `nn.MaxPool2d`, without padding or dilation).

    forward:   out[b, c, y, x] = max_{i, j} x[b, c, s*y + i, s*x + j]                  [B, C, OH, OW]
    backward:  dx[b, c, s*y + i*, s*x + j*] += dout[b, c, y, x]                         [B, C, H, W]
               with (i*, j*) the window's arg-max; every other pixel of the window gets 0 (it did not
               change the output). A pixel that is the maximum of several overlapping windows collects
               all their gradients.
    Ties: the gradient goes to the FIRST maximum in row-major window order (the top row left to right,
    then the next row), as PyTorch's CPU kernel does: it replaces the running maximum only on a strictly
    greater value. On an all-equal input torch routes each window's gradient to its top-left pixel;
    tests/test_conv.py checks that this layer does the same. `Tensor.max(dim)` returns the first maximal
    index, and the window's pixels are rows in row-major order, so its arg-max is exactly that pixel.
    cache: the arg-max of each window (an index into its k*k pixels, i*k + j), all backward needs.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0, dilation: int = 1,
                 ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        if dilation != 1:
            raise ValueError(f"MaxPool2d supports dilation=1 only, got {dilation!r}")
        self.argmax: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        # Rows of the columns are the window's pixels in row-major order, so the first maximum that
        # max(dim=0) reports is torch's.
        out, self.argmax = self.windows(x).max(dim=0)  # B,C,OH,OW and B,C,OH,OW (row i*k + j)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        if self.argmax is None:
            raise RuntimeError("MaxPool2d.backward called before forward; run forward on a batch first")
        dcols = dout.new_zeros(self.kernel_size ** 2, *dout.shape)  # k*k,B,C,OH,OW
        dcols.scatter_(0, self.argmax.unsqueeze(0), dout.unsqueeze(0))  # dout in each window's arg-max row
        return self.add_to_windows(dcols)  # B,C,H,W


class AvgPool2d(_Pool2d):
    """The mean of each k x k window (as PyTorch's `nn.AvgPool2d`, without padding).

    forward:   out[b, c, y, x] = (1 / k^2) sum_{i, j} x[b, c, s*y + i, s*x + j]         [B, C, OH, OW]
    backward:  dx[b, c, s*y + i, s*x + j] += dout[b, c, y, x] / k^2   for every (i, j)  [B, C, H, W]
    cache: nothing but the input's shape (the derivative of a mean does not depend on x).
    """

    def forward(self, x: Tensor) -> Tensor:
        return self.windows(x).mean(dim=0)  # B,C,OH,OW

    def backward(self, dout: Tensor) -> Tensor:
        k = self.kernel_size
        share = (dout / (k * k)).expand(k * k, *dout.shape)  # k*k,B,C,OH,OW: a view, nothing copied
        return self.add_to_windows(share)  # B,C,H,W
