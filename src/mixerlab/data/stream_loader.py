"""Batches of the streamed path: DataLoader workers decode and augment, seeded per sample.

Transforms are timm's (``timm.data.create_transform``, Wightman 2019): for training the
Inception-style random-resized crop (scale 0.08-1, Szegedy et al. 2015) and horizontal flip,
with RandAugment (Cubuk et al. 2020) and random erasing where the config asks; for
evaluation the usual resize to side / 0.875 and centre crop. No colour jitter: the in-memory
path has none, and timm turns it off under RandAugment anyway.

Determinism: an epoch's order and one seed per sample are drawn from the loader's
``generator`` (``train`` reseeds it from ``(seed, epoch)``); each sample is augmented under
its own seed. So the data of an epoch is a function of (seed, epoch) alone, the same for
any number of workers, and a trial resumed at an epoch boundary sees what an undisturbed one
does.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from mixerlab.data.stream import DECODE_ERRORS, CorruptImage, Refs, StreamData, decode

CROP_PCT = 0.875  # timm's DEFAULT_CROP_PCT: resize to 256 for a 224 centre crop


def transforms(data: StreamData, size: int, cfg, train: bool):
    """timm's training (augmented) or evaluation transform, ending in a normalised tensor."""
    from timm.data import create_transform

    common = dict(input_size=size, interpolation="bilinear", mean=data.mean, std=data.std)
    if not (train and data.augment):
        return create_transform(is_training=False, crop_pct=cfg.crop_pct or CROP_PCT, **common)
    return create_transform(is_training=True, hflip=0.5, color_jitter=None,
                            auto_augment=cfg.randaugment, re_prob=cfg.random_erasing, **common)


@contextlib.contextmanager
def seeded(seed: int):
    """Python, numpy and torch's CPU generator at ``seed`` (timm's transforms draw from all
    three), restored afterwards: with no workers this runs in the training process, whose
    streams (mixup's numpy draws) must not depend on the data path."""
    states = random.getstate(), np.random.get_state(), torch.default_generator.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.default_generator.set_state(states[2])


class Samples(torch.utils.data.Dataset):
    """``samples[(i, seed)]`` -> (image (C, S, S) float32, label); label -1-i if i is unreadable."""

    def __init__(self, refs: Refs, labels: torch.Tensor, transform, mode: str, shape):
        self.refs, self.labels, self.transform = refs, labels.tolist(), transform
        self.mode, self.shape = mode, shape

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, item):
        i, seed = item
        try:
            img = decode(self.refs.read(i), self.mode)
        except DECODE_ERRORS:
            # Raised in the training process, naming the file (a worker's exception would
            # arrive as a multi-line wrapped traceback).
            return torch.zeros(self.shape), -1 - i
        with seeded(seed):
            return self.transform(img), self.labels[i]


class SeededOrder(Sampler):
    """(index, sample seed) pairs: a permutation (or in order) and one seed per sample."""

    def __init__(self, n: int, seed: int, shuffle: bool):
        self.n, self.seed, self.shuffle = n, seed, shuffle

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(2**62, (self.n,), generator=g)
        return iter(zip(order.tolist(), seeds.tolist()))


class StreamLoader:
    """Yields ``(x float32 (B, C, S, S), y int64 (B,))`` on ``device``, like ``DeviceLoader``.

    ``generator``: replaced by ``train`` before each epoch; the epoch's seed is drawn from it
    (from the global torch generator when None).
    """

    def __init__(self, samples: Samples, batch_size: int, *, train: bool, workers: int,
                 device="cpu", channels_last: bool = False, generator=None):
        self.samples, self.batch_size, self.train = samples, batch_size, train
        self.workers, self.device, self.channels_last = workers, torch.device(device), channels_last
        self.generator = generator
        self.drop_last = train and len(samples) > batch_size  # DeviceLoader's rule

    def __len__(self) -> int:
        n = len(self.samples)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _seed(self) -> int:
        if not self.train:
            return 0  # evaluation transforms draw nothing; the order is the data set's
        return int(torch.randint(2**62, (), generator=self.generator).item())

    def __iter__(self):
        order = SeededOrder(len(self.samples), self._seed(), shuffle=self.train)
        loader = DataLoader(self.samples, self.batch_size, sampler=order, num_workers=self.workers,
                            drop_last=self.drop_last, pin_memory=self.device.type == "cuda")
        for x, y in loader:
            if (y < 0).any():
                i = -1 - int(y[y < 0][0])
                raise CorruptImage(f"{self.samples.refs.names[i]}: not a readable image; remove it "
                                   "(or replace it) and re-run: the trial stopped here")
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def stream_loaders(data: StreamData, cfg, size: int, batch_size: int, eval_batch_size: int, *,
                   workers: int, device, channels_last: bool):
    """(train, val, test) loaders of a trial, at ``size`` px (``cfg``: its DataConfig)."""
    shape = (data.in_chans, size, size)
    kw = dict(workers=workers, device=device, channels_last=channels_last)

    def samples(refs, y, train):
        return Samples(refs, y, transforms(data, size, cfg, train), data.mode, shape)

    return (StreamLoader(samples(data.pool.take(data.train_idx), data.train_y, True), batch_size,
                         train=True, **kw),
            StreamLoader(samples(data.pool.take(data.val_idx), data.val_y, False), eval_batch_size,
                         train=False, **kw),
            StreamLoader(samples(data.test, data.test_y, False), eval_batch_size, train=False, **kw))
