"""One transformer block written by hand (pre-norm): attention, then a small MLP, each on a residual branch.

    >>> block = TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128)
    >>> out = block(x)                 # x: [B, T, 64] -> [B, T, 64]
    >>> dx = block.backward(dout)      # fills the gradients of self_attn, linear1, linear2, norm1, norm2

Children and parameters carry the names of PyTorch's `nn.TransformerEncoderLayer` (self_attn,
linear1, linear2, norm1, norm2), so torch_impl's twin (that class with norm_first=True,
activation="gelu", dropout=0) loads this block's state dict unchanged.
"""

from __future__ import annotations

from torch import Tensor

from scratch.activations import GELU
from scratch.attention import MultiheadAttention
from scratch.layernorm import LayerNorm
from scratch.linear import Linear
from scratch.module import Module


class TransformerEncoderLayer(Module):
    """Pre-norm transformer block on [B, T, E] (as `nn.TransformerEncoderLayer(E, H, F, dropout=0.0,
    activation="gelu", batch_first=True, norm_first=True)`).

    forward:
        x1  = x + self_attn(norm1(x))                               [B, T, E]   (attention branch)
        out = x1 + linear2(gelu(linear1(norm2(x1))))                [B, T, E]   (MLP branch, hidden width F)
    backward (a residual sum passes its gradient unchanged to both terms, and gradients of the
    two paths that leave one tensor add up):
        dx1 = dout + norm2.backward(linear1.backward(gelu.backward(linear2.backward(dout))))
        dx  = dx1  + norm1.backward(self_attn.backward(dx1))
    cache: none of its own; each sub-layer caches what its backward needs. The Linear layers see
    the tokens as one [B*T, E] batch (a Linear acts on each token alike).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.d_model = d_model
        # Constructed in torch's order, which is the order of the random draws: attention, linear1, linear2
        # (the layer norms draw nothing).
        self.self_attn = MultiheadAttention(d_model, nhead)
        self.linear1 = Linear(d_model, dim_feedforward)
        self.activation = GELU()
        self.linear2 = Linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps)

    def children(self) -> list[tuple[str, Module]]:
        # torch's registration order, so named_parameters lists the same names in the same order.
        return [("self_attn", self.self_attn), ("linear1", self.linear1), ("linear2", self.linear2),
                ("norm1", self.norm1), ("norm2", self.norm2)]

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        x1 = x + self.self_attn.forward(self.norm1.forward(x))  # B,T,E
        h = self.norm2.forward(x1).reshape(batch * tokens, dim)  # B*T,E
        h = self.linear2.forward(self.activation.forward(self.linear1.forward(h)))  # B*T,E
        return x1 + h.view(batch, tokens, dim)  # B,T,E

    def backward(self, dout: Tensor) -> Tensor:
        batch, tokens, dim = dout.shape
        dh = self.linear2.backward(dout.reshape(batch * tokens, dim))  # B*T,F
        dh = self.linear1.backward(self.activation.backward(dh))  # B*T,E
        dx1 = dout + self.norm2.backward(dh.view(batch, tokens, dim))  # B,T,E
        return dx1 + self.norm1.backward(self.self_attn.backward(dx1))  # B,T,E

    def __repr__(self) -> str:
        return (f"TransformerEncoderLayer(d_model={self.d_model}, nhead={self.self_attn.num_heads}, "
                f"dim_feedforward={self.linear1.out_features})")
