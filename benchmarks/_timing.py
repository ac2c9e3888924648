"""The benchmarks' one way to time training steps: the project's timing loop on its step.

Every benchmark that times a training step (``efficiency.py``, ``attention_kernels.py``,
``tokens.py``) builds it with :func:`mixerlab.execution_choice.train_step` (one AdamW step
of the model run one :class:`~mixerlab.execution.Execution`, on a fixed random batch) and
times it with :func:`mixerlab.measure.time_in_turns`, as the execution chooser does: the
steps of one comparison are timed in turns, round after round, so a slow spell of the shared
machine falls on all of them alike and a ratio of two of them compares like with like.

It lives here and not in ``mixerlab.measure`` because building a step needs the models, and
``measure`` sits below them in the layers contract (``pyproject.toml``); the library's one
user of the same pair, ``execution_choice.choose``, races its candidates instead.
"""

from __future__ import annotations

import statistics

import torch

from mixerlab.config import ModelConfig, TrainConfig
from mixerlab.execution import Execution
from mixerlab.execution_choice import train_step
from mixerlab.measure import time_in_turns
from mixerlab.models import create_model

# The way the engine trains a configuration nobody chose a way for: fp32, the fused attention
# kernel, and TrainConfig's memory layout. What the benchmarks time unless they compare ways.
ENGINE_WAY = Execution(channels_last=TrainConfig().channels_last)


def loop(quick: bool) -> dict:
    """The loop's size: smoke (two rounds, figures meaningless) or a measurement (a step is
    warmed up twice, for oneDNN's kernel caches, then timed in pairs over 5 rounds)."""
    return dict(rounds=2, warmup=1, block=1) if quick else dict(rounds=5, warmup=2, block=2)


def train_step_seconds(runs: list[tuple[ModelConfig, Execution]], batch_size: int, device, *,
                       rounds: int, warmup: int = 1, block: int = 1) -> list[float]:
    """Median seconds per training step of each ``(configuration, way)`` of ``runs``, all timed
    in turns in this process (``time_in_turns``: ``rounds`` rounds of ``block`` steps each).

    Every model is built right after ``torch.manual_seed(0)``, so two runs of one
    configuration start from the same weights and differ only in their way."""
    device = torch.device(device)
    steps = []
    for cfg, way in runs:
        torch.manual_seed(0)
        steps.append(train_step(create_model(cfg), cfg, batch_size, way, device))
    times = time_in_turns(steps, device, rounds=rounds, warmup=warmup, block=block)
    return [statistics.median(t) for t in times]
