"""The scratch ViT's twin: the same patches, names, shapes and random draws, as an ordinary `torch.nn.Module`.

    >>> from torch_impl.vit import ViT
    >>> model = ViT()                 # parameters "pos_embed", "patch_embed.weight", "blocks.0.self_attn...", ...
    >>> loss = nn.CrossEntropyLoss()(model(x), y); loss.backward()   # autograd fills .grad
    >>> maps = model.attention_maps(x)   # per block [B, heads, T, T]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torch_impl.transformer import TransformerEncoderLayer

POS_EMBED_STD = 0.02  # as scratch.vit: N(0, 0.02^2) from torch.randn
POOLS = ("mean", "cls")


def patchify(x: Tensor, channels: int, image_size: int, patch_size: int) -> Tensor:
    """[B, C*S*S] (or any [B, ...] holding as many values) -> [B, N, C*p*p], patches row by row."""
    g = image_size // patch_size
    x = x.reshape(x.shape[0], channels, g, patch_size, g, patch_size)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(x.shape[0], g * g, channels * patch_size * patch_size)


class ViT(nn.Module):
    """Patch embedding (a Linear on each flattened patch) + position embedding, pre-norm transformer
    blocks (nn.TransformerEncoderLayer), final LayerNorm, mean or class-token pooling, Linear head."""

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
        num_tokens = (image_size // patch_size) ** 2 + (pool == "cls")
        # The order of the random draws of scratch.vit.ViT: patch_embed, pos_embed, blocks, head.
        self.patch_embed = nn.Linear(in_channels * patch_size * patch_size, dim)
        if pool == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, dim) * POS_EMBED_STD)
        self.blocks = nn.Sequential(*(TransformerEncoderLayer(dim, heads, mlp_dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """Images -> the tokens the first block reads, [B, T, dim]."""
        tokens = self.patch_embed(patchify(x, self.in_channels, self.image_size, self.patch_size))
        if self.pool == "cls":
            tokens = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), tokens), dim=1)
        return tokens + self.pos_embed

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.blocks(self.embed(x)))
        return self.head(h.mean(dim=1) if self.pool == "mean" else h[:, 0])

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """The attention weights of every block for the images x: a list of depth tensors [B, heads, T, T]."""
        h, maps = self.embed(x), []
        for block in self.blocks:
            y = block.norm1(h)
            maps.append(block.self_attn(y, y, y, need_weights=True, average_attn_weights=False)[1])
            h = block(h)
        return maps
