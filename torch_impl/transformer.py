"""The scratch transformer block's twin: PyTorch's own `nn.TransformerEncoderLayer`, set up as the scratch one.

    >>> block = TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128)
    >>> out = block(x)                 # x: [B, T, 64] -> [B, T, 64]

Pre-norm (norm_first=True), GELU, no dropout, batch-first. In evaluation mode without
gradients torch runs this layer through a fused kernel (its "fast path",
torch._transformer_encoder_layer_fwd): the same function, rounded differently; in training
mode, or whenever a parameter needs a gradient, it runs the ordinary path of separate ops.
"""

from __future__ import annotations

from torch import nn


class TransformerEncoderLayer(nn.TransformerEncoderLayer):
    """`nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0, activation="gelu",
    batch_first=True, norm_first=True)`: children self_attn, linear1, linear2, norm1, norm2."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, layer_norm_eps: float = 1e-5) -> None:
        super().__init__(d_model, nhead, dim_feedforward=dim_feedforward, dropout=0.0, activation="gelu",
                         layer_norm_eps=layer_norm_eps, batch_first=True, norm_first=True)
