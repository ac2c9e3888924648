"""Learning-rate schedules, stepped once per batch."""

from __future__ import annotations

import math

import torch

from mixerlab.config import TrainConfig


def make_scheduler(opt: torch.optim.Optimizer, t: TrainConfig, steps_per_epoch: int):
    total = max(1, t.epochs * steps_per_epoch)
    if t.schedule == "onecycle":
        # Smith & Topin 2019; ConvMixer's CIFAR-10 recipe trains with a one-cycle schedule.
        # Warm-up over the first 25% of steps, cosine anneal to lr / 1e4.
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=t.lr, total_steps=total, pct_start=0.25, anneal_strategy="cos",
            cycle_momentum=False, div_factor=25.0, final_div_factor=1e4,
        )
    warmup = int(t.warmup_epochs * steps_per_epoch)
    if t.schedule == "cosine":
        # Linear warm-up then cosine decay to zero (Loshchilov & Hutter 2017; DeiT's recipe).
        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    else:  # constant, after the same warm-up
        def factor(step: int) -> float:
            return min(1.0, (step + 1) / warmup) if warmup else 1.0
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
