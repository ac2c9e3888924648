"""CIFAR-10 and CIFAR-100 in the standard python-pickle format (Krizhevsky 2009)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from mixerlab.data import locate
from mixerlab.data.base import RawSplits
from mixerlab.data.registry import register_source
from mixerlab.errors import ConfigError

# (folder inside the archive, training files, test file, meta file, label key, names key)
LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                "batches.meta", b"labels", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", b"fine_labels", b"fine_label_names"),
}
# Per-channel statistics of the training sets (the values used across the CIFAR literature).
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # The CIFAR files are pickles by design; only load them from folders you trust.
            return pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable CIFAR batch ({err}); re-download the data set") from None


def _folder(name: str, root: Path) -> Path | None:
    sub, train, test, meta, *_ = LAYOUT[name]
    for cand in (root / sub, root):
        if all((cand / f).exists() for f in (*train, test, meta)):
            return cand
    return None


def _download(name: str) -> Path:
    from torchvision.datasets import CIFAR10, CIFAR100
    from torchvision.datasets.utils import download_and_extract_archive

    tv = CIFAR10 if name == "cifar10" else CIFAR100
    dest = locate.cache_root() / name
    download_and_extract_archive(tv.url, str(dest), filename=tv.filename, md5=tv.tgz_md5)
    return dest


def _load(name: str, cfg) -> RawSplits:
    root = locate.find(name, cfg.data_dir, lambda p: _folder(name, p) is not None, debian=False)
    if root is None:
        try:
            root = _download(name)
        except Exception as err:
            raise locate.not_found(
                name, cfg.data_dir, False, str(err) or type(err).__name__,
                f"pass --data-dir DIR (or set MIXERLAB_DATA) to a folder holding {LAYOUT[name][0]}/"
            ) from None
    folder = _folder(name, root)
    _, train, test, meta, label_key, names_key = LAYOUT[name]

    def read(files):
        batches = [_unpickle(folder / f) for f in files]
        x = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)  # (N, C, H, W)
        y = np.concatenate([np.asarray(b[label_key]) for b in batches])
        return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))

    tx, ty = read(train)
    vx, vy = read([test])
    classes = [c.decode() for c in _unpickle(folder / meta)[names_key]]
    mean, std = STATS[name]
    return RawSplits(tx, ty, vx, vy, classes, mean, std, crop_padding=4, flip=True, source=str(folder))


@register_source("cifar10")
def cifar10(cfg) -> RawSplits:
    """CIFAR-10: 50k/10k 32x32 colour images, 10 classes."""
    return _load("cifar10", cfg)


@register_source("cifar100")
def cifar100(cfg) -> RawSplits:
    """CIFAR-100: 50k/10k 32x32 colour images, 100 fine classes."""
    return _load("cifar100", cfg)
