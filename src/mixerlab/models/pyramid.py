"""The pyramid layout: MetaFormer's hierarchical stages, built from the skeleton's blocks.

Yu et al. 2022, "MetaFormer Is Actually What You Need for Vision" (PoolFormer,
arXiv:2111.11418, Sec. 3.2) and "MetaFormer Baselines for Vision" (ConvFormer,
arXiv:2210.13452, Sec. 3): the same block, ``x + mixer(norm(x))`` then
``x + channel_mlp(norm(x))``, run in stages of falling resolution and rising width.
ImageNet MetaFormers use 4 stages at strides 4-32; at 28-32 px we use 3 (:data:`STAGES`).

The rule that turns ``depth``, ``width`` and ``patch_size`` into stages:

* the stem (``patch`` or ``conv``, output stride ``patch_size``) embeds at ``width``;
* stage ``i`` (0-based) has width ``width * 2**i`` and side ``ceil(side_{i-1} / 2)``:
  28 px, p=2 -> 14x14, 7x7, 4x4; 32 px, p=2 -> 16x16, 8x8, 4x4;
* the ``depth`` blocks are shared out as evenly as possible, the remainder to the last
  stages (depth 4 -> [1, 1, 2], 6 -> [2, 2, 2], 8 -> [2, 3, 3]);
* between stages, the down-sampling ``downsample`` names (:data:`DOWNSAMPLES`): by default
  MetaFormer's, norm then a 3x3 stride-2 conv with padding 1 (norm first, as its
  ``Downsampling(pre_norm=...)`` does, so the conv sees the normalised residual stream);
  padding 1 gives the ceil above. ``merge2`` is Swin's non-overlapping 2x2 merge, which
  pads an odd side to reach the same ceil (:class:`PatchMerge`);
* each stage builds its own mixer for its grid and width, ``info.cls(stage_width,
  grid=stage_grid, **factors)``; attention gets one learned position embedding per stage,
  added after that stage's downsampling, as PVT does (Wang et al. 2021, arXiv:2102.12122);
* final norm, global average pool, linear head from ``4 * width``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixerlab.config import ModelConfig
from mixerlab.models.blocks import init_skeleton, make_blocks, make_pos_embed, stage_row
from mixerlab.models.layers import PooledHead, make_norm
from mixerlab.models.layouts import register_layout
from mixerlab.models.stems import STEMS

# Three stages at 28-32 px: a fourth would run on a 2x2 grid, where global and local
# mixing no longer differ.
STAGES = 3


def stage_depths(depth: int, stages: int = STAGES) -> list[int]:
    """``depth`` blocks shared out evenly, the remainder to the last stages: 8 -> [2, 3, 3]."""
    base, rest = divmod(depth, stages)
    return [base + (i >= stages - rest) for i in range(stages)]


def stage_sides(side: int, stages: int = STAGES) -> list[int]:
    """Grid side of each stage: the stem's, then halved (ceil) per stage: 14 -> [14, 7, 4]."""
    sides = [side]
    for _ in range(stages - 1):
        # ceil: a 3x3 stride-2 conv with padding 1, or a 2x2 merge after padding odd sides
        sides.append(-(-sides[-1] // 2))
    return sides


class Downsample(nn.Module):
    """MetaFormer's down-sampling between stages: norm, then a 3x3 stride-2 conv (overlapping)."""

    def __init__(self, dim: int, out_dim: int, norm: str):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.conv = nn.Conv2d(dim, out_dim, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))  # (B, 2C, ceil(H/2), ceil(W/2))


class PatchMerge(nn.Module):
    """Swin's patch merging: norm, then a 2x2 stride-2 conv (non-overlapping windows).

    Liu et al. 2021 (arXiv:2103.14030, Sec. 3.1) concatenate each 2x2 group of neighbouring
    tokens (4C channels) and apply a linear layer to 2C; that map is exactly a 2x2 stride-2
    convolution, which is how it is written here. Each output token sees only its own four
    inputs, the least mixing a halving can do. Two choices keep it one change away from
    :class:`Downsample` (only the window differs): MetaFormer's norm on C before the conv
    (Swin norms the 4C concatenation) and a bias (Swin's linear has none).

    Odd sides: the pyramid halves the side rounded up (28 px at p=2: 14, 7, 4), so a side
    that is odd is padded by one zero row at the bottom and one zero column at the right
    before merging (7 -> 8 -> 4), as timm's ``PatchMerging`` pads; the last row and column
    merge with zeros (after the norm, so zeros take no part in its statistics).
    """

    def __init__(self, dim: int, out_dim: int, norm: str):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.conv = nn.Conv2d(dim, out_dim, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))  # (B, C, 2*ceil(H/2), 2*ceil(W/2))
        return self.conv(x)  # (B, 2C, ceil(H/2), ceil(W/2))


# The ``downsample`` factor of ModelConfig: each is built as ``cls(in_dim, out_dim, norm)``.
DOWNSAMPLES: dict[str, type[nn.Module]] = {"conv3": Downsample, "merge2": PatchMerge}


class Stage(nn.Module):
    """Optional down-sampling, optional position embedding, then blocks at one grid and width."""

    def __init__(self, cfg: ModelConfig, in_dim: int | None, dim: int, side: int, depth: int):
        super().__init__()
        grid = (side, side)
        # The first stage runs at the stem's grid (in_dim None); later ones halve it first.
        self.downsample = nn.Identity() if in_dim is None else DOWNSAMPLES[cfg.downsample](in_dim, dim, cfg.norm)
        self.pos_embed = make_pos_embed(cfg, dim, grid)
        self.blocks = make_blocks(cfg, dim, grid, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)  # (B, C_i, H_i, W_i)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return self.blocks(x)


@register_layout("pyramid", uses=("downsample",), stages=STAGES)
class PyramidNet(PooledHead):
    """Hierarchical MetaFormer with a token-mixer slot. Answers timm's model methods."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        sides = stage_sides(cfg.image_size // cfg.patch_size)
        widths = [cfg.width * 2**i for i in range(STAGES)]
        depths = stage_depths(cfg.depth)
        self._plan = [stage_row(i + 1, s, w, d) for i, (s, w, d) in enumerate(zip(sides, widths, depths))]
        self.num_features = widths[-1]
        self.num_classes = cfg.num_classes
        self.stem = STEMS[cfg.stem](cfg.in_chans, cfg.width, cfg.patch_size, cfg.norm)
        self.stages = nn.Sequential(*[
            Stage(cfg, widths[i - 1] if i else None, widths[i], sides[i], depths[i]) for i in range(STAGES)
        ])
        self.norm = make_norm(cfg.norm, self.num_features)
        self.head = nn.Linear(self.num_features, cfg.num_classes)
        init_skeleton(self)

    def stage_plan(self) -> list[dict]:
        """Per stage: grid, tokens, width and number of blocks."""
        return [dict(row) for row in self._plan]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, width, H/p, W/p)
        return self.norm(self.stages(x))  # (B, 4 * width, H/4p, W/4p), sides rounded up
