"""The skeleton's block and the few helpers every layout builds its stages with.

A block is MetaFormer's general form (Yu et al. 2022, "MetaFormer Is Actually What You Need
for Vision", arXiv:2111.11418, Eq. 1-2): a pre-norm residual token mixer followed by a
pre-norm residual channel MLP. The token mixer is the only slot that changes between
ViT-like, Mixer-like and ConvMixer-like models. Both layouts (:mod:`~mixerlab.models.isotropic`,
:mod:`~mixerlab.models.pyramid`) build their runs of blocks with :func:`make_blocks`, so a
stage of the pyramid and the isotropic trunk are the same code at another grid and width.
"""

from __future__ import annotations

import torch
from torch import nn

from mixerlab.config import ModelConfig
from mixerlab.models.init import trunc_normal_
from mixerlab.models.layers import ChannelMlp, make_norm
from mixerlab.models.mixers import get_mixer


def channel_ratio(cfg: ModelConfig) -> float:
    """Hidden ratio of the channel MLP: ``channel_mlp_ratio`` if set, else ``mlp_ratio``.

    Only the channel MLP reads it; the token-mixing MLP (mixer ``mlp``) keeps ``mlp_ratio``.
    """
    return cfg.mlp_ratio if cfg.channel_mlp_ratio is None else cfg.channel_mlp_ratio


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


def make_blocks(cfg: ModelConfig, dim: int, grid: tuple[int, int], depth: int) -> nn.Sequential:
    """``depth`` blocks at ``dim`` channels on a ``grid``, each with its own ``cfg.mixer``.

    The mixer is built by the registry's contract, ``info.cls(dim, grid=grid, **factors)``,
    with exactly the factors it declares in ``uses``.
    """
    info = get_mixer(cfg.mixer)
    factors = {name: getattr(cfg, name) for name in info.uses}
    ratio = channel_ratio(cfg)
    return nn.Sequential(
        *[Block(dim, info.cls(dim, grid=grid, **factors), ratio, cfg.norm) for _ in range(depth)]
    )


def make_pos_embed(cfg: ModelConfig, dim: int, grid: tuple[int, int]) -> nn.Parameter | None:
    """A learned position embedding (1, dim, H, W) where the mixer needs one, else ``None``.

    Attention is permutation-invariant, so it alone needs to be told where tokens are. Zeros
    here; :func:`init_skeleton` draws its values once the whole model exists.
    """
    return nn.Parameter(torch.zeros(1, dim, *grid)) if get_mixer(cfg.mixer).pos_embed else None


def init_weights(m: nn.Module) -> None:
    # timm's ViT/Mixer init: truncated normal for linear layers, zero bias.
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_skeleton(model: nn.Module) -> None:
    """timm's init for linear layers, then every position embedding in registration order."""
    model.apply(init_weights)
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1] == "pos_embed":
            trunc_normal_(p, std=0.02)  # as ViT/timm


def stage_row(stage: int, side: int, width: int, depth: int) -> dict:
    """One row of ``stage_plan()``: what ``mixerlab describe`` prints per stage."""
    return {"stage": stage, "grid": f"{side}x{side}", "tokens": side * side, "width": width,
            "depth": depth}
