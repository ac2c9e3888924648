"""MNIST and Fashion-MNIST from their IDX files (LeCun et al. 1998; Xiao et al. 2017).

IDX layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions, one big-endian uint32 per dimension, then the values, big-endian, row-major.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from mixerlab.data import locate
from mixerlab.data.base import RawSplits
from mixerlab.data.registry import register_dataset
from mixerlab.errors import ConfigError

DEBIAN_ROOT = Path("/usr/share/datasets")  # Debian's dataset-fashion-mnist installs here
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file, gzipped or not (told by its first bytes, not its name)."""
    fix = "delete it (or re-install its package) so that a good copy is found or fetched"
    try:
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ConfigError(f"{path}: cannot read this IDX file ({err}); {fix}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _TYPES:
        raise ConfigError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'none'}); {fix}")
    start, dtype = 4 + 4 * raw[3], np.dtype(_TYPES[raw[2]])
    dims = np.frombuffer(raw[4:start], dtype=">u4").tolist() if len(raw) >= start else []
    if len(raw) < start or len(raw) - start != int(np.prod(dims)) * dtype.itemsize:
        raise ConfigError(f"{path}: truncated or padded IDX file (header says {dims}, "
                          f"{len(raw) - start} bytes of data); {fix}")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims)


def _file(folder: Path, stem: str) -> Path | None:
    return next((folder / n for n in (stem + ".gz", stem) if (folder / n).is_file()), None)


# torchvision's class names (tests/test_data.py checks them equal). Written here because
# importing torchvision.datasets loads torchvision (and torch._dynamo), about 1.5 s of every
# trial worker's start-up; torchvision is imported only to download (its mirrors and md5 sums).
CLASSES = {
    "FashionMNIST": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                     "Bag", "Ankle boot"],
    "MNIST": ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
              "8 - eight", "9 - nine"],
}


def _fetch(tv_name: str):
    """Fetch the four files into a folder with torchvision's mirror list and md5 sums."""

    def fetch(dest: Path) -> None:
        import torchvision.datasets
        from torchvision.datasets import utils  # looked up at call time: tests replace it

        tv_class = getattr(torchvision.datasets, tv_name)
        for filename, md5 in tv_class.resources:
            for i, mirror in enumerate(tv_class.mirrors):
                try:
                    utils.download_url(mirror + filename, str(dest), filename=filename, md5=md5)
                    break
                except (OSError, RuntimeError):  # URLError, timeout, bad checksum: next mirror
                    if i == len(tv_class.mirrors) - 1:
                        raise

    return fetch


def _load(name: str, cfg, tv_name: str, mean: float, std: float, flip: bool, fix: str) -> RawSplits:
    dirs = locate.candidates(name, cfg.data_dir, system=DEBIAN_ROOT / name)
    folder = locate.find(dirs, lambda d: all(_file(d, s) for s in FILES))
    if folder is None:
        try:
            folder = locate.download(name, _fetch(tv_name))
        except (OSError, RuntimeError) as err:
            needs = ", ".join(s + "[.gz]" for s in FILES)
            raise locate.not_found(name, dirs, needs, err, fix) from None
    tx, ty, vx, vy = (torch.from_numpy(read_idx(_file(folder, s)).copy()) for s in FILES)
    classes = list(CLASSES[tv_name])
    for x, y, split in ((tx, ty, "train"), (vx, vy, "t10k")):
        labels_ok = len(y) == 0 or 0 <= int(y.min()) <= int(y.max()) < len(classes)
        if x.dim() != 3 or x.dtype != torch.uint8 or y.shape != (len(x),) or not labels_ok:
            raise ConfigError(f"{folder}: {split} images and labels do not fit together "
                              f"(images {tuple(x.shape)}, labels {tuple(y.shape)}); re-install the data")
    return RawSplits(tx[:, None], ty.long(), vx[:, None], vy.long(), classes, (mean,), (std,),
                     crop_padding=2, flip=flip, source=str(folder))


@register_dataset("fashion-mnist")
def fashion_mnist(cfg) -> RawSplits:
    """Zalando's Fashion-MNIST: 60k/10k 28x28 grey images of clothing, 10 classes."""
    # Mean/std of the 60k training images (tests/test_data.py recomputes them from the data).
    # Clothes are left-right symmetric, so a horizontal flip keeps the label.
    return _load("fashion-mnist", cfg, "FashionMNIST", 0.2860, 0.3530, flip=True,
                 fix="apt-get install dataset-fashion-mnist (Debian), or pass --data-dir DIR "
                     "(or set MIXERLAB_DATA=DIR) for a folder holding the four IDX files")


@register_dataset("mnist")
def mnist(cfg) -> RawSplits:
    """MNIST digits: 60k/10k 28x28 grey images, 10 classes. Digits are never flipped."""
    # 0.1307/0.3081: the training-set statistics used by PyTorch's MNIST example.
    return _load("mnist", cfg, "MNIST", 0.1307, 0.3081, flip=False,
                 fix="pass --data-dir DIR (or set MIXERLAB_DATA=DIR) for a folder holding the "
                     "four IDX files, or allow the download")
