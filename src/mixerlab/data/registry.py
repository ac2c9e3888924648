"""The data-set registry and ``load_dataset``, which makes the choices common to every source.

A source (``@register_dataset("name")``) only reads files into :class:`RawSplits`. Here,
once for all of them: the validation split, the training subset, the resize and the
augmentation setting. A new source therefore gets all of that, tested, for free.

The split is drawn from ``split_seed``, the same for every trial that shares the loaded data
set; with ``split_per_seed`` the loaded set also keeps its whole training pool, and each trial
draws its own split from its seed at its start (:func:`split_for_seed`, called by ``train``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mixerlab.config import DataConfig
from mixerlab.data.base import Dataset, RawSplits
from mixerlab.data.split import split_indices
from mixerlab.errors import ConfigError

Source = Callable[[DataConfig], RawSplits]
_SOURCES: dict[str, Source] = {}


def register_dataset(name: str) -> Callable[[Source], Source]:
    """Decorator: make ``fn(cfg) -> RawSplits`` loadable as ``DataConfig(name=name)``."""

    def wrap(fn: Source) -> Source:
        if name in _SOURCES and _SOURCES[name] is not fn:
            raise ValueError(f"data set '{name}' is registered twice")
        _SOURCES[name] = fn
        return fn

    return wrap


def list_datasets() -> list[str]:
    return sorted(_SOURCES)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) uint8 to (N, C, size, size) uint8, once at load time (never per batch).

    Bilinear with antialiasing, so shrinking averages instead of skipping pixels. Chunked
    to keep the float copy small.
    """
    if x.shape[-2:] == (size, size):
        return x
    out = [F.interpolate(c.float(), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
           for c in x.split(4096)]
    return torch.cat(out) if out else x.new_empty((0, x.shape[1], size, size))


def _crop_at(crop: int, size: int, native: int) -> int:
    """The random crop's padding at ``size`` px: the same shift relative to the image."""
    return max(1, round(crop * size / native)) if crop else 0


def resized(data: Dataset, size: int) -> Dataset:
    """``data`` with every split resized to ``size`` px, its crop padding scaled to match.

    Sweeps load a data set once and hand it to every trial; a trial whose config asks for
    another ``image_size`` (a grid factor) resizes its copy here, at its start.
    """
    if size == data.image_size:
        return data
    pool = {} if data.pool_x is None else {"pool_x": resize(data.pool_x, size)}
    return dataclasses.replace(
        data, train_x=resize(data.train_x, size), val_x=resize(data.val_x, size),
        test_x=resize(data.test_x, size), crop_padding=_crop_at(data.crop_padding, size, data.image_size),
        notes=[*data.notes, f"resized from {data.image_size} to {size} px at the trial's start"], **pool)


def _split(y: torch.Tensor, cfg: DataConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) into a training set with labels ``y``, drawn from ``seed``."""
    try:
        return split_indices(y, cfg.val_fraction, cfg.train_subset, seed)
    except ValueError:
        n = len(y) - int(cfg.val_fraction * len(y) + 0.5)
        raise ConfigError(f"train_subset: {cfg.train_subset} is more than the {n} training images "
                          f"{cfg.name} has after the validation split; lower it") from None


def split_for_seed(data: Dataset, cfg: DataConfig, seed: int) -> Dataset:
    """``data`` split as the trial of seed ``seed`` draws it (``cfg.split_seed_for(seed)``).

    Without ``split_per_seed`` every trial shares the split ``data`` was loaded with, and
    ``data`` comes back as it is. With it, the validation split and training subset are drawn
    again from ``seed`` out of the pool ``load_dataset`` kept, by the same rule
    (:func:`~mixerlab.data.split.split_indices`), and the pool is dropped from the copy. Always
    from the pool, even when ``seed`` is the loaded split's, so every seed's images are made
    the same way.
    """
    if not cfg.split_per_seed:
        return data
    if data.pool_x is None or data.pool_y is None:
        raise ConfigError("dataset.split_per_seed: the data set handed to this trial was loaded "
                          "without its training pool; load it with load_dataset() from a config "
                          "that sets split_per_seed")
    train, val = _split(data.pool_y, cfg, seed)
    return dataclasses.replace(
        data, train_x=data.pool_x[train], train_y=data.pool_y[train], val_x=data.pool_x[val],
        val_y=data.pool_y[val], split_seed=seed, pool_x=None, pool_y=None)


def load_dataset(cfg: DataConfig) -> Dataset:
    """Read ``cfg.name`` and split it: train / validation (carved from train) / test.

    The split is ``cfg.split_seed``'s; with ``cfg.split_per_seed`` the whole training set is
    kept as well (``pool_x``/``pool_y``), for :func:`split_for_seed` to draw each trial's.
    """
    if cfg.name not in _SOURCES:
        raise ConfigError(f"dataset: unknown '{cfg.name}'; known data sets: "
                          f"{', '.join(list_datasets())} (set dataset.name or --dataset)")
    raw = _SOURCES[cfg.name](cfg)
    train, val = _split(raw.train_y, cfg, cfg.split_seed)

    native, notes = raw.train_x.shape[-1], list(raw.notes)
    size = cfg.image_size or native
    if raw.train_x.shape[-2] != native and not cfg.image_size:
        raise ConfigError(f"{cfg.name}: images are not square ({tuple(raw.train_x.shape[-2:])}); "
                          "set dataset.image_size (or --image-size)")
    crop, flip = raw.crop_padding, raw.flip
    if size != native:
        notes.append(f"resized from {native} to {size} px at load time")
        crop = _crop_at(crop, size, native)
    if not (raw.augment_default if cfg.augment is None else cfg.augment):
        crop, flip = 0, False
    pool = {}
    if cfg.split_per_seed:
        pool = dict(pool_x=resize(raw.train_x, size), pool_y=raw.train_y)
        notes.append("split_per_seed: each trial draws its validation split and training subset "
                     "from its own seed (the class counts are the same for every seed)")

    return Dataset(
        name=cfg.name,
        train_x=resize(raw.train_x[train], size), train_y=raw.train_y[train],
        val_x=resize(raw.train_x[val], size), val_y=raw.train_y[val],
        test_x=resize(raw.test_x, size), test_y=raw.test_y,
        classes=list(raw.classes), mean=tuple(raw.mean), std=tuple(raw.std),
        crop_padding=crop, flip=flip, source=raw.source, synthetic=raw.synthetic, notes=notes,
        split_seed=cfg.split_seed, **pool,
    )
