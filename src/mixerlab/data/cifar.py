"""CIFAR-10 and CIFAR-100 in the python-pickle format (Krizhevsky 2009).

Layout (https://www.cs.toronto.edu/~kriz/cifar.html): each batch is a pickled dict with
``b"data"``, a (N, 3072) uint8 array of rows R(1024) G(1024) B(1024), and the labels;
the meta file names the classes. CIFAR-100 is loaded with its 100 fine labels.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from mixerlab.data import locate
from mixerlab.data.base import RawSplits
from mixerlab.data.registry import register_dataset
from mixerlab.errors import ConfigError

# (folder in the archive, training files, test file, meta file, label key, class-names key)
LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                "batches.meta", "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", "fine_labels", "fine_label_names"),
}
# Per-channel mean and std over all pixels of the 50k training images, in [0, 1] units
# (the std is over pixels, not the per-image average 0.2023/0.1994/0.2010 often copied).
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _unpickle(path: Path) -> dict:
    """A CIFAR pickle as a dict with str keys (the originals are Python 2 pickles of bytes)."""
    try:
        with open(path, "rb") as f:
            # These files are pickles by design: only point --data-dir at folders you trust.
            d = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path}: not a readable CIFAR file ({err}); delete it so that a good "
                          "copy is found or downloaded") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: not a CIFAR file (holds a {type(d).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _folder(name: str, root: Path) -> Path | None:
    """The folder holding the batches: ``root/<archive folder>`` or ``root`` itself."""
    sub, train, test, meta, *_ = LAYOUT[name]
    return next((d for d in (root / sub, root)
                 if all((d / f).is_file() for f in (*train, test, meta))), None)


def _fetch(name: str):
    def fetch(dest: Path) -> None:
        from torchvision.datasets import CIFAR10, CIFAR100, utils  # looked up at call time

        tv = CIFAR10 if name == "cifar10" else CIFAR100
        utils.download_and_extract_archive(tv.url, str(dest), filename=tv.filename,
                                           md5=tv.tgz_md5, remove_finished=True)

    return fetch


def _read(folder: Path, files: list[str], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for f in files:
        d = _unpickle(folder / f)
        if "data" not in d or label_key not in d:
            raise ConfigError(f"{folder / f}: missing 'data' or '{label_key}'; re-download it")
        x = np.asarray(d["data"], dtype=np.uint8)
        if x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise ConfigError(f"{folder / f}: data is {x.shape}, not (N, 3072); re-download it")
        xs.append(x.reshape(len(x), 3, 32, 32))  # (N, C, H, W): rows are channel-major
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _load(name: str, cfg) -> RawSplits:
    dirs = locate.candidates(name, cfg.data_dir)
    root = locate.find(dirs, lambda d: _folder(name, d) is not None)
    sub, train, test, meta, label_key, names_key = LAYOUT[name]
    if root is None:
        try:
            root = locate.download(name, _fetch(name))
        except (OSError, RuntimeError) as err:
            fix = (f"pass --data-dir DIR (or set MIXERLAB_DATA=DIR) for a folder holding {sub}/ "
                   "(the python-pickle release), or allow the download")
            raise locate.not_found(name, dirs, f"{sub}/", err, fix) from None
    folder = _folder(name, root)
    tx, ty = _read(folder, train, label_key)
    vx, vy = _read(folder, [test], label_key)
    classes = [c.decode() if isinstance(c, bytes) else str(c)
               for c in _unpickle(folder / meta).get(names_key, [])]
    if not classes or int(max(ty.max(), vy.max())) >= len(classes):
        raise ConfigError(f"{folder / meta}: class names missing or fewer than the labels; "
                          "re-download the data set")
    mean, std = STATS[name]
    return RawSplits(tx, ty, vx, vy, classes, mean, std, crop_padding=4, flip=True,
                     source=str(folder))


@register_dataset("cifar10")
def cifar10(cfg) -> RawSplits:
    """CIFAR-10: 50k/10k 32x32 colour images, 10 classes; crop 4 + flip as in ResNet (He 2016)."""
    return _load("cifar10", cfg)


@register_dataset("cifar100")
def cifar100(cfg) -> RawSplits:
    """CIFAR-100: 50k/10k 32x32 colour images, 100 fine classes; crop 4 + flip."""
    return _load("cifar100", cfg)
