"""Which way (:class:`~mixerlab.execution.Execution`) a configuration trains fastest here.

Every candidate a configuration may run (precision, memory layout, attention kernel) is timed
on this machine with the one timing loop (:func:`mixerlab.measure.time_in_turns`) and the
fastest kept (:func:`choose`); bf16 is a candidate only where the device runs it natively and
the mixer's registry entry cleared it (``MixerInfo.bf16``). See :mod:`mixerlab.execution`
for the measured figures that make a choice necessary.
"""

from __future__ import annotations

import copy
import itertools
import statistics

import torch

from mixerlab.config import ModelConfig
from mixerlab.execution import Execution, ExecutionPins
from mixerlab.measure import time_in_turns
from mixerlab.models import create_model, has_heads
from mixerlab.models.mixers import get_mixer


def supports_bf16(device: torch.device) -> bool:
    """Whether this device runs bf16 matmuls natively (CPU: AVX512-BF16 or AMX, via oneDNN)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_cleared(cfg: ModelConfig) -> bool:
    """Whether bf16 may run ``cfg``: its mixer's accuracy in bf16 was shown equal to fp32's."""
    if not cfg.is_skeleton:
        return False  # a reference architecture: not measured, so it stays fp32
    return get_mixer(cfg.mixer).bf16


def candidates(cfg: ModelConfig, pins: ExecutionPins, device: torch.device) -> list[Execution]:
    """Every way ``cfg`` may run on ``device`` under ``pins``: fp32 first, so a tie keeps it."""
    bf16 = supports_bf16(device) and bf16_cleared(cfg)
    precisions = [pins.precision] if pins.precision != "auto" else ["fp32"] + (["bf16"] if bf16 else [])
    layouts = ([pins.memory_format == "channels_last"] if pins.memory_format != "auto"
               else [True, False])
    kernels = (([pins.attention_kernel] if pins.attention_kernel != "auto" else ["fused", "plain"])
               if has_heads(cfg) else ["fused"])
    how = "pinned" if len(precisions) * len(layouts) * len(kernels) == 1 else "measured"
    return [Execution(precision=p, channels_last=c, attention_kernel=k, how=how)
            for p, c, k in itertools.product(precisions, layouts, kernels)]


# A candidate whose median step takes this many times the best one's is dropped from later
# rounds (racing): one slow way (bf16 through the fused attention kernel: 3.6x) would
# otherwise cost more timing than all the others together.
DROP_AT = 1.5


def choose(cfg: ModelConfig, batch_size: int, pins: ExecutionPins, device: torch.device,
           time_s: float = 0.2) -> tuple[Execution, dict[str, float]]:
    """The fastest way to train ``cfg`` (training images/s at ``batch_size``), and every
    candidate's rate by label.

    The candidates' steps are timed in turns, round after round, after one warm-up step each
    (oneDNN builds its kernels there): a slow spell of a shared machine then falls on every
    candidate alike instead of on whichever was being timed. After each round a candidate
    whose median is more than ``DROP_AT`` times the best's leaves the race; the others go on
    until each has 3 rounds and ``time_s`` of steps. A rate is the median of its rounds. A
    candidate of another precision must beat fp32's fastest by 3% to be chosen: within that
    the timings do not tell them apart, and fp32 is the reference."""
    options = candidates(cfg, pins, device)
    if len(options) == 1:
        return options[0], {}
    torch.manual_seed(0)
    base = create_model(cfg)
    steps = [train_step(copy.deepcopy(base), cfg, batch_size, ex, device) for ex in options]
    times = time_in_turns(steps, device, rounds=3, drop_at=DROP_AT, min_time_s=time_s)
    rates = {ex.label: batch_size / statistics.median(t) for ex, t in zip(options, times)}
    fp32 = [ex for ex in options if ex.precision == "fp32"]
    best_fp32 = max(fp32 or options, key=lambda ex: rates[ex.label])
    best = max(options, key=lambda ex: rates[ex.label])
    if best.precision != best_fp32.precision and rates[best.label] < 1.03 * rates[best_fp32.label]:
        best = best_fp32
    return best, rates


def train_step(model: torch.nn.Module, cfg: ModelConfig, batch_size: int, ex: Execution,
                device: torch.device):
    """One AdamW training step of ``model`` run ``ex``, on a fixed random batch."""
    model = ex.prepare(model.to(device)).train()
    x = torch.randn(batch_size, cfg.in_chans, cfg.image_size, cfg.image_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last if ex.channels_last else torch.contiguous_format)
    y = torch.randint(0, cfg.num_classes, (batch_size,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with ex.autocast(device):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step
