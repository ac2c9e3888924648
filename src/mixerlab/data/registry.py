"""Data-set registry and ``load_dataset``: the split, subset, resize and augmentation choices
made once for every source."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mixerlab.config import DataConfig
from mixerlab.data.base import Dataset, RawSplits
from mixerlab.errors import ConfigError

_SOURCES: dict[str, Callable[[DataConfig], RawSplits]] = {}


def register_source(name: str):
    def wrap(fn):
        _SOURCES[name] = fn
        return fn

    return wrap


register_dataset = register_source


def list_datasets() -> list[str]:
    return sorted(_SOURCES)


def _stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, held out): ``fraction`` of every class held out, chosen with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(len(idx) * fraction))
        held.append(idx[:k])
        keep.append(idx[k:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)  # once, at load time, not per batch


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load ``cfg.name`` and split it: train / validation (from train, fixed seed) / test."""
    if cfg.name not in _SOURCES:
        raise ConfigError(f"dataset: unknown '{cfg.name}'; choose one of {', '.join(list_datasets())}")
    raw = _SOURCES[cfg.name](cfg)
    train_idx, val_idx = _stratified_split(raw.train_y, cfg.val_fraction, cfg.split_seed)
    if cfg.train_subset is not None:
        if cfg.train_subset > len(train_idx):
            raise ConfigError(f"train_subset: {cfg.train_subset} is more than the {len(train_idx)} "
                              f"training images of {cfg.name} after the validation split; lower it")
        frac = 1 - cfg.train_subset / len(train_idx)
        sub, _ = _stratified_split(raw.train_y[train_idx], frac, cfg.split_seed + 1)
        train_idx = train_idx[sub]
    size = cfg.image_size or raw.train_x.shape[-1]
    augment = cfg.augment
    crop, flip = (raw.crop_padding, raw.flip) if augment in (None, True) else (0, False)
    return Dataset(
        name=cfg.name, train_x=_resize(raw.train_x[train_idx], size), train_y=raw.train_y[train_idx],
        val_x=_resize(raw.train_x[val_idx], size), val_y=raw.train_y[val_idx],
        test_x=_resize(raw.test_x, size), test_y=raw.test_y, classes=list(raw.classes),
        mean=tuple(raw.mean), std=tuple(raw.std), crop_padding=crop, flip=flip,
        source=raw.source, synthetic=raw.synthetic, notes=list(raw.notes),
    )
