"""The hot loop's data pipeline: the whole data set on the training device, augmented in batches.

No per-sample Python and no PIL: a batch is gathered by index from one uint8 tensor, then
random crop (zero padding + per-sample offsets, one ``gather``), random horizontal flip
(a per-sample mask) and normalisation run as a few batched tensor operations.
"""

from __future__ import annotations

import torch


class DeviceLoader:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, mean, std,
                 train: bool, crop_padding: int = 0, flip: bool = False,
                 generator: torch.Generator | None = None, device="cpu", drop_last=None,
                 channels_last: bool = False):
        self.device = torch.device(device)
        self.x = x.to(self.device)  # (N, C, H, W) uint8, moved once
        self.y = y.to(self.device)
        self.batch_size, self.train = batch_size, train
        self.crop, self.flip = (crop_padding, flip) if train else (0, False)
        self.generator = generator or torch.Generator().manual_seed(0)
        self.drop_last = (train and len(y) > batch_size) if drop_last is None else drop_last
        self.channels_last = channels_last
        c = x.shape[1]
        # Fold normalisation into one multiply-add: x * scale + shift, with x in [0, 255].
        std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.y)
        if self.train:  # the order is drawn on the CPU generator, so it is device-independent
            order = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self._batch(self.x[idx]), self.y[idx]

    def _rand(self, *shape, high: int) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=self.generator).to(self.device)

    def _batch(self, xb: torch.Tensor) -> torch.Tensor:
        b, c, h, w = xb.shape
        if self.crop:
            p = self.crop
            padded = torch.nn.functional.pad(xb, (p, p, p, p))  # (B, C, H+2p, W+2p) uint8
            dy, dx = self._rand(b, high=2 * p + 1), self._rand(b, high=2 * p + 1)
            rows = (dy[:, None] + torch.arange(h, device=self.device))  # (B, H)
            cols = (dx[:, None] + torch.arange(w, device=self.device))  # (B, W)
            if self.flip:  # a flip is a reversed column index: free inside the same gather
                flip = self._rand(b, high=2).bool()
                cols = torch.where(flip[:, None], cols.flip(1), cols)
            padded = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * p))
            xb = padded.gather(3, cols[:, None, None, :].expand(b, c, h, w))  # (B, C, H, W)
        elif self.flip:
            flip = self._rand(b, high=2).bool()
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        out = xb.float().mul_(self.scale).add_(self.shift)  # (B, C, H, W) float32
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out
