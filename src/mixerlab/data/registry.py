"""The data-set registry and ``load_dataset``, which makes the choices common to every source.

A source (``@register_dataset("name")``) only reads files into :class:`RawSplits`. Here,
once for all of them: the validation split, the training subset, the resize and the
augmentation setting. A new source therefore gets all of that, tested, for free.
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
    return dataclasses.replace(
        data, train_x=resize(data.train_x, size), val_x=resize(data.val_x, size),
        test_x=resize(data.test_x, size), crop_padding=_crop_at(data.crop_padding, size, data.image_size),
        notes=[*data.notes, f"resized from {data.image_size} to {size} px at the trial's start"])


def load_dataset(cfg: DataConfig) -> Dataset:
    """Read ``cfg.name`` and split it: train / validation (carved from train) / test."""
    if cfg.name not in _SOURCES:
        raise ConfigError(f"dataset: unknown '{cfg.name}'; known data sets: "
                          f"{', '.join(list_datasets())} (set dataset.name or --dataset)")
    raw = _SOURCES[cfg.name](cfg)
    try:
        train, val = split_indices(raw.train_y, cfg.val_fraction, cfg.train_subset, cfg.split_seed)
    except ValueError:
        n = len(raw.train_y) - int(cfg.val_fraction * len(raw.train_y) + 0.5)
        raise ConfigError(f"train_subset: {cfg.train_subset} is more than the {n} training images "
                          f"{cfg.name} has after the validation split; lower it") from None

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

    return Dataset(
        name=cfg.name,
        train_x=resize(raw.train_x[train], size), train_y=raw.train_y[train],
        val_x=resize(raw.train_x[val], size), val_y=raw.train_y[val],
        test_x=resize(raw.test_x, size), test_y=raw.test_y,
        classes=list(raw.classes), mean=tuple(raw.mean), std=tuple(raw.std),
        crop_padding=crop, flip=flip, source=raw.source, synthetic=raw.synthetic, notes=notes,
    )
