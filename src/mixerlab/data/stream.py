"""The streamed path: a data set as references to encoded images, decoded per batch.

For data sets too large to hold decoded (ImageNet-1k at 224 px is ~190 GB as uint8), a
:class:`StreamData` holds only where each image is (a file, or an offset in a tar shard) and
its label; DataLoader worker processes decode and augment each batch
(:mod:`mixerlab.data.stream_loader`). It offers what ``train`` and the sweep read of an
in-memory :class:`~mixerlab.data.base.Dataset` (name, classes, labels of each split, image
size, channels, mean and std), so both paths share the training loop.

A source (``@register_stream("name")``) only lists its samples (:class:`StreamSource`); the
choices common to all are made here, by the rules the in-memory path uses: without a test
set a stratified 20% is held out with the split seed (``imagefolder.TEST_FRACTION``), and
the validation split and training subset are drawn by ``split.split_indices``. Sources list
their samples in the order ``imagefolder`` reads them, so a seed picks the same images on
both paths.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mixerlab.config import DataConfig
from mixerlab.data.base import pixel_stats
from mixerlab.data.imagefolder import GREY_MODES, TEST_FRACTION
from mixerlab.data.split import pick, split_indices
from mixerlab.errors import ConfigError

STATS_IMAGES = 256  # images decoded for mean/std: within 0.01 of the whole set's on ImageNet
PROBE_IMAGES = 32  # headers read for the colour mode and size


# The transforms only the streamed path applies (per image, at decode time); the record
# names them only for streamed trials.
STREAM_ONLY_FIELDS = ("randaugment", "random_erasing", "crop_pct")


class CorruptImage(ConfigError):
    """An image that cannot be decoded. Policy: the trial fails, naming the file (a skipped
    image would change the data of one arm and not another's without anyone seeing it)."""


@dataclass
class Refs:
    """Where a split's encoded images are: files, or (shard, offset, size) in tar shards."""

    names: list[str]  # a path, or "shard.tar:member": what an error message names
    shards: list[str] | None = None  # shard files; None: ``names`` are the files
    where: list[tuple[int, int, int]] | None = None  # per sample: (shard, offset, size)

    def __len__(self) -> int:
        return len(self.names)

    def read(self, i: int) -> bytes:
        if self.shards is None:
            return Path(self.names[i]).read_bytes()
        n, offset, size = self.where[i]
        with open(self.shards[n], "rb") as f:
            f.seek(offset)
            return f.read(size)

    def take(self, idx: torch.Tensor) -> Refs:
        pick_ = idx.tolist()
        where = None if self.where is None else [self.where[i] for i in pick_]
        return Refs([self.names[i] for i in pick_], self.shards, where)


def decode(data: bytes, mode: str):
    """A PIL image in ``mode`` ("L" or "RGB"), fully decoded (a truncated file fails here)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.convert(mode)


DECODE_ERRORS = (OSError, SyntaxError, ValueError)  # PIL raises each for some broken file


@dataclass
class StreamSource:
    """What a source lists: its training samples and, where it has one, its test set."""

    train: Refs
    train_y: torch.Tensor  # (N,) int64
    test: Refs | None
    test_y: torch.Tensor | None
    classes: list[str]
    source: str
    notes: list[str] = field(default_factory=list)


_STREAMS: dict[str, Callable[[DataConfig], StreamSource]] = {}


def register_stream(name: str):
    """Decorator: make ``fn(cfg) -> StreamSource`` streamable as ``DataConfig(name=name)``."""

    def wrap(fn):
        _STREAMS[name] = fn
        return fn

    return wrap


def list_streams() -> list[str]:
    return sorted(_STREAMS)


def scan_stream(cfg: DataConfig) -> StreamSource:
    return _STREAMS[cfg.name](cfg)


@dataclass(eq=False)
class StreamData:
    """A streamed data set: the training pool, its split, the test set, and the constants."""

    name: str
    pool: Refs
    pool_y: torch.Tensor  # (M,) int64: the training set before the validation split
    test: Refs
    test_y: torch.Tensor  # (T,) int64
    classes: list[str]
    image_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    augment: bool
    notes: list[str]
    train_idx: torch.Tensor  # into the pool
    val_idx: torch.Tensor
    split_seed: int | None = None
    synthetic: bool = False
    crop_padding: int = 0  # what the record's ``augment`` reads: random-resized crop is not padding

    @property
    def flip(self) -> bool:
        return self.augment

    @property
    def mode(self) -> str:
        return "L" if self.in_chans == 1 else "RGB"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_y(self) -> torch.Tensor:
        return self.pool_y[self.train_idx]

    @property
    def val_y(self) -> torch.Tensor:
        return self.pool_y[self.val_idx]

    def for_trial(self, cfg: DataConfig, seed: int) -> StreamData:
        """The split the trial of ``seed`` trains on (``cfg.split_seed_for(seed)``'s), at the
        side it asks for (a grid's ``image_size``: the transforms crop to it)."""
        s, size = cfg.split_seed_for(seed), cfg.image_size or self.image_size
        out = dataclasses.replace(self, image_size=size)
        if s == self.split_seed:
            return out
        train, val = _split(self.pool_y, cfg, s, self.name)
        return dataclasses.replace(out, train_idx=train, val_idx=val, split_seed=s)


    def loaders(self, cfg: DataConfig, batch_size: int, eval_batch_size: int, *, device,
                channels_last: bool, cpus: int):
        """The trial's (train, val, test) loaders, decoded per batch (the same call as
        :meth:`Dataset.loaders`). The decoding processes share the trial's ``cpus`` with the
        training step (data/workers.py: loader_workers), which keeps the rest as threads."""
        from mixerlab.data.base import TrialLoaders
        from mixerlab.data.stream_loader import stream_loaders  # it imports this module
        from mixerlab.data.workers import loader_workers

        workers = loader_workers(cfg.workers, cpus)
        if device.type == "cpu" and workers:
            torch.set_num_threads(max(1, torch.get_num_threads() - workers))
        loaders = stream_loaders(self, cfg, self.image_size, batch_size, eval_batch_size,
                                 workers=workers, device=device, channels_last=channels_last)
        columns = dict(data_path="stream", loader_workers=workers,
                       **{k: getattr(cfg, k) for k in STREAM_ONLY_FIELDS})
        return TrialLoaders(*loaders, columns=columns)

def _split(y, cfg: DataConfig, seed: int, name: str):
    try:
        return split_indices(y, cfg.val_fraction, cfg.train_subset, seed)
    except ValueError as err:
        raise ConfigError(f"train_subset: {err} in {name}; lower it") from None


def probe(refs: Refs, k: int = PROBE_IMAGES) -> tuple[str, tuple[int, int]]:
    """("L" or "RGB", size of the first image), from the headers of ``k`` images spread over
    ``refs``: grey only if every one probed is grey (the in-memory rule, on a sample)."""
    from PIL import Image

    picks = np.linspace(0, len(refs) - 1, min(k, len(refs))).round().astype(int)
    modes, first = [], None
    for i in picks:
        try:
            with Image.open(io.BytesIO(refs.read(int(i)))) as im:
                modes.append(im.mode)
                first = first or im.size
        except DECODE_ERRORS as err:
            raise CorruptImage(f"{refs.names[i]}: not a readable image ({err}); remove it") from None
    return ("L" if all(m in GREY_MODES for m in modes) else "RGB"), first


def image_size(cfg: DataConfig, first: tuple[int, int]) -> int:
    """``cfg.image_size``, else the images' own side where it is square."""
    if cfg.image_size:
        return cfg.image_size
    if first[0] != first[1]:
        raise ConfigError(f"{cfg.name}: images are not square ({first}); set dataset.image_size "
                          "(224 for ImageNet)")
    return first[0]


def _stats(refs: Refs, mode: str, size: int, seed: int):
    """Mean and std from a seeded sample of :data:`STATS_IMAGES` training images."""
    from PIL import Image, ImageOps

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(refs), generator=g)[:STATS_IMAGES].tolist()
    xs = []
    for i in idx:
        try:
            im = ImageOps.fit(decode(refs.read(i), mode), (size, size), Image.Resampling.BILINEAR)
        except DECODE_ERRORS as err:
            raise CorruptImage(f"{refs.names[i]}: not a readable image ({err}); remove it") from None
        xs.append(np.asarray(im).reshape(size, size, -1))
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2)  # (K, C, S, S) uint8
    mean, std = pixel_stats(x)
    return mean, tuple(max(s, 1e-3) for s in std)  # a constant-colour set must not divide by 0


def hold_out_test(src: StreamSource, split_seed: int) -> StreamSource:
    """``src`` with a stratified 20% of its training samples as the test set, where it has
    none: the rule (and draw) of ``imagefolder`` without a test/ folder."""
    if src.test is not None:
        return src
    g = torch.Generator().manual_seed(split_seed)
    test, train = pick(src.train_y, int(TEST_FRACTION * len(src.train_y) + 0.5), g)
    note = (f"no test set: a stratified {TEST_FRACTION:.0%} of the images was held out as the "
            f"test set (split_seed {split_seed})")
    return dataclasses.replace(src, train=src.train.take(train), train_y=src.train_y[train],
                               test=src.train.take(test), test_y=src.train_y[test],
                               notes=[*src.notes, note])


def open_stream(cfg: DataConfig, src: StreamSource | None = None) -> StreamData:
    """The streamed data set of ``cfg`` (``src``: its listing, if already scanned)."""
    src = hold_out_test(src or scan_stream(cfg), cfg.split_seed)
    mode, first = probe(src.train)
    size = image_size(cfg, first)
    mean, std = _stats(src.train, mode, size, cfg.split_seed)
    train, val = _split(src.train_y, cfg, cfg.split_seed, cfg.name)
    return StreamData(
        name=cfg.name, pool=src.train, pool_y=src.train_y, test=src.test, test_y=src.test_y,
        classes=src.classes, image_size=size, in_chans=1 if mode == "L" else 3, mean=mean,
        std=std, source=src.source, augment=cfg.augment is not False,
        notes=[*src.notes, f"streamed: decoded per batch; mean/std from {min(STATS_IMAGES, len(src.train))} "
               "training images"], train_idx=train, val_idx=val, split_seed=cfg.split_seed)
