"""Synthetic images for unit tests only: never a real result (``synthetic=True`` in every record)."""

from __future__ import annotations

import torch

from mixerlab.data.base import RawSplits
from mixerlab.data.registry import register_source

CLASSES = ["top-left", "top-right", "bottom-left", "bottom-right"]


@register_source("synthetic")
def synthetic(cfg) -> RawSplits:
    """Random grey noise with one brighter quadrant; the label is that quadrant (learnable)."""
    size = cfg.image_size or 28
    g = torch.Generator().manual_seed(cfg.split_seed)
    n = cfg.synthetic_size
    total = n + max(64, n // 4)  # a test split beside the training split
    y = torch.randint(0, 4, (total,), generator=g)
    x = torch.randint(0, 128, (total, 1, size, size), generator=g, dtype=torch.uint8)
    h = size // 2
    for q in range(4):  # brighten the labelled quadrant
        r, c = divmod(q, 2)
        sel = y == q
        x[sel, :, r * h:(r + 1) * h, c * h:(c + 1) * h] += 100
    return RawSplits(x[:n], y[:n], x[n:], y[n:], CLASSES, (0.3,), (0.2,), crop_padding=0,
                     flip=False, source="synthetic", synthetic=True)
