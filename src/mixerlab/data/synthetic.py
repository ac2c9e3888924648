"""Synthetic images, for unit tests only: never a result (every record says ``synthetic``).

The task must be learnable in a few dozen steps by *every* model, controls included: an
identity mixer followed by global average pooling sees no layout, so the label cannot
depend on where things are (a "brightest quadrant" label would be unlearnable for it).
Here the label is the image's brightness band: class k has pixels uniform in
[64k, 64k + 63], so ``label = image.mean() // 64`` exactly. The band also sets the ratio of
offset to spread inside each patch, which survives a per-token LayerNorm. It is also
invariant to flips, so augmentation can be exercised on it.
"""

from __future__ import annotations

import torch

from mixerlab.data.base import RawSplits, pixel_stats
from mixerlab.data.registry import register_dataset

CLASSES = ["band-0", "band-1", "band-2", "band-3"]  # pixels in [0, 63], [64, 127], ...


def make_images(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random (1, size, size) uint8 images and their labels (the brightness band)."""
    y = torch.arange(n) % len(CLASSES)  # balanced classes,
    y = y[torch.randperm(n, generator=generator)]  # in random order: (n,)
    noise = torch.randint(0, 64, (n, 1, size, size), generator=generator, dtype=torch.uint8)
    x = noise + (64 * y).to(torch.uint8).view(n, 1, 1, 1)  # (n, 1, size, size), max 255
    return x, y


@register_dataset("synthetic")
def synthetic(cfg) -> RawSplits:
    """``cfg.synthetic_size`` training images plus a quarter as many (at least 64) for test,
    all drawn from ``cfg.split_seed``. No augmentation unless ``augment=True``."""
    size = cfg.image_size or 28
    g = torch.Generator().manual_seed(cfg.split_seed)
    tx, ty = make_images(cfg.synthetic_size, size, g)
    vx, vy = make_images(max(64, cfg.synthetic_size // 4), size, g)
    mean, std = pixel_stats(tx)
    return RawSplits(tx, ty, vx, vy, list(CLASSES), mean, std, crop_padding=2, flip=True,
                     source="synthetic", synthetic=True, augment_default=False)
