"""How much arithmetic one training step needs.

    >>> from compare.flops import step_flops
    >>> step_flops([784, 512, 512, 10], batch_size=512) / 1e9     # about 1.64 GFLOP per step

`python -m compare bench` divides it by a step's time, and that by the FLOP/s of a large
matrix product timed in the same run (compare/commands/bench/timing.py `matmul_probe`): the
fraction of the machine's matrix-multiply peak a training step reaches.
"""

from __future__ import annotations

from collections.abc import Sequence


def step_flops(sizes: Sequence[int], batch_size: int) -> int:
    """Floating-point operations of one SGD step of an MLP with layer widths `sizes` (input first).

    Counted: the matrix products, 2 FLOPs per multiply-add. A Linear layer in->out on a batch B does
        forward        out = x W^T       2 B in out
        weight grad    dW  = dout^T x    2 B in out
        input grad     dx  = dout W      2 B in out   (not for the first layer: its input is data,
                                                       which needs no gradient; autograd skips it too)
    Left out: element-wise work (bias, activation, softmax, the update), O(B out + params)
    against O(B in out); see `elementwise_share` for how small that is.
    """
    _check_sizes(sizes, batch_size)
    flops = 0
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        products = 2 if k == 0 else 3  # forward and weight gradient, plus input gradient after the first layer
        flops += products * 2 * batch_size * fan_in * fan_out
    return flops


def elementwise_share(sizes: Sequence[int], batch_size: int) -> float:
    """Rough share of element-wise FLOPs in a step (upper estimate), to show `step_flops` ignores little.

    Per layer: bias add and bias gradient (2 B out), activation forward and backward (3 B out),
    update (2 per parameter); softmax cross-entropy about 8 B classes.
    """
    _check_sizes(sizes, batch_size)
    elementwise = 8 * batch_size * sizes[-1]
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        elementwise += 5 * batch_size * fan_out + 2 * (fan_in * fan_out + fan_out)
    return elementwise / (elementwise + step_flops(sizes, batch_size))


def _check_sizes(sizes: Sequence[int], batch_size: int) -> None:
    if len(sizes) < 2 or any(s <= 0 for s in sizes) or batch_size <= 0:
        raise ValueError(f"need at least input and output sizes, all positive, and a positive batch size; "
                         f"got sizes {list(sizes)}, batch size {batch_size}")
