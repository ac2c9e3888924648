"""The isotropic layout: patches -> ``depth`` identical blocks at constant width -> pool -> head.

One resolution through every block, as ViT, MLP-Mixer and ConvMixer. The blocks
(:func:`~mixerlab.models.blocks.make_blocks`) and the stem (``patch`` or ``conv``, from
:data:`mixerlab.models.stems.STEMS`) are shared with :mod:`mixerlab.models.pyramid`, which
arranges the same blocks in MetaFormer's hierarchical stages.
"""

from __future__ import annotations

import torch

from mixerlab.config import ModelConfig
from mixerlab.models.blocks import init_skeleton, make_blocks, make_pos_embed, stage_row
from mixerlab.models.layers import PooledHead, make_norm
from mixerlab.models.layouts import register_layout
from mixerlab.models.stems import STEMS


@register_layout("isotropic")
class IsotropicNet(PooledHead):
    """One resolution, one width, a token-mixer slot. Answers timm's model methods."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        side = cfg.image_size // cfg.patch_size
        self.grid = (side, side)
        self.num_features = cfg.width
        self.num_classes = cfg.num_classes
        self.depth = cfg.depth
        # Named patch_embed whatever the stem, so checkpoints of the patch stem keep their keys.
        self.patch_embed = STEMS[cfg.stem](cfg.in_chans, cfg.width, cfg.patch_size, cfg.norm)
        self.pos_embed = make_pos_embed(cfg, cfg.width, self.grid)
        self.blocks = make_blocks(cfg, cfg.width, self.grid, cfg.depth)
        self.norm = make_norm(cfg.norm, cfg.width)
        self.head = torch.nn.Linear(cfg.width, cfg.num_classes)
        init_skeleton(self)

    def stage_plan(self) -> list[dict]:
        """One stage: every block at the stem's grid and ``width``."""
        return [stage_row(1, self.grid[0], self.num_features, self.depth)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, C, H/p, W/p)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return self.norm(self.blocks(x))
