"""MNIST and Fashion-MNIST from the standard IDX files (LeCun et al.; Xiao et al. 2017)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from mixerlab.data import locate
from mixerlab.data.base import RawSplits
from mixerlab.data.registry import register_source
from mixerlab.errors import ConfigError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")
_DTYPE = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not): magic 0x0000 <dtype> <ndim>, big-endian sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ConfigError(f"{path}: not a readable IDX file ({err}); re-install or re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPE:
        raise ConfigError(f"{path}: bad IDX magic number; the file is corrupt, re-install or re-download it")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    start, count = 4 + 4 * ndim, int(np.prod(dims))
    if len(raw) - start != count:
        raise ConfigError(f"{path}: truncated IDX file ({len(raw) - start} of {count} values); "
                          "re-install or re-download it")
    return np.frombuffer(raw, dtype=_DTYPE[raw[2]], offset=start).reshape(dims)


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    return None


def _has_all(folder: Path) -> bool:
    return all(_file(folder, s) for s in FILES)


def _download(name: str, tv_class) -> Path:
    """Fetch the four files with torchvision's mirror list and md5 sums into the user cache."""
    from torchvision.datasets.utils import download_url

    dest = locate.cache_root() / name
    errors = []
    for filename, md5 in tv_class.resources:
        for mirror in tv_class.mirrors:
            try:
                download_url(mirror + filename, str(dest), filename=filename, md5=md5)
                break
            except Exception as err:  # network refused, DNS, checksum: try the next mirror
                errors.append(f"{type(err).__name__}")
        else:
            raise OSError(errors[-1] if errors else "no mirror answered")
    return dest


def _load(name: str, cfg, tv_class, classes, mean, std, flip: bool) -> RawSplits:
    folder = locate.find(name, cfg.data_dir, _has_all)
    if folder is None:
        try:
            folder = _download(name, tv_class)
        except Exception as err:
            raise locate.not_found(
                name, cfg.data_dir, True, str(err) or type(err).__name__,
                f"install it with 'apt-get install dataset-{name}' (Debian) or pass --data-dir DIR "
                "(or set MIXERLAB_DATA) to a folder holding its four IDX .gz files") from None
    arrays = [read_idx(_file(folder, s)) for s in FILES]
    tx, ty, vx, vy = (torch.from_numpy(a.copy()) for a in arrays)
    if len(tx) != len(ty) or len(vx) != len(vy):
        raise ConfigError(f"{folder}: image and label files disagree in length; re-install the data")
    return RawSplits(tx[:, None], ty.long(), vx[:, None], vy.long(), classes, mean, std,
                     crop_padding=2, flip=flip, source=str(folder))


@register_source("fashion-mnist")
def fashion_mnist(cfg) -> RawSplits:
    """Zalando's Fashion-MNIST: 60k/10k 28x28 grey images of clothing, 10 classes."""
    from torchvision.datasets import FashionMNIST

    # Mean/std of the 60k training images (checked against the data in the tests).
    # Clothes are left-right symmetric, so horizontal flips are label-preserving.
    return _load("fashion-mnist", cfg, FashionMNIST, FashionMNIST.classes, (0.2860,), (0.3530,), flip=True)


@register_source("mnist")
def mnist(cfg) -> RawSplits:
    """MNIST digits: 60k/10k 28x28 grey images, 10 classes. Digits are never flipped."""
    from torchvision.datasets import MNIST

    return _load("mnist", cfg, MNIST, MNIST.classes, (0.1307,), (0.3081,), flip=False)
