"""A frozen random mixing matrix: MetaFormer's RandFormer control (Yu et al. 2023, Sec. 3)."""

from __future__ import annotations

import torch
from torch import nn

from mixerlab.models.mixers.registry import register_mixer


@register_mixer("random", paper="RandFormer, MetaFormer baselines, arXiv:2210.13452")
class RandomMixing(nn.Module):
    """Global mixing with a fixed, untrained row-stochastic N x N matrix.

    The matrix is a buffer-like frozen parameter (counted in ``params``, not in
    ``trainable_params``), drawn from the global RNG so the trial seed fixes it.
    """

    def __init__(self, dim: int, grid: tuple[int, int]):
        super().__init__()
        n = grid[0] * grid[1]
        self.matrix = nn.Parameter(torch.softmax(torch.rand(n, n), dim=-1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.reshape(b, c, h * w)  # (B, C, N)
        return (t @ self.matrix.T).reshape(b, c, h, w)  # token m = sum_n M[m, n] token n
