"""The two containers of the data layer: what a source reads, and the split data set.

Small image data sets fit in memory many times over (Fashion-MNIST's 70,000 images are
55 MB as uint8), so a data set is just tensors: no per-sample ``__getitem__``, no worker
processes. Pixels stay uint8 until :class:`~mixerlab.data.pipeline.DeviceLoader` turns a
batch into floats on the training device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mixerlab.config import DataConfig


@dataclass(eq=False)  # tensors do not compare to one bool: no generated __eq__
class RawSplits:
    """What a source returns: its whole training and test sets, and its defaults.

    ``crop_padding``/``flip`` are the augmentation the data set calls for; ``augment_default``
    says whether it is on when the config leaves ``augment`` unset.
    """

    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor  # (T, C, H, W) uint8
    test_y: torch.Tensor  # (T,) int64
    classes: list[str]
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    crop_padding: int
    flip: bool
    source: str
    synthetic: bool = False
    augment_default: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Dataset:
    """A split data set: train/val/test images as uint8 tensors, labels as int64."""

    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor  # (V, C, H, W) uint8; V = 0 when val_fraction is 0
    val_y: torch.Tensor  # (V,) int64
    test_x: torch.Tensor  # (T, C, H, W) uint8
    test_y: torch.Tensor  # (T,) int64
    classes: list[str]
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    crop_padding: int = 0  # random crop after zero padding by this many pixels; 0 = none
    flip: bool = False  # random horizontal flip
    source: str = "synthetic"  # folder read from, or "synthetic"
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)  # anything a reader of results must know
    # The seed the train/validation split and training subset were drawn from (None: not
    # drawn by load_dataset, e.g. built by hand).
    split_seed: int | None = None
    # The whole training set before the split, (M, C, H, W) uint8 and (M,) int64: kept only
    # when ``DataConfig.split_per_seed`` is set, so each trial can draw its own split from it
    # (:func:`~mixerlab.data.registry.split_for_seed`); None otherwise.
    pool_x: torch.Tensor | None = None
    pool_y: torch.Tensor | None = None

    def __post_init__(self):
        # Every source ends here, so a wrong dtype or shape fails at load time, not deep
        # inside the training loop.
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1:] != self.train_x.shape[1:]:
                raise TypeError(f"{self.name}.{split}_x: want (N, C, H, W) uint8 like train_x, "
                                f"got {tuple(x.shape)} {x.dtype}")
            if y.dtype != torch.int64 or y.shape != (len(x),):
                raise TypeError(f"{self.name}.{split}_y: want ({len(x)},) int64, got "
                                f"{tuple(y.shape)} {y.dtype}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise TypeError(f"{self.name}: mean and std need one value per channel")

    @property
    def in_chans(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]  # square: every source and the resize make it so

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def for_trial(self, cfg: DataConfig, seed: int) -> Dataset:
        """The data the trial of ``seed`` trains on: its own split where ``cfg.split_per_seed``
        asks for one, at the side ``cfg.image_size`` asks for (a sweep's shared data set,
        another side in the grid). The same call as :meth:`StreamData.for_trial`."""
        from mixerlab.data.registry import resized, split_for_seed  # registry builds Datasets

        data = split_for_seed(self, cfg, seed)
        return resized(data, cfg.image_size) if cfg.image_size else data

    def loaders(self, cfg: DataConfig, batch_size: int, eval_batch_size: int, *, device,
                channels_last: bool, cpus: int) -> TrialLoaders:
        """The trial's (train, val, test) loaders, batches already on ``device``; ``cpus`` is
        unused here (no decoding processes: the images are tensors already)."""
        from mixerlab.data.pipeline import DeviceLoader

        kw = dict(mean=self.mean, std=self.std, device=device, channels_last=channels_last)
        return TrialLoaders(
            DeviceLoader(self.train_x, self.train_y, batch_size, train=True,
                         crop_padding=self.crop_padding, flip=self.flip, **kw),
            DeviceLoader(self.val_x, self.val_y, eval_batch_size, train=False, **kw),
            DeviceLoader(self.test_x, self.test_y, eval_batch_size, train=False, **kw))

    def describe(self) -> dict:
        """A flat summary to store beside results: what exactly was trained on."""
        return {
            "dataset": self.name, "source": self.source, "synthetic": self.synthetic,
            "n_train": len(self.train_y), "n_val": len(self.val_y), "n_test": len(self.test_y),
            "image_size": self.image_size, "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "mean": [round(m, 4) for m in self.mean], "std": [round(s, 4) for s in self.std],
            "crop_padding": self.crop_padding, "flip": self.flip, "notes": "; ".join(self.notes),
        }


def pixel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units.

    From a 256-bin histogram per channel: exact, and no float copy of the whole set.
    """
    levels = torch.arange(256, dtype=torch.float64) / 255
    mean, std = [], []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1), minlength=256).double()  # (256,)
        m = (hist * levels).sum() / hist.sum()
        mean.append(m.item())
        std.append(((hist * (levels - m) ** 2).sum() / hist.sum()).sqrt().item())
    return tuple(mean), tuple(std)


@dataclass
class TrialLoaders:
    """A trial's (train, val, test) loaders, whatever the data path, and the record columns
    that path adds: none in memory (so its records keep their columns), the decoding
    processes and the stream-only transforms for streamed data."""

    train: object
    val: object
    test: object
    columns: dict = field(default_factory=dict)
