"""Multi-head self-attention written by hand: every token looks at every other token and takes a weighted mix.

    >>> attn = MultiheadAttention(embed_dim=64, num_heads=4)
    >>> out = attn(x)                  # x: [B, T, 64] -> [B, T, 64]   (queries, keys and values all from x)
    >>> dx = attn.backward(dout)       # fills attn.din_proj_weight, ..., attn.out_proj.dweight, ...
    >>> attn.attn                      # [B, 4, T, T]: the attention weights of the last forward

Each token's vector is projected three ways: a query ("what am I looking for"), a key ("what do
I offer") and a value ("what I pass on"). A token's output is the average of all values,
weighted by how well its query matches each key (a softmax over scaled dot products). With
several heads the vectors are cut into num_heads slices that attend independently.
Derivations with shapes: docs/attention.md.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scratch.linear import Linear
from scratch.module import Module


def xavier_uniform_(weight: Tensor, gain: float = 1.0) -> None:
    """Fill `weight` [out, in] from U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)), as torch's init.xavier_uniform_.

    The same float operations in the same order as torch (std first, then sqrt(3) * std), so
    the bound, and from one seed the draws, are bit-identical.
    """
    fan_out, fan_in = weight.shape
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    weight.uniform_(-bound, bound)


def softmax(s: Tensor) -> Tensor:
    """p_i = exp(s_i - m) / sum_j exp(s_j - m) along the last dimension, m = max_j s_j (exp never overflows)."""
    return softmax_(s.clone())  # ...,T


def softmax_(s: Tensor) -> Tensor:
    """softmax(s), computed in s's own memory: three passes over it instead of five new tensors."""
    s.sub_(s.amax(dim=-1, keepdim=True)).exp_()  # ...,T: exp(s - m)
    return s.div_(s.sum(dim=-1, keepdim=True))  # ...,T


def softmax_backward(p: Tensor, dp: Tensor) -> Tensor:
    """Gradient through p = softmax(s) along the last dimension: ds = p * (dp - sum_j dp_j p_j).

    From dp_i/ds_j = p_i (delta_ij - p_j): ds_j = sum_i dp_i p_i (delta_ij - p_j) = p_j (dp_j - sum_i dp_i p_i).
    """
    return softmax_backward_(p, dp.clone())  # ...,T


def softmax_backward_(p: Tensor, dp: Tensor) -> Tensor:
    """softmax_backward(p, dp), computed in dp's own memory as p dp - p sum_j (p_j dp_j)."""
    pdp = dp.mul_(p)  # ...,T: p * dp
    return pdp.addcmul_(p, pdp.sum(dim=-1, keepdim=True), value=-1)  # ...,T

class MultiheadAttention(Module):
    """Self-attention with num_heads heads (as PyTorch's `nn.MultiheadAttention(E, H, batch_first=True)`
    called as attn(x, x, x)), on inputs [B, T, E]; each head has d = E / H features.

    forward:
        [Q | K | V] = x W_in^T + b_in                    W_in: [3E, E] (in_proj_weight), b_in: [3E]   -> 3 x [B, T, E]
        Q, K, V cut into heads                            [B, H, T, d]
        S = Q K^T / sqrt(d)                               [B, H, T, T]   (scores: query t against key u)
        P = softmax(S) along the last dimension           [B, H, T, T]   (each row sums to 1)
        C = P V, heads put side by side again             [B, H, T, d] -> [B, T, E]
        out = C W_o^T + b_o                               (out_proj, a Linear(E, E))   [B, T, E]
    backward (dout: [B, T, E]):
        dC = out_proj.backward(dout)                      [B, T, E] -> heads [B, H, T, d]
        dP = dC V^T                                       [B, H, T, T]
        dV = P^T dC                                       [B, H, T, d]
        dS = P * (dP - sum_u dP_u P_u)                    [B, H, T, T]   (softmax backward)
        dQ = dS K / sqrt(d)          dK = dS^T Q / sqrt(d)                  [B, H, T, d]
        dQKV = [dQ | dK | dV], heads joined               [B, T, 3E]
        dW_in = sum_{b,t} dQKV^T x    db_in = sum_{b,t} dQKV    dx = dQKV W_in     [3E, E], [3E], [B, T, E]
    cache: x (for dW_in), Q, K, V in heads and P: the matrix products of the backward need all four.
    Q, K and V are copied once into one [3, B*H, T, d] block, so that every batched product reads them in place.
    """

    param_names = ("in_proj_weight", "in_proj_bias")

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention needs embed_dim divisible by num_heads, got embed_dim={embed_dim}, "
                             f"num_heads={num_heads}; choose e.g. a dim of 64 with 4 heads")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        # torch's order of random draws: the parameters are created empty, then out_proj (a Linear)
        # draws its own weight and bias at construction, then _reset_parameters draws in_proj_weight
        # (Xavier) and sets both biases to 0 (out_proj's drawn bias is overwritten).
        self.in_proj_weight = torch.empty(3 * embed_dim, embed_dim)  # 3E,E: W_q, W_k, W_v stacked
        self.in_proj_bias = torch.empty(3 * embed_dim)  # 3E
        self.out_proj = Linear(embed_dim, embed_dim)
        xavier_uniform_(self.in_proj_weight)
        self.in_proj_bias.zero_()
        self.out_proj.bias.zero_()
        self.din_proj_weight = torch.zeros_like(self.in_proj_weight)
        self.din_proj_bias = torch.zeros_like(self.in_proj_bias)
        self.x: Tensor | None = None
        self.attn: Tensor | None = None

    def children(self) -> list[tuple[str, Module]]:
        return [("out_proj", self.out_proj)]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}) expects input [batch, tokens, "
                             f"{self.embed_dim}], got {list(x.shape)}")
        batch, tokens, _ = x.shape
        heads, d = self.num_heads, self.head_dim
        self.x = x  # B,T,E
        qkv = torch.addmm(self.in_proj_bias, x.reshape(-1, self.embed_dim), self.in_proj_weight.t())  # B*T,3E
        # [B*T, 3E] -> [3, B*H, T, d]: the three projections, each cut into heads, copied once so that every
        # batched product below reads them in place (a product of strided views would copy them each time).
        self.qkv = self.workspace("qkv", (3, batch * heads, tokens, d), x)
        self.qkv.view(3, batch, heads, tokens, d).copy_(qkv.view(batch, tokens, 3, heads, d).permute(2, 0, 3, 1, 4))
        q, k, v = self.qkv.unbind(0)  # B*H,T,d each
        scores = torch.bmm(q, k.transpose(1, 2)).mul_(1 / math.sqrt(d))  # B*H,T,T
        self.attn = softmax_(scores).view(batch, heads, tokens, tokens)  # B,H,T,T
        context = torch.bmm(scores, v).view(batch, heads, tokens, d)  # B,H,T,d
        context = context.transpose(1, 2).reshape(batch * tokens, self.embed_dim)  # B*T,E
        return self.out_proj.forward(context).view(batch, tokens, self.embed_dim)  # B,T,E

    def backward(self, dout: Tensor) -> Tensor:
        if self.x is None:
            raise RuntimeError("MultiheadAttention.backward called before forward; run forward on a batch first")
        batch, tokens, _ = self.x.shape
        heads, d = self.num_heads, self.head_dim
        q, k, v = self.qkv.unbind(0)  # B*H,T,d each
        attn = self.attn.view(batch * heads, tokens, tokens)  # B*H,T,T
        dcontext = self.out_proj.backward(dout.reshape(batch * tokens, self.embed_dim))  # B*T,E
        dcontext = dcontext.view(batch, tokens, heads, d).transpose(1, 2).reshape(batch * heads, tokens, d)  # B*H,T,d
        dqkv = self.workspace("dqkv", (3, batch * heads, tokens, d), dout)  # dQ, dK, dV: filled in place
        dattn = torch.bmm(dcontext, v.transpose(1, 2))  # B*H,T,T
        torch.bmm(attn.transpose(1, 2), dcontext, out=dqkv[2])  # dV = P^T dC
        dscores = softmax_backward_(attn, dattn).mul_(1 / math.sqrt(d))  # B*H,T,T (the 1/sqrt(d) of S)
        torch.bmm(dscores, k, out=dqkv[0])  # dQ = dS K / sqrt(d)
        torch.bmm(dscores.transpose(1, 2), q, out=dqkv[1])  # dK = dS^T Q / sqrt(d)
        # [3, B, H, T, d] -> [B*T, 3E]: the inverse of forward's cut into heads.
        dqkv = dqkv.view(3, batch, heads, tokens, d).permute(1, 3, 0, 2, 4).reshape(batch * tokens, 3 * self.embed_dim)
        x = self.x.reshape(batch * tokens, self.embed_dim)  # B*T,E
        torch.mm(dqkv.t(), x, out=self.din_proj_weight)  # 3E,E
        torch.sum(dqkv, dim=0, out=self.din_proj_bias)  # 3E
        return (dqkv @ self.in_proj_weight).view(batch, tokens, self.embed_dim)  # B,T,E

    def __repr__(self) -> str:
        return f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
