"""Convergence, measured rather than assumed: how much a trial still gained at the end.

A trial of ``E`` epochs has done ``k / E`` of its training after epoch ``k``. Its *late gain*
is the validation accuracy after the last epoch minus that after epoch ``k80``, the epoch at
which 80% of its training had been done, in accuracy points (issue 17 item 1)::

    k80 = min(round(0.8 * E), E - 1)            # at least one epoch back
    late_gain = val_acc[E] - val_acc[k80]       # epochs 1-based; NaN when E == 1

``round(0.8 * E)`` never meets a tie (0.8 E is a whole number of fifths), so it is computed
exactly as ``(4 E + 2) // 5``. E = 10 compares epochs 10 and 8; E = 12, 12 and 10; E = 5,
5 and 4; E = 2, 2 and 1. A trial that stopped early (diverged, or stopped by a scheduler) is
measured over the epochs it ran.

Read it with the schedule in mind: one-cycle and cosine anneal the learning rate to nearly
0 over exactly this stretch, and annealing alone lifts accuracy. A large late gain says the
curve was still rising when training ended, not why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# A late gain above this many points counts as "still climbing". 0.5 points is about the
# seed-to-seed spread of final validation accuracy in the committed studies (median standard
# deviation per configuration 0.1-1.0 points by study, 0.5 in mixer_patch and baselines) and
# about 1.3 binomial standard errors of one accuracy on Fashion-MNIST's 6,000 validation
# images at 90% (0.39 points): below it a rerun could move the curve as much; above it the
# trial was still improving by more than noise when it stopped.
STILL_CLIMBING = 0.5

# The record's key for the late gain (train.train adds it to every trial).
LATE_GAIN_KEY = "val_gain_last20"


def late_epoch(epochs: int) -> int:
    """The 1-based epoch at which 80% of ``epochs`` had been done, at least one epoch back
    (``min(round(0.8 * epochs), epochs - 1)``); 0 when there is no earlier epoch."""
    return min((4 * epochs + 2) // 5, epochs - 1) if epochs > 1 else 0


def late_gain(history: Sequence[Mapping]) -> float:
    """Validation accuracy gained over the last 20% of training, in points (see the module).

    ``history``: one row per epoch run, in order, each with ``val_acc`` in percent (as
    :func:`mixerlab.train.train` records). NaN for fewer than two epochs, or where either
    accuracy is not finite (no validation set).
    """
    k = late_epoch(len(history))
    if k == 0:
        return float("nan")
    last, before = float(history[-1]["val_acc"]), float(history[k - 1]["val_acc"])
    return last - before if math.isfinite(last) and math.isfinite(before) else float("nan")


def still_climbing(gain: float, threshold: float = STILL_CLIMBING) -> bool:
    """Whether a late gain says the trial had not converged (NaN: unknown, so False)."""
    return gain > threshold
