"""Item 2: hardware efficiency per mixer, and where the least efficient one spends its step.

Efficiency = achieved training FLOP/s / peak FLOP/s, both measured in this run:

* achieved = 3 x 2 x forward MACs per image x training images/s. A training step costs
  about three forward passes (forward, then backward for activations and for weights:
  Kaplan et al. 2020, arXiv:2001.08361, Sec. 2.1); FLOPs = 2 x MACs. The MACs are
  mixerlab's own count (``measure.count_flops``: matmuls, convolutions, attention; norms,
  activations and pooling count zero, as in fvcore and timm), the rate the median of timed
  AdamW steps (fp32, channels_last as the engine trains), every configuration's steps timed
  in turns with the others' by the benchmarks' one timing helper (``_timing.py``).
* peak = 2 n^3 / time of a large float32 matmul (n = 4096 on CPU, 8192 on GPU) at the same
  thread count: what this device does at its best on the same dtype.

Every figure is a rate or a ratio measured in turns in this one run; none compares with
another run. Then a ``torch.profiler`` breakdown of one training step of the least efficient
mixer (top operators by self time, with their input shapes) and the split of a step into
forward, backward and optimizer. Making it faster is a separate step.

    python benchmarks/efficiency.py [--quick] [--device auto]
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from _timing import ENGINE_WAY, loop, train_step_seconds
from figures import Context, figure, standalone
from torch.profiler import ProfilerActivity, profile

from mixerlab.config import ModelConfig, TrainConfig
from mixerlab.execution import ExecutionPins
from mixerlab.execution_choice import choose, supports_bf16
from mixerlab.measure import count_flops, time_in_turns
from mixerlab.models import create_model, list_mixers

ITEM = "efficiency"
PATCH_SIZES = (2, 4)
MODEL = ModelConfig()  # the documented recipe's shape: depth 6, width 64 (benchmarks/accuracy.py)
BATCH = 128  # the recipe's batch
TOP = 5  # operators reported from the profile


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device, n: int, repeats: int = 5, dtype=torch.float32) -> float:
    """FLOP/s of an n x n matmul in ``dtype``: median of ``repeats`` timed products after two
    untimed ones, with the project's timing loop (``time_in_turns``, one step)."""
    device = torch.device(device)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    times = time_in_turns([lambda: a @ b], device, rounds=repeats, warmup=2)[0]
    return 2 * n**3 / statistics.median(times)


def training_rates(cfgs: list[ModelConfig], device, batch: int, quick: bool) -> list[dict]:
    """Forward MACs per image, training images/s and achieved FLOP/s of each configuration;
    the steps of all of them timed in turns (``_timing.train_step_seconds``), so a slow spell
    of the machine does not fall on one mixer's efficiency alone."""
    macs = [count_flops(create_model(cfg), (cfg.in_chans, cfg.image_size, cfg.image_size))["macs"]
            for cfg in cfgs]
    seconds = train_step_seconds([(cfg, ENGINE_WAY) for cfg in cfgs], batch, device, **loop(quick))
    return [{"macs": m, "images_per_s": batch / s, "flop_per_s": 3 * 2 * m * batch / s}
            for m, s in zip(macs, seconds)]


def _chosen_way(cfg: ModelConfig, batch: int, device, macs: int, peak: float, bf16_peak) -> list[dict]:
    """The way the sweep would run ``cfg`` here (``mixerlab.execution_choice.choose``, candidates timed
    in turns), its speed-up over fp32 channels_last, and its efficiency against the peak of
    its own precision."""
    way, rates = choose(cfg, batch, ExecutionPins(), torch.device(device))
    if not rates:
        return []
    base, got = rates["fp32 channels_last"], rates[way.label]
    top = bf16_peak if way.precision == "bf16" else peak
    label = f"{cfg.mixer} p{cfg.patch_size}"
    return [figure(ITEM, f"{label}: chosen way / fp32 channels_last", got / base, "x",
                   f"chosen: {way.label}; candidates " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
                   + " img/s"),
            figure(ITEM, f"{label}: efficiency at its way", 100 * 3 * 2 * macs * got / top, "% of peak",
                   f"achieved / peak {way.precision} matmul, same run")]


def profile_step(cfg: ModelConfig, device, batch: int, steps: int) -> tuple[list, dict]:
    """Top operators by self time over ``steps`` training steps, and the phase shares.

    Phases are timed with synchronisation outside the profiler, so its overhead does not
    enter them. This is the one step with its own clock: ``time_in_turns`` times whole
    steps, and here one step is split into its phases. Returns ([(operator, input shapes,
    share of self time)], {phase: share}).
    """
    device = torch.device(device)
    torch.manual_seed(0)
    model = create_model(cfg).to(device).train()
    x = torch.randn(batch, cfg.in_chans, cfg.image_size, cfg.image_size, device=device)
    y = torch.randint(0, cfg.num_classes, (batch,), device=device)
    if TrainConfig().channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    phases = {"forward": [], "backward": [], "optimizer": []}

    def step(timed: bool):
        marks = [time.perf_counter()]
        loss = F.cross_entropy(model(x), y)
        if timed:
            _sync(device)
            marks.append(time.perf_counter())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if timed:
            _sync(device)
            marks.append(time.perf_counter())
        opt.step()
        if timed:
            _sync(device)
            marks.append(time.perf_counter())
            for name, a, b in zip(phases, marks, marks[1:]):
                phases[name].append(b - a)

    for _ in range(2):
        step(False)
    for _ in range(steps):
        step(True)
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts, record_shapes=True) as prof:
        for _ in range(steps):
            step(False)
        _sync(device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages(group_by_input_shape=True) if getattr(e, key) > 0]
    total = sum(getattr(e, key) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    top = [(e.key, str(e.input_shapes), 100.0 * getattr(e, key) / total) for e in events[:TOP]]
    medians = {k: statistics.median(v) for k, v in phases.items()}
    whole = sum(medians.values())
    return top, {k: 100.0 * v / whole for k, v in medians.items()}


def run(ctx: Context) -> list[dict]:
    torch.set_num_threads(ctx.extra.get("threads") or torch.get_num_threads())
    threads = torch.get_num_threads()
    cuda = torch.device(ctx.device).type == "cuda"
    n = 256 if ctx.quick else (8192 if cuda else 4096)
    model = MODEL.model_copy(update=dict(depth=1, width=16)) if ctx.quick else MODEL
    batch = 8 if ctx.quick else BATCH
    patch_sizes = (4,) if ctx.quick else PATCH_SIZES
    mixers = ["conv", "identity"] if ctx.quick else list_mixers()
    shape_note = f"depth {model.depth}, width {model.width}, batch {batch}, float32, {threads} threads"

    peak = matmul_peak(ctx.device, n)
    tf32 = f", TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}" if cuda else ""
    rows = [figure(ITEM, "peak float32 matmul", peak / 1e9, "GFLOP/s",
                   f"{n}x{n} @ {n}x{n}, median of 5, {threads} threads{tf32}")]
    bf16_peak = matmul_peak(ctx.device, n, dtype=torch.bfloat16) if supports_bf16(torch.device(ctx.device)) else None
    if bf16_peak:
        rows.append(figure(ITEM, "peak bfloat16 matmul", bf16_peak / 1e9, "GFLOP/s",
                           f"{n}x{n} @ {n}x{n}, median of 5, {threads} threads"))
    cfgs = {(m, ps): model.model_copy(update=dict(mixer=m, patch_size=ps))
            for m in mixers for ps in patch_sizes}
    measured = dict(zip(cfgs, training_rates(list(cfgs.values()), ctx.device, batch, ctx.quick)))
    for (mixer, ps), r in measured.items():
        r["efficiency"] = r["flop_per_s"] / peak
        note = (f"{r['macs'] / 1e6:.2f}M MACs/image fwd, {r['images_per_s']:.0f} img/s; "
                f"{shape_note}")
        rows.append(figure(ITEM, f"{mixer} p{ps}: achieved training FLOP/s",
                           r["flop_per_s"] / 1e9, "GFLOP/s", note))
        rows.append(figure(ITEM, f"{mixer} p{ps}: efficiency", 100 * r["efficiency"],
                           "% of peak", "achieved / peak matmul, same run"))
        rows += _chosen_way(cfgs[mixer, ps], batch, ctx.device, r["macs"], peak, bf16_peak)
    return rows + _least_efficient(measured, model, ctx, batch)


def _least_efficient(measured: dict, model: ModelConfig, ctx: Context, batch: int) -> list[dict]:
    """The least efficient mixer's figure, its phase split and its top operators.

    Chosen among the mixers whose mixing is counted work: a mixer that adds no MACs over the
    identity control (pool: averaging counts zero, as in fvcore/timm) is inefficient by the
    convention, not by its kernels, so it is not the one to profile."""
    def mixing_macs(key):
        base = measured.get(("identity", key[1]))
        return measured[key]["macs"] - (base["macs"] if base else 0)

    candidates = [k for k in measured if mixing_macs(k) > 0] or list(measured)
    worst = min(candidates, key=lambda k: measured[k]["efficiency"])
    mixer, ps = worst
    rows = [figure(ITEM, f"least efficient mixer: {mixer} p{ps}",
                   100 * measured[worst]["efficiency"], "% of peak",
                   "lowest among mixers that add counted MACs over identity")]
    cfg = model.model_copy(update=dict(mixer=mixer, patch_size=ps))
    top, phases = profile_step(cfg, ctx.device, batch, steps=1 if ctx.quick else 3)
    for phase, share in phases.items():
        rows.append(figure(ITEM, f"{mixer} p{ps} step: {phase}", share, "% of step",
                           "median over timed steps, synchronised"))
    cuda = torch.device(ctx.device).type == "cuda"
    for i, (op, shapes, share) in enumerate(top, 1):
        rows.append(figure(ITEM, f"{mixer} p{ps} profile #{i}: {op}", share, "% of self time",
                           f"torch.profiler self {'device' if cuda else 'CPU'} time; inputs {shapes}"))
    return rows


def _args(p) -> None:
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")


def main() -> None:
    standalone(__doc__.splitlines()[0], ITEM, run, _args)


if __name__ == "__main__":
    main()
