"""Pooling written by hand: shrink each feature map by keeping one number per k x k window.

    >>> pool = MaxPool2d(2)          # 2x2 windows, stride 2: [B, 6, 28, 28] -> [B, 6, 14, 14]
    >>> out = pool(h)
    >>> dh = pool.backward(dout)     # each window's gradient goes to its largest pixel
    >>> AvgPool2d(2)(h)              # the windows' means instead; the gradient is shared evenly

Pooling has no parameters and works on each channel separately. Both layers read a window's k*k
pixels as k*k strided views of the input, pixel (i, j) of every window at once (nothing is copied),
reduce over them with element-wise operations, and give the gradient back one view at a time. Like
scratch/conv.py, what they make has the batch innermost in memory (conv.batch_last).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.conv import batch_last
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

    def windows(self, x: Tensor) -> list[Tensor]:
        """Pixel (i, j) of every window, for each offset in row-major order (i*k + j), as strided views:

            window_pixels[i*k + j][b, c, y, x] = x[b, c, s*y + i, s*x + j]          k*k views [B, C, OH, OW]

        Nothing is copied: the reductions below read the views directly (stacking them into one
        [k*k, B, C, OH, OW] tensor first, as im2col would, copies the whole input once more; measured
        2-4x slower for LeNet's 2x2 pooling). Remembers x's shape for backward.
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
        return [x[:, :, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s] for i in range(k) for j in range(k)]

    def new_output(self, like: Tensor) -> Tensor:
        """An empty [B, C, OH, OW] tensor, batch innermost."""
        return batch_last(like, *like.shape)

    def input_gradient(self, like: Tensor) -> tuple[Tensor, list[Tensor], bool]:
        """dx [B, C, H, W] (batch innermost), its k*k window views, and whether the windows tile x.

        When the windows tile x (stride = k, sides divisible by k, as LeNet's 2x2 pooling of even sides),
        every pixel is in exactly one window: each view is written once, and dx needs no zeros first
        (measured 1.4-2x faster than zeros and adds). Otherwise windows overlap or miss pixels, and the
        views are added into zeros.
        """
        if self.x_shape is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward; run forward on a batch first")
        k, s = self.kernel_size, self.stride
        batch, channels, height, width = self.x_shape
        out_h, out_w = (height - k) // s + 1, (width - k) // s + 1
        tiles = s == k and height == k * out_h and width == k * out_w
        dx = batch_last(like, batch, channels, height, width, zeros=not tiles)  # B,C,H,W
        return dx, self.windows(dx), tiles

    def add_to_windows(self, dcols: Tensor) -> Tensor:
        """The adjoint of `windows`: dx[b, c, s*y + i, s*x + j] += dcols[i*k + j, b, c, y, x]."""
        dx, pixels, tiles = self.input_gradient(dcols)
        for view, d in zip(pixels, dcols, strict=True):
            if tiles:
                view.copy_(d)
            else:
                view += d
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
    How: a running maximum over the window's pixels r = 0 .. k*k-1 (r = i*k + j, row-major), and a record
    of where it grew:
        m_0 = x_0;   grew_r = [x_r > m_{r-1}],   m_r = max(m_{r-1}, x_r)   for r = 1 .. k*k-1;   out = m_{k*k-1}
    The arg-max is the last r whose grew_r = 1 (0 if none), so backward walks r down, handing the gradient
    g (dout at first) to pixel r where it grew and keeping the rest:
        dx_r += g * grew_r;   g = g - g * grew_r   for r = k*k-1 .. 1;   dx_0 += g
    Ties: the gradient goes to the FIRST maximum in row-major window order (the top row left to right,
    then the next row), as PyTorch's CPU kernel does: it replaces the running maximum only on a strictly
    greater value, and so does grew_r's ">". On an all-equal input torch routes each window's gradient
    to its top-left pixel; tests/test_conv.py checks that this layer does the same.
    cache: grew_1 .. grew_{k*k-1} as 0.0/1.0 numbers [k*k-1, B, C, OH, OW], all backward needs. (Float, not
    bool: the element-wise products with a bool tensor convert it, measured 3-7x slower on this CPU.)
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0, dilation: int = 1,
                 ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        if dilation != 1:
            raise ValueError(f"MaxPool2d supports dilation=1 only, got {dilation!r}")
        self.grew: list[Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        first, *rest = self.windows(x)  # k*k views [B, C, OH, OW]
        out = self.new_output(first)  # B,C,OH,OW: the running maximum m
        out.copy_(first)
        batch, channels, out_h, out_w = out.shape
        grew = self.workspace("grew", (len(rest), channels, out_h, out_w, batch), out)  # kept for backward
        self.grew = list(grew.permute(0, 4, 1, 2, 3))  # k*k-1 of [B, C, OH, OW], batch last
        for pixel, grew_r in zip(rest, self.grew, strict=True):
            torch.gt(pixel, out, out=grew_r)  # 1.0 where x_r is strictly greater than the maximum so far
            torch.maximum(out, pixel, out=out)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        if self.grew is None:
            raise RuntimeError("MaxPool2d.backward called before forward; run forward on a batch first")
        dx, pixels, tiles = self.input_gradient(dout)
        batch, channels, out_h, out_w = dout.shape
        g = self.workspace("g", (channels, out_h, out_w, batch), dout).permute(3, 0, 1, 2)  # B,C,OH,OW, batch last
        g.copy_(dout)  # the part of each window's gradient not handed to a later pixel yet (after a Flatten,
        # dout arrives [B, C, OH, OW]-contiguous: batch innermost as grew_r and dx from here on)
        for view, grew_r in zip(reversed(pixels[1:]), reversed(self.grew), strict=True):
            if tiles:
                share = torch.mul(g, grew_r, out=view)  # B,C,OH,OW: written where it belongs
            else:
                share = g * grew_r  # B,C,OH,OW
                view += share
            g.sub_(share)
        if tiles:
            pixels[0].copy_(g)
        else:
            pixels[0] += g
        return dx  # B,C,H,W


class AvgPool2d(_Pool2d):
    """The mean of each k x k window (as PyTorch's `nn.AvgPool2d`, without padding).

    forward:   out[b, c, y, x] = (1 / k^2) sum_{i, j} x[b, c, s*y + i, s*x + j]         [B, C, OH, OW]
    backward:  dx[b, c, s*y + i, s*x + j] += dout[b, c, y, x] / k^2   for every (i, j)  [B, C, H, W]
    cache: nothing but the input's shape (the derivative of a mean does not depend on x).
    """

    def forward(self, x: Tensor) -> Tensor:
        first, *rest = self.windows(x)  # k*k views [B, C, OH, OW]
        total = self.new_output(first)  # B,C,OH,OW
        total.copy_(first)
        for pixel in rest:
            total += pixel
        return total.div_(self.kernel_size ** 2)  # B,C,OH,OW

    def backward(self, dout: Tensor) -> Tensor:
        k = self.kernel_size
        share = (dout / (k * k)).expand(k * k, *dout.shape)  # k*k,B,C,OH,OW: a view, nothing copied
        return self.add_to_windows(share)  # B,C,H,W
