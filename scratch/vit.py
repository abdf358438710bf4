"""A small vision transformer (ViT) written by hand: a digit cut into patches, read as a sequence of tokens.

    >>> from scratch.vit import ViT
    >>> model = ViT()                          # 28x28 digits, 7x7 patches -> 16 tokens of 64 features, 3 blocks
    >>> logits = model(x)                      # x: [B, 784], [B, 28, 28] or [B, 1, 28, 28]  ->  [B, 10]
    >>> model.backward(dlogits, input_grad=False)   # fills every d<name>; training never needs dx
    >>> maps = model.attention_maps(x)         # per block [B, heads, T, T]: which patch looks at which

The image is cut into non-overlapping patch_size x patch_size squares, row by row; each square's
pixels (channel, row, column order, as a convolution's weight would read them) go through one
Linear map into a token of `dim` features (`patch_embed`). A learned vector per position
(`pos_embed`) is added, because attention itself ignores order. Transformer blocks
(scratch/transformer.py) mix the tokens; a final LayerNorm (`norm`), then the mean over tokens
(pool="mean") or a learned class token (pool="cls"), feeds the classifier `head`.
Parameter names match torch_impl.vit.ViT ("pos_embed", "patch_embed.weight",
"blocks.0.self_attn.in_proj_weight", ..., "head.bias"), so state dicts copy across.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scratch.layernorm import LayerNorm
from scratch.linear import Linear
from scratch.module import Module, Sequential
from scratch.transformer import TransformerEncoderLayer

POS_EMBED_STD = 0.02  # position embeddings start as small noise: N(0, 0.02^2), drawn with torch.randn
POOLS = ("mean", "cls")


def patchify(x: Tensor, channels: int, image_size: int, patch_size: int) -> Tensor:
    """[B, C*S*S] (or any [B, ...] holding as many values) -> [B, N, C*p*p]: N = (S/p)^2 patches, row by row."""
    g = image_size // patch_size
    x = x.reshape(x.shape[0], channels, g, patch_size, g, patch_size)  # B,C,g,p,g,p
    return x.permute(0, 2, 4, 1, 3, 5).reshape(x.shape[0], g * g, channels * patch_size * patch_size)  # B,N,C*p*p


def unpatchify(patches: Tensor, channels: int, image_size: int, patch_size: int) -> Tensor:
    """The inverse of `patchify`: [B, N, C*p*p] -> [B, C, S, S] (each pixel lies in exactly one patch)."""
    g = image_size // patch_size
    x = patches.reshape(patches.shape[0], g, g, channels, patch_size, patch_size)  # B,g,g,C,p,p
    return x.permute(0, 3, 1, 4, 2, 5).reshape(patches.shape[0], channels, image_size, image_size)  # B,C,S,S


class ViT(Module):
    """Vision transformer: patches -> tokens -> transformer blocks -> pooled token -> logits.

    forward (N patches, T = N tokens, or N + 1 with the class token; D = dim):
        P   = patchify(x)                                  [B, N, C*p*p]
        E   = P W_pe^T + b_pe                              [B, N, D]       (patch_embed)
        H_0 = [cls | E] + pos_embed                        [B, T, D]       (cls only with pool="cls")
        H_k = block_k(H_{k-1}),  k = 1..depth              [B, T, D]
        Z   = norm(H_depth)                                [B, T, D]
        z   = mean_t Z_t  (pool="mean")  or  Z_0 (pool="cls")                  [B, D]
        logits = z W_head^T + b_head                       [B, classes]
    backward (dlogits: [B, classes]):
        dz = head.backward(dlogits)                        [B, D]
        dZ_t = dz / T for every t (mean)  or  dZ_0 = dz, 0 elsewhere (cls)     [B, T, D]
        dH_0 = blocks.backward(norm.backward(dZ))          [B, T, D]
        dpos_embed = sum_b dH_0                            [1, T, D]       (added to every example)
        dcls_token = sum_b dH_0[:, 0]                      [1, 1, D]
        dP = patch_embed.backward(dH_0 without the cls token);  dx = unpatchify(dP)    [B, C, S, S]
    cache: the input's shape (dx is returned in it); the layers cache the rest. No layer here behaves
    differently in training and evaluation (no dropout, no batch norm).
    """

    def __init__(self, image_size: int = 28, patch_size: int = 7, in_channels: int = 1, dim: int = 64,
                 depth: int = 3, heads: int = 4, mlp_dim: int = 128, num_classes: int = 10,
                 pool: str = "mean") -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"ViT: image_size {image_size} is not a multiple of patch_size {patch_size}; "
                             "choose a patch size that divides it (for 28x28 digits: 4, 7 or 14)")
        if pool not in POOLS:
            raise ValueError(f"ViT: unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        self.image_size, self.patch_size, self.in_channels, self.pool = image_size, patch_size, in_channels, pool
        num_patches = (image_size // patch_size) ** 2
        self.num_tokens = num_patches + (pool == "cls")
        # Construction order = order of the random draws; torch_impl.vit.ViT draws in the same order.
        self.patch_embed = Linear(in_channels * patch_size * patch_size, dim)
        if pool == "cls":
            self.cls_token = torch.zeros(1, 1, dim)  # 1,1,D; no draw: zeros, as in torch_impl
            self.param_names = ("cls_token", "pos_embed")
        else:
            self.param_names = ("pos_embed",)
        self.pos_embed = torch.randn(1, self.num_tokens, dim) * POS_EMBED_STD  # 1,T,D
        self.blocks = Sequential(*(TransformerEncoderLayer(dim, heads, mlp_dim) for _ in range(depth)))
        self.norm = LayerNorm(dim)
        self.head = Linear(dim, num_classes)
        for name in self.param_names:
            setattr(self, "d" + name, torch.zeros_like(getattr(self, name)))
        self.input_shape: torch.Size | None = None

    def children(self) -> list[tuple[str, Module]]:
        return [("patch_embed", self.patch_embed), ("blocks", self.blocks), ("norm", self.norm), ("head", self.head)]

    def forward(self, x: Tensor) -> Tensor:
        pixels = self.in_channels * self.image_size ** 2
        if x[0].numel() != pixels:
            raise ValueError(f"ViT(image_size={self.image_size}, in_channels={self.in_channels}) expects images of "
                             f"{pixels} values each ([B, {pixels}], [B, {self.image_size}, {self.image_size}] or "
                             f"[B, {self.in_channels}, {self.image_size}, {self.image_size}]), got {list(x.shape)}")
        self.input_shape = x.shape
        batch = x.shape[0]
        patches = patchify(x, self.in_channels, self.image_size, self.patch_size)  # B,N,C*p*p
        num_patches = patches.shape[1]
        tokens = self.patch_embed.forward(patches.reshape(batch * num_patches, -1))  # B*N,D
        tokens = tokens.view(batch, num_patches, -1)  # B,N,D
        if self.pool == "cls":
            tokens = torch.cat((self.cls_token.expand(batch, -1, -1), tokens), dim=1)  # B,T,D
        h = self.norm.forward(self.blocks.forward(tokens + self.pos_embed))  # B,T,D
        pooled = h.mean(dim=1) if self.pool == "mean" else h[:, 0]  # B,D
        return self.head.forward(pooled)  # B,classes

    def backward(self, dlogits: Tensor, input_grad: bool = True) -> Tensor | None:
        """dL/dx in the input's shape, after filling every gradient buffer; input_grad=False skips dL/dx
        (the patch embedding's input gradient) and returns None."""
        if self.input_shape is None:
            raise RuntimeError("ViT.backward called before forward; run forward on a batch first")
        dpooled = self.head.backward(dlogits)  # B,D
        batch, dim = dpooled.shape
        if self.pool == "mean":
            dh = (dpooled / self.num_tokens).unsqueeze(1).expand(batch, self.num_tokens, dim)  # B,T,D
        else:
            dh = dpooled.new_zeros(batch, self.num_tokens, dim)  # B,T,D: only the class token was read
            dh[:, 0] = dpooled
        dh = self.blocks.backward(self.norm.backward(dh))  # B,T,D
        torch.sum(dh, dim=0, keepdim=True, out=self.dpos_embed)  # 1,T,D
        if self.pool == "cls":
            torch.sum(dh[:, :1], dim=0, keepdim=True, out=self.dcls_token)  # 1,1,D
            dh = dh[:, 1:]  # B,N,D
        num_patches = dh.shape[1]
        dpatches = self.patch_embed.backward(dh.reshape(batch * num_patches, dim), input_grad=input_grad)  # B*N,CPP
        if dpatches is None:
            return None
        dx = unpatchify(dpatches.view(batch, num_patches, -1), self.in_channels, self.image_size,
                        self.patch_size)  # B,C,S,S
        return dx.reshape(self.input_shape)  # as x

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """The attention weights P of every block for the images x: a list of depth tensors [B, heads, T, T]."""
        self.forward(x)
        return [block.self_attn.attn for block in self.blocks.layers]

    def __repr__(self) -> str:
        return (f"ViT(image_size={self.image_size}, patch_size={self.patch_size}, tokens={self.num_tokens}, "
                f"depth={len(self.blocks)}, pool={self.pool!r})")
