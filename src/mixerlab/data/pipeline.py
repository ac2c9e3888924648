"""The hot loop's data pipeline: the whole data set on the training device, augmented in batches.

No per-sample Python, no PIL, no worker processes. The uint8 images are moved to the
device once; for training they are stored already zero-padded, so a random crop is just
an offset into that storage. A batch with random crop and flip is then ONE gather at
linear index = (sample start + crop offset + row offsets) + column offsets, where a
per-sample mask picks plain or mirrored columns with ``torch.where``. Floats
are made only for the batch, with normalisation folded into one multiply-add.

All random draws of an epoch (order, offsets, flips) come at its start from
``self.generator``, so an epoch is a pure function of the generator's seed, on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class DeviceLoader:
    """Yields ``(x float32 (B, C, H, W), y int64 (B,))`` on ``device``; ``len()`` = batches.

    ``train=True``: shuffled, augmented, and (by default) the last partial batch is dropped
    when there is more than one batch. ``train=False``: in order, as is, every sample.
    ``generator``: a CPU (or device) generator; replace it between epochs to reseed. If
    None, each epoch draws its seed from the global torch RNG.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, mean, std,
                 train: bool, crop_padding: int = 0, flip: bool = False,
                 generator: torch.Generator | None = None, device="cpu",
                 drop_last: bool | None = None, channels_last: bool = False):
        self.device = torch.device(device)
        self.batch_size, self.train, self.generator = batch_size, train, generator
        self.crop, self.flip = (crop_padding, flip) if train else (0, False)
        self.drop_last = (train and len(y) > batch_size) if drop_last is None else drop_last
        self.channels_last = channels_last
        self.shape = tuple(x.shape[1:])  # (C, H, W) of a yielded image
        c, h, w = self.shape
        p = self.crop
        # (N, C, H+2p, W+2p) uint8 on the device, padded once here instead of every batch.
        # Zero padding, as torchvision's RandomCrop(padding=p) on unnormalised images.
        self.x = (F.pad(x, (p, p, p, p)) if p else x).to(self.device).contiguous()
        self.y = y.to(self.device)
        hp, wp = h + 2 * p, w + 2 * p
        # Offsets inside one padded image: of each (channel, row) start of the crop, and of
        # each column, plain or mirrored. Their broadcast sum addresses every pixel.
        ci, hi = torch.meshgrid(torch.arange(c), torch.arange(h), indexing="ij")
        self.rows = ((ci * hp + hi) * wp).reshape(1, c * h, 1).to(self.device)  # (1, CH, 1)
        self.cols = torch.arange(w).view(1, w).to(self.device)  # (1, W)
        self.mirrored = self.cols.flip(1)  # (1, W): W-1 ... 0
        self.strides = (c * hp * wp, wp)  # one padded image, one padded row
        # Normalisation (x / 255 - mean) / std as x * scale + shift, x in [0, 255].
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)
        self.scale = (1.0 / (255.0 * std_t)).to(self.device)
        self.shift = (-mean_t / std_t).to(self.device)

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _draws(self, n: int):
        """The epoch's random order, crop offsets (start of each crop) and flip mask."""
        g = self.generator or torch.Generator().manual_seed(int(torch.randint(2**62, ()).item()))
        kw = dict(generator=g, device=g.device)
        order = torch.randperm(n, **kw)  # (N,)
        start = order * self.strides[0]  # (N,) first element of each padded image
        if self.crop:
            dy, dx = torch.randint(0, 2 * self.crop + 1, (2, n), **kw)  # (2, N)
            start = start + dy * self.strides[1] + dx
        flips = torch.rand(n, **kw) < 0.5 if self.flip else None  # (N,) bool
        to = dict(device=self.device, non_blocking=True)
        return order.to(**to), start.to(**to), None if flips is None else flips.to(**to)

    def __iter__(self):
        n, b = len(self.y), self.batch_size
        augment = self.train and (self.crop or self.flip)
        if self.train:
            order, start, flips = self._draws(n)
        for i in range(len(self)):
            sl = slice(i * b, (i + 1) * b)
            if not self.train:
                xb, yb = self.x[sl], self.y[sl]  # views: no copy until the float conversion
            elif not augment:
                xb, yb = self.x[order[sl]], self.y[order[sl]]
            else:
                cols = self.cols if flips is None else torch.where(
                    flips[sl, None], self.mirrored, self.cols)  # (B, W) or (1, W)
                rows = start[sl, None, None] + self.rows  # (B, CH, 1)
                xb = torch.take(self.x, rows + cols[:, None, :])  # (B, CH, W) uint8, one gather
                xb, yb = xb.view(-1, *self.shape), self.y[order[sl]]  # (B, C, H, W)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)  # still uint8: cheap
            yield torch.addcmul(self.shift, xb.float(), self.scale), yb  # (B, C, H, W) float32


def make_loaders(data, batch_size: int, *, eval_batch_size: int | None = None,
                 device="cpu", generator: torch.Generator | None = None,
                 channels_last: bool = False) -> tuple[DeviceLoader, DeviceLoader, DeviceLoader]:
    """(train, val, test) loaders for a :class:`~mixerlab.data.base.Dataset`."""
    kw = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last)
    eval_bs = eval_batch_size or batch_size
    return (DeviceLoader(data.train_x, data.train_y, batch_size, train=True, generator=generator,
                         crop_padding=data.crop_padding, flip=data.flip, **kw),
            DeviceLoader(data.val_x, data.val_y, eval_bs, train=False, **kw),
            DeviceLoader(data.test_x, data.test_y, eval_bs, train=False, **kw))
