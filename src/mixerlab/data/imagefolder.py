"""Any folder of class sub-folders of images (``root/<class>/*.png``), optionally split into
``root/train`` and ``root/test``."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from mixerlab.data.base import RawSplits
from mixerlab.data.registry import register_source
from mixerlab.errors import ConfigError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _scan(root: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in EXTENSIONS)
            for d in sorted(root.iterdir()) if d.is_dir()}


def _read(files: dict[str, list[Path]], classes: list[str], size: int | None):
    from PIL import Image

    xs, ys = [], []
    for label, name in enumerate(classes):
        for path in files.get(name, []):
            with Image.open(path) as im:
                arr = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8)
                x = arr.view(im.height, im.width, 3).permute(2, 0, 1)  # (C, H, W)
            if size and x.shape[1:] != (size, size):
                x = F.interpolate(x[None].float(), size=(size, size), mode="bilinear",
                                  antialias=True, align_corners=False)[0].round().clamp(0, 255).byte()
            xs.append(x)
            ys.append(label)
    if len({tuple(x.shape) for x in xs}) > 1:
        raise ConfigError("imagefolder: images differ in size; set dataset.image_size (or --image-size)")
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


@register_source("imagefolder")
def imagefolder(cfg) -> RawSplits:
    """Images in class folders; statistics computed from the training images."""
    if not cfg.data_dir:
        raise ConfigError("imagefolder: needs a folder of class sub-folders; pass --data-dir DIR")
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise ConfigError(f"imagefolder: {root} is not a directory; pass --data-dir DIR")
    notes = []
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_files, test_files = _scan(root / "train"), _scan(root / "test")
    else:
        train_files, test_files = _scan(root), None
    classes = sorted(train_files)
    if not classes or not any(train_files.values()):
        raise ConfigError(f"imagefolder: no class sub-folders with images in {root}")
    tx, ty = _read(train_files, classes, cfg.image_size)
    if test_files is None:  # no test split on disk: hold out 20% with the split seed
        g = torch.Generator().manual_seed(cfg.split_seed + 7)
        perm = torch.randperm(len(ty), generator=g)
        k = max(1, len(ty) // 5)
        vx, vy, tx, ty = tx[perm[:k]], ty[perm[:k]], tx[perm[k:]], ty[perm[k:]]
        notes.append("no test/ folder: 20% of the images were held out as the test set")
    else:
        vx, vy = _read(test_files, classes, cfg.image_size)
    xf = tx.float() / 255
    mean = tuple(xf.mean(dim=(0, 2, 3)).tolist())
    std = tuple(xf.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return RawSplits(tx, ty, vx, vy, classes, mean, std, crop_padding=max(1, tx.shape[-1] // 8),
                     flip=True, source=str(root), notes=notes)
