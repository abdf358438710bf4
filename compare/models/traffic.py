"""How many bytes one training step must at least read and write: the memory traffic `bench` rates a step by.

    >>> from compare.models.traffic import step_bytes, mlp_activations
    >>> step_bytes(parameters=12_730, input_values=784, activations=mlp_activations([784, 16, 16, 10]),
    ...            batch_size=32, element_size=4) / 1e6          # about 0.26 MB per step of the lesson's network

`python -m compare bench` divides it by a step's time (GB/s, beside GFLOP/s) and compares that with the
copy bandwidth it measures in the same run (compare/commands/bench/timing.py): a step cannot have moved
its bytes faster than the machine copies memory, so a figure above that is a measurement to distrust.

A lower bound, on purpose (what any implementation must do, however fused):
    the batch of images                 read once                        B * input values
    the parameters                      read by the forward pass, and
                                        written by the update            2 * P
    the gradients                       written once                     P
    the activations the backward pass   written by the forward pass,
    needs (one value per layer output)  read by the backward pass        2 * B * A
Every count is of values; times element_size bytes. An implementation that caches more (pre- and
post-activation values, im2col columns, gate activations) moves more, never less.
"""

from __future__ import annotations

from collections.abc import Sequence

from compare.models.flops import ConvShape


def step_bytes(parameters: int, input_values: int, activations: int, batch_size: int, element_size: int) -> int:
    """Bytes a training step must at least move: element_size * (B * input + 3 P + 2 B A) (see the module)."""
    if min(parameters, input_values, activations, batch_size, element_size) <= 0:
        raise ValueError("every count of the traffic of a step must be positive")
    return element_size * (batch_size * input_values + 3 * parameters + 2 * batch_size * activations)


def mlp_activations(sizes: Sequence[int]) -> int:
    """Values one example leaves for backward in an MLP of layer widths `sizes`: each layer's output."""
    return sum(sizes[1:])


def cnn_activations(convs: Sequence[ConvShape], fc_widths: Sequence[int], batch_norm: bool) -> int:
    """Each conv stage's output (and batch norm's, of the same size), its pooled maps, each fully connected output."""
    values = 0
    for conv in convs:
        maps = conv.out_channels * conv.out_size ** 2
        values += maps * (2 if batch_norm else 1) + conv.out_channels * (conv.out_size // 2) ** 2
    return values + sum(fc_widths[1:])


def vit_activations(dim: int, depth: int, heads: int, mlp_dim: int, tokens: int, num_classes: int) -> int:
    """The embedded tokens; per block the two norms, Q K V, the attention weights, the context, the attention's
    output, the residual sum, the MLP's two widths and its output; the final norm, the pooled token, the logits."""
    per_block = tokens * (2 * dim + 3 * dim + dim + dim + dim + 2 * mlp_dim + dim) + heads * tokens * tokens
    return tokens * dim + depth * per_block + tokens * dim + dim + num_classes


def lstm_activations(steps: int, hidden_size: int, num_classes: int) -> int:
    """h_t and c_t of every step (the gates can be recomputed from them), and the logits."""
    return steps * 2 * hidden_size + num_classes
