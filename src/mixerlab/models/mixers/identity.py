"""No token mixing: the control that shows what patches and channel MLPs do alone."""

from __future__ import annotations

import torch
from torch import nn

from mixerlab.models.mixers.registry import register_mixer


# bf16: test accuracy equal to fp32's, 6 seeds paired (results/benchmarks/cpu-amd-epyc-precision.md)
@register_mixer("identity", paper="IdentityFormer, MetaFormer baselines, arXiv:2210.13452", control=True,
                bf16=True)
class IdentityMixer(nn.Module):
    """Identity: tokens never exchange information until the global pool."""

    def __init__(self, dim: int, grid: tuple[int, int]):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
