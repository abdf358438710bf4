"""A 2-D convolution as plain loops: the definition, to read, and to check scratch/conv.py against.

    python tests/conv_reference.py        # times these loops against scratch.Conv2d, LeNet's two layers

Forward, for every example b, output channel o and output position (y, x):
    out[b, o, y, x] = bias[o] + sum over the window of weight[o] * xpad[b, :, s*y : s*y + k, s*x : s*x + k]
Backward, for the same loops (each output saw one window, so its gradient flows back to that window):
    dweight[o]   += dout[b, o, y, x] * window          (what the weight multiplied)
    dbias[o]     += dout[b, o, y, x]
    dxpad window += dout[b, o, y, x] * weight[o]        (what the window was multiplied by)
and dx is dxpad without its padding. Four loops and a dot product per output: readable, and slow.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor


def pad(x: Tensor, padding: int) -> Tensor:
    batch, channels, height, width = x.shape
    xpad = x.new_zeros(batch, channels, height + 2 * padding, width + 2 * padding)
    xpad[:, :, padding:padding + height, padding:padding + width] = x
    return xpad


def conv2d_loops(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int = 1, padding: int = 0) -> Tensor:
    """out[b, o, y, x] for x: [B, C, H, W], weight: [O, C, k, k], bias: [O] or None."""
    batch, out_channels, k = x.shape[0], weight.shape[0], weight.shape[2]
    xpad = pad(x, padding)
    out_h = (xpad.shape[2] - k) // stride + 1
    out_w = (xpad.shape[3] - k) // stride + 1
    out = x.new_zeros(batch, out_channels, out_h, out_w)
    for b in range(batch):
        for o in range(out_channels):
            for y in range(out_h):
                for x_ in range(out_w):
                    window = xpad[b, :, stride * y:stride * y + k, stride * x_:stride * x_ + k]  # C,k,k
                    out[b, o, y, x_] = (weight[o] * window).sum() + (bias[o] if bias is not None else 0)
    return out


def conv2d_loops_backward(x: Tensor, weight: Tensor, dout: Tensor, stride: int = 1,
                          padding: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """dx, dweight, dbias of sum(out * dout), by the same loops as the forward."""
    batch, out_channels, out_h, out_w = dout.shape
    k = weight.shape[2]
    xpad = pad(x, padding)
    dxpad = torch.zeros_like(xpad)
    dweight = torch.zeros_like(weight)
    dbias = dout.new_zeros(out_channels)
    for b in range(batch):
        for o in range(out_channels):
            for y in range(out_h):
                for x_ in range(out_w):
                    g = dout[b, o, y, x_]
                    rows, cols = slice(stride * y, stride * y + k), slice(stride * x_, stride * x_ + k)
                    dweight[o] += g * xpad[b, :, rows, cols]
                    dbias[o] += g
                    dxpad[b, :, rows, cols] += g * weight[o]
    height, width = x.shape[2], x.shape[3]
    return dxpad[:, :, padding:padding + height, padding:padding + width], dweight, dbias


def time_against_conv2d(batch: int = 32) -> list[tuple[str, float, float]]:
    """Seconds for forward + backward (with dx), loops vs scratch.Conv2d, for LeNet's two convolutions."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
    import scratch

    results = []
    for label, (c_in, c_out, size, padding) in (("conv 1->6, 28x28, pad 2", (1, 6, 28, 2)),
                                                ("conv 6->16, 14x14", (6, 16, 14, 0))):
        conv = scratch.Conv2d(c_in, c_out, 5, padding=padding)
        x = torch.randn(batch, c_in, size, size)
        dout = torch.randn(batch, c_out, size + 2 * padding - 4, size + 2 * padding - 4)
        start = time.process_time()
        conv2d_loops(x, conv.weight, conv.bias, padding=padding)
        conv2d_loops_backward(x, conv.weight, dout, padding=padding)
        loops = time.process_time() - start
        blocks = []
        for _ in range(7):  # the median of 7 blocks of 20: a burst of load from elsewhere is left out
            start = time.process_time()
            for _ in range(20):
                conv.forward(x)
                conv.backward(dout)
            blocks.append((time.process_time() - start) / 20)
        results.append((label, loops, statistics.median(blocks)))
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"batch 32, float32, 1 thread, forward + backward (with dx), CPU time; torch {torch.__version__}")
    for label, loops, conv in time_against_conv2d():
        print(f"{label}: loops {loops:.2f} s, Conv2d {conv * 1e3:.2f} ms, speed-up {loops / conv:,.0f}x")
