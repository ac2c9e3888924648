"""A data set held whole in memory as uint8 tensors, split into train / validation / test."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Dataset:
    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    crop_padding: int = 0  # random crop after zero padding by this many pixels (0 = off)
    flip: bool = False  # random horizontal flip
    source: str = ""
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def in_chans(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        return {
            "dataset": self.name, "source": self.source, "synthetic": self.synthetic,
            "n_train": len(self.train_y), "n_val": len(self.val_y), "n_test": len(self.test_y),
            "image_size": self.image_size, "in_chans": self.in_chans,
            "num_classes": self.num_classes, "mean": list(self.mean), "std": list(self.std),
            "crop_padding": self.crop_padding, "flip": self.flip, "notes": list(self.notes),
        }


@dataclass
class RawSplits:
    """What a source loader returns: full train and test sets plus their defaults."""

    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool
    source: str
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
