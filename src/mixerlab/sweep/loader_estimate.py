"""The dry run's timing of the streamed path's loader, and which of loader and model bounds.

A streamed trial trains no faster than its workers decode and augment: each configuration's
training loader is timed for a few batches (after the first, which waits for the workers to
start) with the workers a trial of ``resources.cpu`` gets, and the slower of the loader and
the model's training step is the trial's rate (:mod:`mixerlab.sweep.estimate`). On one
machine the workers and the timed model step share the cores, as they will in the trial.
"""

from __future__ import annotations

import time

import torch

from mixerlab.data.stream_loader import stream_loaders
from mixerlab.data.workers import loader_workers

BATCHES = 4  # timed batches per configuration (after the first)


def loader_rate(data, cfg, batch_size: int, workers: int) -> float:
    """Training images/s of the streamed loader of trial config ``cfg`` (one epoch's start)."""
    trial_data = data.for_trial(cfg.data, cfg.seed)
    train, _, _ = stream_loaders(trial_data, cfg.data, trial_data.image_size, batch_size,
                                 batch_size, workers=workers, device="cpu", channels_last=False)
    train.generator = torch.Generator().manual_seed(0)
    it, n, t0 = iter(train), 0, None
    for i, (x, _) in enumerate(it):
        if i == 0:
            t0 = time.perf_counter()  # workers started: time the steady state
            continue
        n += len(x)
        if i >= BATCHES:
            break
    del it  # ends the workers
    return n / (time.perf_counter() - t0) if n else float("nan")


def loader_rates(trials, data, cpus: float) -> dict[str, float]:
    """Loader images/s by trial id; trials with the same size, batch and split share a timing."""
    out, cache = {}, {}
    for trial in trials:
        cfg = trial.config
        workers = loader_workers(cfg.data.workers, cpus)
        key = (cfg.data.image_size, cfg.train.batch_size, cfg.data.split_seed_for(cfg.seed), workers)
        if key not in cache:
            cache[key] = loader_rate(data, cfg, cfg.train.batch_size, workers)
        out[trial.trial_id] = cache[key]
    return out


def bound(model_rate: float, loader: float) -> str:
    """Which side limits a trial: ``loader`` where it delivers fewer images/s than the model
    trains on, else ``model``."""
    return "loader" if loader < model_rate else "model"
