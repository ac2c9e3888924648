"""Any folder of class sub-folders of images: ``DIR/<class>/*.png``, or ``DIR/train/<class>/``
with an optional ``DIR/test/<class>/`` (torchvision's ImageFolder layout).

Images are read once with PIL, grey if every one is grey and RGB otherwise, and brought to
``image_size`` by resizing the short side and cropping the centre (the aspect ratio is
kept). Without a test folder, a stratified 20% is held out as the test set with the split
seed, and the data set's notes say so. Mean and std come from the training images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mixerlab.data.base import RawSplits, pixel_stats
from mixerlab.data.registry import register_dataset
from mixerlab.data.split import pick
from mixerlab.errors import ConfigError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
TEST_FRACTION = 0.2  # held out when there is no test/ folder: 80/20, the usual default


def scan(root: Path, skip: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    """{class: image files} for every visible sub-folder of ``root`` that holds images."""
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in EXTENSIONS)
        if files and not d.name.startswith(".") and d.name not in skip:
            out[d.name] = files
    return out


def read(files: dict[str, list[Path]], classes: list[str], size: int | None, grey: bool):
    """Images (N, C, S, S) uint8 and labels (N,) int64, in class then file order."""
    from PIL import Image, ImageOps

    xs, ys = [], []
    for label, name in enumerate(classes):
        for path in files.get(name, []):
            try:
                with Image.open(path) as im:
                    im = im.convert("L" if grey else "RGB")
                    if size and im.size != (size, size):
                        im = ImageOps.fit(im, (size, size), Image.Resampling.BILINEAR)
                    xs.append(np.asarray(im).reshape(im.height, im.width, -1))  # (H, W, C)
            except OSError as err:
                raise ConfigError(f"{path}: not a readable image ({err}); remove it") from None
            ys.append(label)
    shapes = sorted({x.shape[:2] for x in xs})
    if len(shapes) > 1 or shapes[0][0] != shapes[0][1]:
        raise ConfigError(f"imagefolder: images are not all one square size (found {shapes[:3]}); "
                          "set dataset.image_size (or --image-size) to resize them")
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    return x, torch.tensor(ys, dtype=torch.int64)


def _is_grey(files: list[Path]) -> bool:
    from PIL import Image

    def mode(p: Path) -> str:
        with Image.open(p) as im:  # reads the header only
            return im.mode

    return all(mode(p) in GREY_MODES for p in files)


@register_dataset("imagefolder")
def imagefolder(cfg) -> RawSplits:
    """Images in class folders under ``cfg.data_dir``."""
    if not cfg.data_dir:
        raise ConfigError("imagefolder: no folder given; pass --data-dir DIR (or set "
                          "dataset.data_dir) for a folder of class sub-folders of images")
    root = Path(cfg.data_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"imagefolder: {root} is not a folder; fix --data-dir")
    has_train = (root / "train").is_dir()
    train_files = scan(root / "train") if has_train else scan(root, skip=("test",))
    test_files = scan(root / "test") if (root / "test").is_dir() else None
    classes = sorted(train_files)
    if not classes:
        raise ConfigError(f"imagefolder: no class sub-folders with images ({', '.join(sorted(EXTENSIONS))}) "
                          f"in {root / 'train' if has_train else root}; fix --data-dir")
    if test_files and not set(test_files) <= set(classes):
        extra = ", ".join(sorted(set(test_files) - set(classes)))
        raise ConfigError(f"imagefolder: test classes {extra} have no training images in {root}")
    every = [f for fs in (*train_files.values(), *(test_files or {}).values()) for f in fs]
    grey = _is_grey(every)
    tx, ty = read(train_files, classes, cfg.image_size, grey)
    notes = []
    if test_files:
        vx, vy = read(test_files, classes, cfg.image_size, grey)
        if vx.shape[1:] != tx.shape[1:]:
            raise ConfigError(f"imagefolder: test images are {tuple(vx.shape[2:])}, training images "
                              f"{tuple(tx.shape[2:])}; set dataset.image_size (or --image-size)")
    else:
        g = torch.Generator().manual_seed(cfg.split_seed)
        test, train = pick(ty, int(TEST_FRACTION * len(ty) + 0.5), g)
        vx, vy, tx, ty = tx[test], ty[test], tx[train], ty[train]
        notes.append(f"no test/ folder: a stratified {TEST_FRACTION:.0%} of the images was held "
                     f"out as the test set (split_seed {cfg.split_seed})")
    mean, std = pixel_stats(tx)
    std = tuple(max(s, 1e-3) for s in std)  # a constant-colour folder must not divide by 0
    return RawSplits(tx, ty, vx, vy, classes, mean, std, crop_padding=tx.shape[-1] // 8,
                     flip=True, source=str(root.resolve()), notes=notes)
