"""Learning-rate schedules as multipliers of the peak lr, stepped once per batch.

All three are written as one ``LambdaLR`` so they behave the same on tiny runs (a few
steps) as on long ones, and resume exactly from a scheduler state dict.
"""

from __future__ import annotations

import math

import torch

from mixerlab.config import TrainConfig


def _cosine(progress: float, floor: float = 0.0) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based) of ``total``."""
    if schedule == "onecycle":
        # One-cycle (Smith & Topin 2019), as ConvMixer's CIFAR-10 recipe: ramp from lr/25 to
        # lr over the first 25% of steps, then cosine anneal to lr/1e4.
        peak = max(1, int(0.25 * total))
        if step < peak:
            return 1 / 25 + (1 - 1 / 25) * step / peak
        return _cosine((step - peak) / max(1, total - peak), floor=1e-4)
    ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if schedule == "cosine":  # linear warm-up then cosine to zero (Loshchilov & Hutter 2017)
        return ramp if step < warmup else _cosine((step - warmup) / max(1, total - warmup))
    return ramp  # constant after the warm-up


def make_scheduler(opt: torch.optim.Optimizer, t: TrainConfig, steps_per_epoch: int):
    total = max(1, t.epochs * steps_per_epoch)
    warmup = int(t.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(t.schedule, step, total, warmup))
