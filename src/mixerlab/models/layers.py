"""Shared layers of the isotropic skeleton: patch embedding, norm, channel MLP.

Everything here is identical for every token mixer, so a comparison between mixers
changes nothing else. Tensors stay in (B, C, H, W) layout throughout: convolution and
pooling mixers use it natively, token mixers reshape to (B, N, C) inside.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mixerlab.errors import ConfigError


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor, at every position: timm's
    ``timm.layers.LayerNorm2d`` (same eps 1e-6, same parameters and state dict, same
    arithmetic; tests/test_models.py checks them equal), written here so that building a model
    does not import timm (torchvision and torch._dynamo with it, ~2 s per trial worker)."""

    def __init__(self, num_channels: int, eps: float = 1e-6, affine: bool = True):
        super().__init__(num_channels, eps=eps, elementwise_affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


NORMS = {
    # ConvMixer uses BatchNorm after every layer (Trockman & Kolter 2022, Sec. 2).
    "batch": nn.BatchNorm2d,
    # LayerNorm over channels at every position, as MetaFormer/ViT do.
    "layer": LayerNorm2d,
}


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind not in NORMS:
        raise ConfigError(f"norm: unknown '{kind}'; choose one of {sorted(NORMS)}")
    return NORMS[kind](dim)


class PatchEmbed(nn.Module):
    """Non-overlapping patches: a conv with kernel = stride = patch size.

    The patch size alone sets the internal resolution: a 28 px image with p=2 becomes a
    14x14 grid of tokens that every block keeps.
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int, norm: str):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.act = nn.GELU()
        self.norm = make_norm(norm, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.proj(x)))  # (B, C, H/p, W/p)


class ChannelMlp(nn.Module):
    """Per-token MLP across channels (1x1 convs on the (B, C, H, W) layout)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (B, C, H, W)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)


def from_tokens(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    b, n, c = x.shape
    return x.transpose(1, 2).reshape(b, c, *grid)  # (B, N, C) -> (B, C, H, W)


class PooledHead(nn.Module):
    """timm's model methods after ``forward_features``: global average pool -> linear head.
    Shared by both layouts; a subclass sets ``num_features``, ``num_classes`` and ``head``."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # global average pool: (B, C)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes)
