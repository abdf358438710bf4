"""How much arithmetic one training step needs.

    >>> from compare.models.flops import step_flops, cnn_step_flops, ConvShape
    >>> step_flops([784, 512, 512, 10], batch_size=512) / 1e9     # about 1.64 GFLOP per step
    >>> lenet = [ConvShape(1, 6, 5, 28), ConvShape(6, 16, 5, 10)]  # in, out channels, kernel, output side
    >>> cnn_step_flops(lenet, [400, 120, 84, 10], batch_size=512) / 1e9   # about 1.16 GFLOP per step

`python -m compare bench` divides it by a step's time, and that by the FLOP/s of a large
matrix product timed in the same run (compare/commands/bench/timing.py `matmul_probe`): the
fraction of the machine's matrix-multiply peak a training step reaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class ConvShape(NamedTuple):
    """One convolution of stride 1 as the FLOP count sees it."""

    in_channels: int
    out_channels: int
    kernel_size: int  # k: a k x k kernel
    out_size: int  # side of its (square) output feature maps, before pooling


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


# ---- the vision transformer and the LSTM


def vit_step_flops(batch_size: int, num_patches: int, patch_values: int, dim: int, depth: int, mlp_dim: int,
                   num_classes: int, tokens: int) -> int:
    """FLOPs of the matrix products of one training step of the ViT (scratch/vit.py), 2 per multiply-add.

    With B the batch, N patches of P values, T tokens (N, or N + 1 with a class token), D = dim, F = mlp_dim,
    C classes; a product that runs forward, for the weight gradient and for the input gradient counts 3 times:
        patch_embed    [B*N, P] x [P, D]      forward and weight gradient (its input is data): 2 x 2 B N P D
        per block      in_proj  [B*T, D] x [D, 3D]                         3 x 2 B T 3D^2
                       scores Q K^T and context P V, all heads together:   (1 forward + 2 backward) x 2 x 2 B T^2 D
                       out_proj [B*T, D] x [D, D]                          3 x 2 B T D^2
                       linear1 and linear2, [D, F] and [F, D]              2 x 3 x 2 B T D F
        head           [B, D] x [D, C]                                     3 x 2 B D C
    """
    if min(batch_size, num_patches, patch_values, dim, depth, mlp_dim, num_classes, tokens) <= 0:
        raise ValueError("every size of the ViT's FLOP count must be positive")
    b, t, d = batch_size, tokens, dim
    attention = 3 * 2 * b * t * 3 * d * d + 3 * 2 * 2 * b * t * t * d + 3 * 2 * b * t * d * d  # in_proj, QK^T PV, out
    block = attention + 2 * 3 * 2 * b * t * d * mlp_dim  # + linear1, linear2
    return 2 * 2 * b * num_patches * patch_values * d + depth * block + 3 * 2 * b * d * num_classes


def vit_elementwise(batch_size: int, dim: int, depth: int, heads: int, mlp_dim: int, tokens: int,
                    parameters: int) -> int:
    """Rough element-wise FLOPs of a ViT step (upper estimate): per block and token two layer norms
    (about 10 D each, forward and backward), GELU (about 20 F), two residual adds and biases (8 D); per
    head the softmax (about 8 T^2); the update (2 per parameter)."""
    b, t = batch_size, tokens
    per_block = b * t * (2 * 10 * dim + 20 * mlp_dim + 8 * dim) + 8 * b * heads * t * t
    return depth * per_block + 10 * b * t * dim + 2 * parameters


def lstm_step_flops(batch_size: int, steps: int, input_size: int, hidden_size: int, num_classes: int) -> int:
    """FLOPs of the matrix products of one training step of the LSTM classifier (scratch/sequence.py).

    With B the batch, T steps of I inputs, H hidden units (4H gate rows), C classes:
        input projection  [B*T, I] x [I, 4H]   forward and weight gradient (its input is data): 2 x 2 B T I 4H
        recurrence        [B, H] x [H, 4H] at each of the T steps: forward, the gradient carried back to
                          h_{t-1}, and the weight gradient (one product over all steps): 3 x 2 B T H 4H
        head              [B, H] x [H, C]                                                 3 x 2 B H C
    """
    if min(batch_size, steps, input_size, hidden_size, num_classes) <= 0:
        raise ValueError("every size of the LSTM's FLOP count must be positive")
    b, t, h = batch_size, steps, hidden_size
    return 2 * 2 * b * t * input_size * 4 * h + 3 * 2 * b * t * h * 4 * h + 3 * 2 * b * h * num_classes


def lstm_elementwise(batch_size: int, steps: int, hidden_size: int, num_classes: int, parameters: int) -> int:
    """Rough element-wise FLOPs of an LSTM step (upper estimate): per step and hidden unit about 15 for the
    gates and the cell forward and 25 backward; softmax cross-entropy 8 per class; the update 2 per parameter."""
    return 40 * batch_size * steps * hidden_size + 8 * batch_size * num_classes + 2 * parameters


def cnn_step_flops(convs: Sequence[ConvShape], fc_widths: Sequence[int], batch_size: int) -> int:
    """FLOPs of the matrix products of one SGD step of a CNN: its convolutions, then fully connected layers of
    widths `fc_widths` (the flattened features first, the classes last).

    A convolution is one matrix product over the im2col columns (docs/cnn.md): weights [O, C k k] times
    columns [C k k, B OH OW]. Like a Linear layer of C k k inputs and O outputs applied at B OH OW places:
        forward        2 B OH OW O C k k
        weight grad    2 B OH OW O C k k
        input grad     2 B OH OW O C k k     (not for the first convolution: its input is the images)
    The fully connected layers count as in `step_flops`, all with their input gradient (their input is
    the flattened feature maps, which need one). Left out: padding, im2col's and col2im's copies and
    additions, pooling, activations, the loss and the update; see `cnn_elementwise_share`.
    """
    _check_cnn(convs, fc_widths, batch_size)
    flops = 0
    for k, conv in enumerate(convs):
        products = 2 if k == 0 else 3
        places = batch_size * conv.out_size ** 2
        flops += products * 2 * places * conv.out_channels * conv.in_channels * conv.kernel_size ** 2
    for fan_in, fan_out in zip(fc_widths[:-1], fc_widths[1:], strict=True):
        flops += 3 * 2 * batch_size * fan_in * fan_out
    return flops


def cnn_elementwise_share(convs: Sequence[ConvShape], fc_widths: Sequence[int], batch_size: int,
                          batch_norm: bool = False) -> float:
    """Rough share of element-wise FLOPs in a CNN's step (upper estimate), as `elementwise_share` for an MLP.

    Per convolution output element: bias add and gradient (2), activation forward and backward (3),
    pooling forward and backward (2), with batch norm about 10 more; col2im adds k^2 per input element of
    every convolution but the first; update 2 per parameter; the fully connected layers as in an MLP.
    """
    _check_cnn(convs, fc_widths, batch_size)
    elementwise = 8 * batch_size * fc_widths[-1]
    for k, conv in enumerate(convs):
        outputs = batch_size * conv.out_channels * conv.out_size ** 2
        elementwise += (7 + (10 if batch_norm else 0)) * outputs
        elementwise += 2 * (conv.out_channels * conv.in_channels * conv.kernel_size ** 2 + conv.out_channels)
        if k > 0:
            elementwise += batch_size * conv.in_channels * conv.out_size ** 2 * conv.kernel_size ** 2
    for fan_in, fan_out in zip(fc_widths[:-1], fc_widths[1:], strict=True):
        elementwise += 5 * batch_size * fan_out + 2 * (fan_in * fan_out + fan_out)
    return elementwise / (elementwise + cnn_step_flops(convs, fc_widths, batch_size))


def _check_cnn(convs: Sequence[ConvShape], fc_widths: Sequence[int], batch_size: int) -> None:
    if not convs or any(min(conv) <= 0 for conv in convs):
        raise ValueError(f"need at least one convolution, all sizes positive; got {list(convs)}")
    _check_sizes(fc_widths, batch_size)
