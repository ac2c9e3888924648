"""Average pooling, PoolFormer's parameter-free mixer (Yu et al. 2022, Eq. 4)."""

from __future__ import annotations

import torch
from torch import nn

from mixerlab.models.mixers.registry import register_mixer


@register_mixer("pool", uses=("kernel_size",), paper="PoolFormer, arXiv:2111.11418")
class Pooling(nn.Module):
    """k x k average pooling minus identity (the residual already adds the input back)."""

    def __init__(self, dim: int, grid: tuple[int, int], kernel_size: int):
        super().__init__()
        # count_include_pad=False: border tokens average only real neighbours, as PoolFormer.
        self.pool = nn.AvgPool2d(kernel_size, 1, kernel_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x
