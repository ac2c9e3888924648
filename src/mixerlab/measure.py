"""Honest measurement of any model: parameters, MACs/FLOPs, throughput, peak memory.

Conventions (stated in every record):

* **MACs** are multiply-accumulates of the forward pass per image, in matrix multiplies,
  convolutions and attention (``QK^T`` and ``AV``); **FLOPs = 2 x MACs**. Elementwise
  operations, norms, activations and pooling are not counted, as in fvcore and timm.
  Counted with ``torch.utils.flop_counter.FlopCounterMode``, plus a formula for the CPU
  fused-attention kernel, which FlopCounterMode would otherwise count as zero.
* **Throughput** follows timm's ``benchmark.py``: warm-up steps, device synchronisation on
  GPU, several timed repeats; the median images/s is reported with its inter-quartile range.
* **Peak memory** is CUDA's ``max_memory_allocated`` on GPU. On CPU no per-model figure
  can be isolated from the rest of the process, so the process's peak resident set size
  since the trial began is reported and labelled as such (``peak_mem_kind =
  "cpu_peak_rss"``; it includes the data set and the Python runtime).
"""

from __future__ import annotations

import copy
import resource
import statistics
import sys
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from mixerlab.provenance import device_name


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)  # 2 x (QK^T + AV) MACs


# FlopCounterMode has formulas for the CUDA fused-attention kernels but not for the CPU one.
_EXTRA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


def count_params(model: nn.Module) -> dict:
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, int, int], device="cpu") -> dict:
    """Forward MACs and FLOPs per image for an input of shape (C, H, W)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape, device=device)
    with FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS) as counter:
        model(x)
    model.train(was_training)
    flops = int(counter.get_total_flops())
    return {"macs": flops // 2, "flops": flops}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step, device, warmup: int, repeats: int, iters: int, min_time_s: float = 0.0,
                max_repeats: int = 20) -> list[float]:
    """Seconds per step of ``repeats`` timings (``iters`` steps each), and more, up to
    ``max_repeats``, until ``min_time_s`` has been timed: a fast step is timed many times,
    so its median does not rest on two samples of a noisy machine."""
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    while len(times) < repeats or (sum(times) * iters < min_time_s and len(times) < max_repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        _sync(device)
        times.append((time.perf_counter() - t0) / iters)
    return times


def _summary(times: list[float], batch_size: int, kind: str, device, dtype) -> dict:
    rates = sorted(batch_size / t for t in times)
    q = statistics.quantiles(rates, n=4) if len(rates) > 1 else [rates[0]] * 3
    return {
        f"{kind}_images_per_s": statistics.median(rates),
        f"{kind}_images_per_s_iqr": q[2] - q[0],
        f"{kind}_batch_size": batch_size,
        f"{kind}_repeats": len(rates),
        f"{kind}_dtype": str(dtype).replace("torch.", ""),
        "device_name": device_name(device),
    }


def benchmark_inference(
    model: nn.Module, input_shape, *, batch_size=256, device="cpu", dtype=torch.float32,
    warmup=3, repeats=7, iters=3, channels_last=False, min_time_s=0.0,
) -> dict:
    """Inference images/s (median of ``repeats`` timings of ``iters`` forward passes, more
    while less than ``min_time_s`` was timed)."""
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn(batch_size, *input_shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    @torch.no_grad()
    def step():
        with autocast:
            model(x)

    times = _time_steps(step, device, warmup, repeats, iters, min_time_s)
    return _summary(times, batch_size, "infer", device, dtype)


def benchmark_training(
    model: nn.Module, input_shape, *, num_classes: int, batch_size=128, device="cpu",
    dtype=torch.float32, warmup=2, repeats=5, iters=2, channels_last=False, min_time_s=0.0,
) -> dict:
    """Training-step images/s: forward + backward + AdamW step, on a copy of the model
    (median over ``repeats`` timings, more while less than ``min_time_s`` was timed)."""
    device = torch.device(device)
    model = copy.deepcopy(model).to(device).train()
    x = torch.randn(batch_size, *input_shape, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step():
        with autocast:
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = _time_steps(step, device, warmup, repeats, iters, min_time_s)
    return _summary(times, batch_size, "train_step", device, dtype)


def reset_peak_memory(device) -> None:
    """Start a new peak: CUDA's counter, or on Linux the process's RSS high-water mark.

    Writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM`` (Linux >= 4.0), so a worker
    process that runs several trials one after another reports each trial's own peak.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: the lifetime peak below is all there is


def _vm_hwm_kib() -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def peak_memory(device) -> dict:
    """Peak memory in MiB since :func:`reset_peak_memory`, with what it means."""
    device = torch.device(device)
    if device.type == "cuda":
        return {
            "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_mem_kind": "cuda_max_allocated",
        }
    hwm = _vm_hwm_kib()
    if hwm is not None:
        return {"peak_mem_mb": hwm / 2**10, "peak_mem_kind": "cpu_peak_rss"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {
        "peak_mem_mb": rss / (2**20 if sys.platform == "darwin" else 2**10),
        "peak_mem_kind": "cpu_max_rss_lifetime",
    }


def describe_model(model: nn.Module, input_shape, *, num_classes: int | None = None,
                   throughput=False, device="cpu", batch_size=256) -> dict:
    """Everything ``mixerlab describe`` prints, as one flat dict."""
    out = {**count_params(model), **count_flops(model, input_shape, device)}
    if throughput:
        out.update(benchmark_inference(model, input_shape, batch_size=batch_size, device=device))
        if num_classes:
            out.update(benchmark_training(model, input_shape, num_classes=num_classes,
                                          batch_size=min(batch_size, 128), device=device))
    return out


def time_in_turns(steps, device: torch.device, *, rounds: int = 3, block: int = 1, warmup: int = 1,
                  drop_at: float | None = None, min_time_s: float = 0.0, max_rounds: int = 50) -> list[list[float]]:
    """Seconds per call of each of ``steps`` (callables), one list per step, timed in turns:
    round after round each step runs ``block`` times and its mean is one entry, so a slow spell
    of a shared machine falls on every step alike instead of on whichever was being timed.
    Each step first runs ``warmup`` times untimed (allocator, oneDNN primitive caches,
    autotuning). Without ``drop_at``: exactly ``rounds`` rounds. With it, a race: after each
    round a step whose median is more than ``drop_at`` times the best's stops being timed (it
    keeps the rounds it ran), and the others go on until each has ``rounds`` rounds and
    ``min_time_s`` of steps (at most ``max_rounds``). The one timing loop of the project: the
    execution chooser (mixerlab/execution_choice.py), the dry run's ways and every benchmark
    that compares steps."""
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
