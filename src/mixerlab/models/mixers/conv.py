"""Depthwise convolution, ConvMixer's spatial mixing (Trockman & Kolter 2022, Sec. 2)."""

from __future__ import annotations

import torch
from torch import nn

from mixerlab.models.mixers.registry import register_mixer


# bf16: test accuracy equal to fp32's, 6 seeds paired (results/benchmarks/cpu-amd-epyc-precision.md)
@register_mixer("conv", uses=("kernel_size",), paper="ConvMixer, arXiv:2201.09792", bf16=True)
class DepthwiseConv(nn.Module):
    """Depthwise k x k convolution with "same" padding: local mixing, one filter per channel."""

    def __init__(self, dim: int, grid: tuple[int, int], kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding="same", groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H, W)
