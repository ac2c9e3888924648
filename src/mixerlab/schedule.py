"""Learning-rate schedules as multipliers of the peak lr, stepped once per batch.

All four are written as one ``LambdaLR`` so they behave the same on tiny runs (a few
steps) as on long ones, and resume exactly from a scheduler state dict.

``wsd`` (warm-up, stable, decay; Hu et al. 2024, MiniCPM, arXiv:2404.06395): a linear
warm-up, the peak lr held, then a cool-down over the last ``cooldown_fraction`` of the
budget to ~0, ``1-sqrt`` (the multiplier 1 - sqrt(progress); Hägele et al. 2024,
arXiv:2405.18392, find it beats a linear cool-down) or ``linear``. Until its cool-down a WSD
run does not depend on its length, which is what a budget ladder (``TrainConfig.budgets``)
uses: one run's stable phase serves every budget, and :func:`set_budget` points the
schedule at the budget a branch cools down to.
"""

from __future__ import annotations

import math

import torch

from mixerlab.config import TrainConfig, cooldown_epochs


def _cosine(progress: float, floor: float = 0.0) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def lr_factor(schedule: str, step: int, total: int, warmup: int, cooldown: int = 0,
              shape: str = "1-sqrt") -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based) of ``total``; ``wsd``
    cools down over the last ``cooldown`` steps, in ``shape``."""
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
    if schedule == "wsd" and step >= total - cooldown:
        # From 1 at the cool-down's first step to ~0 at its last: (1 - 1/cooldown) of the way.
        progress = min(1.0, (step - (total - cooldown)) / max(1, cooldown))
        return 1 - progress if shape == "linear" else 1 - math.sqrt(progress)
    return ramp  # constant after the warm-up (wsd: its stable phase)


class _Factor:
    """The multiplier of one trial's schedule, as an object: ``LambdaLR`` keeps an object's
    attributes in its state dict (a function's it cannot), so a checkpoint taken inside a
    ladder's branch restores the branch's budget with the rest of the scheduler."""

    def __init__(self, t: TrainConfig, steps_per_epoch: int):
        self.schedule, self.shape, self.fraction = t.schedule, t.cooldown_shape, t.cooldown_fraction
        self.steps_per_epoch = steps_per_epoch
        self.warmup = int(t.warmup_epochs * steps_per_epoch)
        self.retarget(t.epochs)

    def retarget(self, budget: int) -> None:
        """Cool down to ``budget`` epochs (only ``wsd`` changes before its cool-down starts)."""
        self.total = max(1, budget * self.steps_per_epoch)
        self.cooldown = cooldown_epochs(budget, self.fraction) * self.steps_per_epoch

    def __call__(self, step: int) -> float:
        return lr_factor(self.schedule, step, self.total, self.warmup, self.cooldown, self.shape)


def make_scheduler(opt: torch.optim.Optimizer, t: TrainConfig, steps_per_epoch: int):
    """The trial's schedule over ``t.epochs`` epochs of ``steps_per_epoch`` steps."""
    return torch.optim.lr_scheduler.LambdaLR(opt, _Factor(t, steps_per_epoch))


def set_budget(sched, budget: int) -> None:
    """Point a ``wsd`` schedule made by :func:`make_scheduler` at ``budget`` epochs: where a
    ladder's branch starts (its cool-down start), both budgets give the same lr, so the
    switch changes nothing before the branch's first step."""
    sched.lr_lambdas[0].retarget(budget)
