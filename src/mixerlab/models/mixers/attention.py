"""Multi-head self-attention, the ViT token mixer (Dosovitskiy et al. 2021, Sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixerlab.models.layers import from_tokens, to_tokens
from mixerlab.models.mixers.registry import register_mixer


@register_mixer("attention", uses=("heads",), pos_embed=True, paper="ViT, arXiv:2010.11929")
class Attention(nn.Module):
    """Global multi-head self-attention over all patches (needs position embeddings)."""

    def __init__(self, dim: int, grid: tuple[int, int], heads: int):
        super().__init__()
        self.grid, self.heads = grid, heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = to_tokens(x)  # (B, N, C)
        b, n, c = t.shape
        qkv = self.qkv(t).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, h, N, C/h)
        t = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, C/h)
        t = self.proj(t.transpose(1, 2).reshape(b, n, c))  # (B, N, C)
        return from_tokens(t, self.grid)
