"""How a trial runs, not what it computes: its precision, memory layout and attention kernel.

The fastest way to run a configuration depends on the configuration and on the machine.
Measured on a 2-core AMD EPYC (AVX512-BF16), one thread, batch 128, a training step of the
quick study's models: bf16 autocast trains the token-mixing MLP at patch 4 2.0x faster than
fp32 and slows PyTorch's fused attention kernel 2.6x, while the same attention written as
three batched matmuls ("plain") gains 1.5x from bf16; channels_last speeds the conv mixer
1.5x and slows the MLP (`benchmarks/execution.py` prints the table). So no single setting is
right, and :func:`choose` times each candidate of a configuration and keeps the fastest.

Precision is not free: bf16 is a candidate only for a mixer whose registry entry says bf16
autocast reached fp32's test accuracy (``MixerInfo.bf16``, cleared by the paired benchmark
``benchmarks/precision.py``); every other configuration (reference architectures too) stays
fp32. A record with no ``precision`` column ran :func:`legacy`: what every trial ran before
executions were chosen (fp32 on CPU, bf16 autocast on CUDA), and re-running it runs that.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import statistics
import time
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # config.py imports this module, so torch is imported where it is used
    import torch

    from mixerlab.config import ModelConfig

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class Execution(BaseModel):
    """One way to run a trial. ``how``: ``measured`` (the fastest candidate), ``pinned`` (the
    spec fixed every choice) or ``legacy`` (as before executions were chosen)."""

    model_config = _FROZEN
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = True
    attention_kernel: Literal["fused", "plain"] = "fused"
    how: Literal["measured", "pinned", "legacy"] = "legacy"

    @property
    def label(self) -> str:
        """E.g. ``bf16 nchw plain`` (the kernel only where it differs from the default)."""
        parts = [self.precision, "channels_last" if self.channels_last else "nchw"]
        return " ".join(parts + ([self.attention_kernel] if self.attention_kernel != "fused" else []))

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def autocast(self, device: torch.device):
        """The context a forward pass runs in: bf16 autocast, or nothing (fp32)."""
        if self.precision == "bf16":
            import torch

            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` set to this way: its attention kernel and memory layout."""
        import torch

        for module in model.modules():
            if hasattr(module, "kernel"):  # models/mixers/attention.py: "fused" or "plain"
                module.kernel = self.attention_kernel
        return model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def record(self) -> dict:
        """The record's columns: what ran, and how it was chosen."""
        return {"precision": self.precision, "channels_last": self.channels_last,
                "attention_kernel": self.attention_kernel, "execution": self.how}


class ExecutionPins(BaseModel):
    """A spec's ``execution:`` section: ``auto`` (measure) or a fixed value, per choice."""

    model_config = ConfigDict(extra="forbid")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    attention_kernel: Literal["auto", "fused", "plain"] = "auto"

    @property
    def all_pinned(self) -> bool:
        return "auto" not in (self.precision, self.memory_format, self.attention_kernel)


def legacy(channels_last: bool, device: torch.device) -> Execution:
    """What a trial ran before executions were chosen: bf16 autocast on CUDA, else fp32."""
    return Execution(precision="bf16" if device.type == "cuda" else "fp32",
                     channels_last=channels_last, how="legacy")


def from_record(rec: dict) -> Execution | None:
    """The way a recorded trial ran; None for a record made before ways were chosen (it ran
    :func:`legacy`, which ``train`` runs for None)."""
    if rec.get("precision") is None:
        return None
    return Execution(precision=rec["precision"], channels_last=bool(rec["channels_last"]),
                     attention_kernel=rec.get("attention_kernel") or "fused",
                     how=rec.get("execution") or "measured")


def supports_bf16(device: torch.device) -> bool:
    """Whether this device runs bf16 matmuls natively (CPU: AVX512-BF16 or AMX, via oneDNN)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_cleared(cfg: ModelConfig) -> bool:
    """Whether bf16 may run ``cfg``: its mixer's accuracy in bf16 was shown equal to fp32's."""
    if not cfg.is_skeleton:
        return False  # a reference architecture: not measured, so it stays fp32
    from mixerlab.models.mixers import get_mixer

    return get_mixer(cfg.mixer).bf16


def _has_attention(cfg: ModelConfig) -> bool:
    from mixerlab.models.mixers import get_mixer

    return cfg.is_skeleton and get_mixer(cfg.mixer).has_heads


def candidates(cfg: ModelConfig, pins: ExecutionPins, device: torch.device) -> list[Execution]:
    """Every way ``cfg`` may run on ``device`` under ``pins``: fp32 first, so a tie keeps it."""
    bf16 = supports_bf16(device) and bf16_cleared(cfg)
    precisions = [pins.precision] if pins.precision != "auto" else ["fp32"] + (["bf16"] if bf16 else [])
    layouts = ([pins.memory_format == "channels_last"] if pins.memory_format != "auto"
               else [True, False])
    kernels = (([pins.attention_kernel] if pins.attention_kernel != "auto" else ["fused", "plain"])
               if _has_attention(cfg) else ["fused"])
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
    import torch

    from mixerlab.models import create_model

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


def time_in_turns(steps, device: torch.device, *, rounds: int = 3, block: int = 1, warmup: int = 1,
                  drop_at: float | None = None, min_time_s: float = 0.0, max_rounds: int = 50) -> list[list[float]]:
    """Seconds per call of each of ``steps`` (callables), one list per step, timed in turns:
    round after round each step runs ``block`` times and its mean is one entry, so a slow spell
    of a shared machine falls on every step alike instead of on whichever was being timed.
    Each step first runs ``warmup`` times untimed (allocator, oneDNN primitive caches,
    autotuning). Without ``drop_at``: exactly ``rounds`` rounds. With it, a race: after each
    round a step whose median is more than ``drop_at`` times the best's stops being timed (it
    keeps the rounds it ran), and the others go on until each has ``rounds`` rounds and
    ``min_time_s`` of steps (at most ``max_rounds``). The one timing loop of ``choose``, the
    dry run's ways and the benchmarks that compare ways (benchmarks/attribution.py,
    benchmarks/attention_kernels.py)."""
    import torch

    for step in steps:
        for _ in range(warmup):
            step()
    times: list[list[float]] = [[] for _ in steps]
    racing = list(range(len(steps)))
    for _ in range(rounds if drop_at is None else max_rounds):
        for i in racing:
            t0 = time.perf_counter()
            for _ in range(block):
                steps[i]()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[i].append((time.perf_counter() - t0) / block)
        if drop_at is None:
            continue
        best = min(statistics.median(times[i]) for i in racing)
        racing = [i for i in racing if statistics.median(times[i]) <= drop_at * best]
        if all(len(times[i]) >= rounds and sum(times[i]) >= min_time_s for i in racing):
            break
    return times


def train_step(model: torch.nn.Module, cfg: ModelConfig, batch_size: int, ex: Execution,
                device: torch.device):
    """One AdamW training step of ``model`` run ``ex``, on a fixed random batch."""
    import torch

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
