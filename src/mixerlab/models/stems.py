"""Stems: how an image becomes a grid of ``dim``-channel tokens at output stride ``patch_size``.

Both stems give the same grid (``image_size / patch_size`` per side), so the ``stem`` factor
changes only how pixels are embedded, never the number of tokens the mixers see.

* ``patch``: non-overlapping patches, one conv with kernel = stride = patch size (ViT,
  ConvMixer); :class:`~mixerlab.models.layers.PatchEmbed`.
* ``conv``: overlapping 3x3 stride-2 convolutions, after Xiao et al. 2021, "Early
  Convolutions Help Transformers See Better" (arXiv:2106.14881, Sec. 3.1), who replace ViT's
  patchify stem with such a stack and report steadier optimisation and better accuracy.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mixerlab.models.layers import PatchEmbed, make_norm


def conv_stem_channels(dim: int, patch_size: int) -> list[int]:
    """Output channels of each conv of the conv stem: halving backwards from ``dim``.

    p=1 -> [dim]; p=2 -> [dim]; p=4 -> [dim/2, dim]; p=8 -> [dim/4, dim/2, dim]. Xiao et al.
    also double the channels at every stride-2 conv (Sec. 3.1). At least 1 channel.
    """
    k = max(1, int(math.log2(patch_size)))  # p=1 still has one (stride-1) conv
    return [max(1, dim >> (k - 1 - i)) for i in range(k)]


class ConvStem(nn.Module):
    """log2(p) overlapping 3x3 stride-2 convs (conv -> GELU -> norm each) to output stride p.

    Each conv has padding 1, so a side of s becomes ceil(s / 2); for a power-of-two p that
    divides the image size this is exactly ``image_size / p``, the patch stem's grid. For
    p=1 it is one 3x3 stride-1 conv (same grid, overlapping). Xiao et al. end their stem
    with a 1x1 conv; we omit it so the last 3x3 conv lands on ``dim`` and every conv is
    followed by GELU and the norm in PatchEmbed's order, keeping the two stems comparable.
    ``patch_size`` must be a power of two (``check_model`` says so in one line).
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int, norm: str):
        super().__init__()
        stride = 1 if patch_size == 1 else 2
        layers, c_in = [], in_chans
        for c_out in conv_stem_channels(dim, patch_size):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GELU(),
                       make_norm(norm, c_out)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, C, H/p, W/p)


# The ``stem`` factor of ModelConfig: every stem is built as ``cls(in_chans, dim, patch_size, norm)``.
STEMS: dict[str, type[nn.Module]] = {"patch": PatchEmbed, "conv": ConvStem}


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0
