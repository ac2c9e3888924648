"""The token-mixing MLP of MLP-Mixer (Tolstikhin et al. 2021, Sec. 2)."""

from __future__ import annotations

import torch
from torch import nn

from mixerlab.models.mixers.registry import register_mixer


# bf16: test accuracy equal to fp32's, 6 seeds paired (results/benchmarks/cpu-amd-epyc-precision.md)
@register_mixer("mlp", uses=("mlp_ratio",), paper="MLP-Mixer, arXiv:2105.01601", bf16=True)
class TokenMlp(nn.Module):
    """An MLP across the patches, shared over channels; its size is tied to the token count.

    Hidden width is ``mlp_ratio`` x tokens: Mixer-B/16 uses D_S = 384 for 196 tokens,
    about 2x (Tolstikhin et al. 2021, Table 1).
    """

    def __init__(self, dim: int, grid: tuple[int, int], mlp_ratio: float):
        super().__init__()
        n = grid[0] * grid[1]
        hidden = max(1, int(round(n * mlp_ratio)))
        self.fc1 = nn.Linear(n, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.reshape(b, c, h * w)  # (B, C, N): mix along N
        return self.fc2(self.act(self.fc1(t))).reshape(b, c, h, w)
