"""Multi-head self-attention, the ViT token mixer (Dosovitskiy et al. 2021, Sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixerlab.models.layers import from_tokens, to_tokens
from mixerlab.models.mixers.registry import register_mixer

# PyTorch's fused kernel is the default. Which is faster depends on the threads, the layout
# and the precision (49 tokens, this CPU: 1.00x at one thread, 1.18x or 0.90x at two threads in
# channels_last or NCHW, 3.5-4x in bf16; benchmarks/attention_kernels.py, kernel_factors), so
# a sweep times both per configuration (mixerlab/execution.py) and sets ``kernel``.


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with batched matmuls: what the fused kernel computes."""
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v


# bf16: test accuracy equal to fp32's, 6 seeds paired (results/benchmarks/cpu-amd-epyc-precision.md)
@register_mixer("attention", uses=("heads",), pos_embed=True, paper="ViT, arXiv:2010.11929", bf16=True)
class Attention(nn.Module):
    """Global multi-head self-attention over all patches (needs position embeddings)."""

    # The kernels this module implements: declaring them makes ``kernel`` a choice that
    # Execution.prepare (mixerlab/execution.py) may set.
    KERNELS = ("fused", "plain")

    def __init__(self, dim: int, grid: tuple[int, int], heads: int):
        super().__init__()
        self.grid, self.heads = grid, heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        # "fused" (F.scaled_dot_product_attention) or "plain" (three batched matmuls): the same
        # function, compared by benchmarks/attention_kernels.py.
        self.kernel = "fused"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = to_tokens(x)  # (B, N, C)
        b, n, c = t.shape
        qkv = self.qkv(t).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, h, N, C/h)
        attend = plain_attention if self.kernel == "plain" else F.scaled_dot_product_attention
        t = attend(q, k, v)  # (B, h, N, C/h)
        t = self.proj(t.transpose(1, 2).reshape(b, n, c))  # (B, N, C)
        return from_tokens(t, self.grid)
