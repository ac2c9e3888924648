"""The streamed path's sources: an ImageFolder tree, and WebDataset tar shards made from one.

Both list samples in ``imagefolder``'s order (class, then file name) with its layout rules:
``DIR/train/<class>/`` with an optional ``DIR/test/<class>/``, or ``DIR/<class>/``. The
streamed path refuses two things the in-memory reader passes over, because at ImageNet
scale they are mistakes, not choices: a class folder with no images, and a ``val/`` folder
beside ``train/`` with no ``test/`` (ImageNet's layout: link ``val`` as ``test`` so both
paths evaluate on it; otherwise 20% of train would be held out while val/ sat unused).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mixerlab.config import DataConfig
from mixerlab.data.imagefolder import EXTENSIONS, scan
from mixerlab.data.shards import SPLITS, index_split, read_index
from mixerlab.data.stream import Refs, StreamSource, register_stream
from mixerlab.errors import ConfigError


def _root(cfg: DataConfig) -> Path:
    if not cfg.data_dir:
        raise ConfigError(f"{cfg.name}: no folder given; pass --data-dir DIR (or set dataset.data_dir)")
    root = Path(cfg.data_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{cfg.name}: {root} is not a folder; fix --data-dir")
    return root


def _classes(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    """``scan(folder)``, refusing a visible class folder that holds no images."""
    found = scan(folder, skip)
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if d.name not in found and not d.name.startswith(".") and d.name not in skip:
            raise ConfigError(f"{d}: a class folder with no images ({', '.join(sorted(EXTENSIONS))}); "
                              "remove it or add its images")
    return found


def _listing(files: dict[str, list[Path]], classes: list[str]) -> tuple[Refs, torch.Tensor]:
    names = [str(f) for c in classes for f in files.get(c, [])]
    labels = [k for k, c in enumerate(classes) for _ in files.get(c, [])]
    return Refs(names), torch.tensor(labels, dtype=torch.int64)


def folder_splits(root: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]] | None]:
    """({class: files} of the training tree, of the test tree or None): the layout rule."""
    has_train = (root / "train").is_dir()
    if has_train and (root / "val").is_dir() and not (root / "test").is_dir():
        raise ConfigError(f"{root}: has val/ but no test/; mixerlab evaluates on test/ (ImageNet's "
                          f"val/ is its test set): link it with `ln -s val {root / 'test'}`")
    train = _classes(root / "train") if has_train else _classes(root, skip=("test",))
    test = _classes(root / "test") if (root / "test").is_dir() else None
    if not train:
        raise ConfigError(f"{root}: no class sub-folders with images; fix --data-dir")
    if test and not set(test) <= set(train):
        extra = ", ".join(sorted(set(test) - set(train)))
        raise ConfigError(f"{root}: test classes {extra} have no training images")
    return train, test


@register_stream("imagefolder")
def folder(cfg: DataConfig) -> StreamSource:
    """Image files in class folders under ``cfg.data_dir``, read where they lie."""
    root = _root(cfg)
    train_files, test_files = folder_splits(root)
    classes = sorted(train_files)
    train, train_y = _listing(train_files, classes)
    test, test_y = _listing(test_files, classes) if test_files else (None, None)
    return StreamSource(train, train_y, test, test_y, classes, str(root.resolve()))


@register_stream("shards")
def shards(cfg: DataConfig) -> StreamSource:
    """WebDataset tar shards written by ``mixerlab shards`` (``classes.json`` beside them)."""
    root = _root(cfg)
    index = read_index(root)
    parts = {}
    for split in SPLITS:
        entry = index["splits"].get(split)
        if entry is None:
            continue
        ix = index_split(root, entry["shards"])
        if len(ix.labels) != entry["count"]:
            raise ConfigError(f"{root}: the {split} shards hold {len(ix.labels)} samples, "
                              f"{root / 'classes.json'} says {entry['count']}; re-run `mixerlab shards`")
        parts[split] = (Refs(ix.names, ix.shards, ix.where), torch.tensor(ix.labels, dtype=torch.int64))
    test, test_y = parts.get("test", (None, None))
    return StreamSource(*parts["train"], test, test_y, list(index["classes"]), str(root.resolve()))
