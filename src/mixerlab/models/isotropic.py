"""The isotropic skeleton: patches -> ``depth`` identical blocks at constant width -> pool -> head.

A block is MetaFormer's general form (Yu et al. 2022, Eq. 1-2): a pre-norm residual token
mixer followed by a pre-norm residual channel MLP. The token mixer is the only slot that
changes between ViT-like, Mixer-like and ConvMixer-like models. The stem (``patch`` or
``conv``) comes from :data:`mixerlab.models.stems.STEMS`; :mod:`mixerlab.models.pyramid`
arranges the same blocks in MetaFormer's hierarchical stages.
"""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from mixerlab.config import ModelConfig
from mixerlab.models.layers import ChannelMlp, PooledHead, make_norm
from mixerlab.models.mixers import get_mixer
from mixerlab.models.stems import STEMS


def channel_ratio(cfg: ModelConfig) -> float:
    """Hidden ratio of the channel MLP: ``channel_mlp_ratio`` if set, else ``mlp_ratio``.

    Only the channel MLP reads it; the token-mixing MLP (mixer ``mlp``) keeps ``mlp_ratio``.
    """
    return cfg.mlp_ratio if cfg.channel_mlp_ratio is None else cfg.channel_mlp_ratio


def stage_row(stage: int, side: int, width: int, depth: int) -> dict:
    """One row of ``stage_plan()``: what ``mixerlab describe`` prints per stage."""
    return {"stage": stage, "grid": f"{side}x{side}", "tokens": side * side, "width": width,
            "depth": depth}


class Block(nn.Module):
    """MetaFormer block; ``mlp_ratio`` here is the channel MLP's (see :func:`channel_ratio`)."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float, norm: str):
        super().__init__()
        self.norm1 = make_norm(norm, dim)
        self.mixer = mixer
        self.norm2 = make_norm(norm, dim)
        self.mlp = ChannelMlp(dim, max(1, int(round(dim * mlp_ratio))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))  # (B, C, H, W)
        return x + self.mlp(self.norm2(x))


class IsotropicNet(PooledHead):
    """One resolution, one width, a token-mixer slot. Answers timm's model methods."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        info = get_mixer(cfg.mixer)
        side = cfg.image_size // cfg.patch_size
        self.grid = (side, side)
        self.num_features = cfg.width
        self.num_classes = cfg.num_classes
        self.depth = cfg.depth
        # Named patch_embed whatever the stem, so checkpoints of the patch stem keep their keys.
        self.patch_embed = STEMS[cfg.stem](cfg.in_chans, cfg.width, cfg.patch_size, cfg.norm)
        # Attention is permutation-invariant, so it alone needs to be told where tokens are.
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.width, *self.grid)) if info.pos_embed else None
        factors = {name: getattr(cfg, name) for name in info.uses}
        ratio = channel_ratio(cfg)
        self.blocks = nn.Sequential(
            *[
                Block(cfg.width, info.cls(cfg.width, grid=self.grid, **factors), ratio, cfg.norm)
                for _ in range(cfg.depth)
            ]
        )
        self.norm = make_norm(cfg.norm, cfg.width)
        self.head = nn.Linear(cfg.width, cfg.num_classes)
        self.apply(init_weights)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)  # as ViT/timm

    def stage_plan(self) -> list[dict]:
        """One stage: every block at the stem's grid and ``width``."""
        return [stage_row(1, self.grid[0], self.num_features, self.depth)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, C, H/p, W/p)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return self.norm(self.blocks(x))


def init_weights(m: nn.Module) -> None:
    # timm's ViT/Mixer init: truncated normal for linear layers, zero bias.
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
