"""Where item 1's gain comes from: three factors, measured per configuration in the same run.

From the usual way to mixerlab's, one change at a time, each a ratio of times per step:

* **P, pipeline**: one epoch through torchvision's ``DataLoader`` (2 workers, per-sample
  transforms) over one through mixerlab's ``DeviceLoader``; NCHW, all cores, the same model
  (``pipeline.versus_dataloader``; CPU only, as that function is).
* **W, the way to run**: a training step the usual way (fp32, NCHW, the fused attention
  kernel) over one run the way the sweep chose for that configuration (its records'
  precision, layout and kernel: ``mixerlab/execution.py``), on a fixed batch, all cores,
  interleaved (``compare_ways``).
* **T, trials side by side**: one trial on all cores against one single-threaded trial per
  core (as ``mixerlab sweep`` runs them: ``resources: {cpu: 1}``), each run its way; the
  ratio of throughputs, measured with the trials' processes started together at a barrier.

Their product is what the three explain; the measured wall-time ratio over the product is
the rest: process start-up and data reading per usual trial, the per-sample pipeline of
the evaluations, a ``loss.item()`` per step, against Ray's start-up and mixerlab's
checkpoints and inference timing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import statistics
import time

import pipeline
import torch
from figures import Context, figure

from mixerlab.config import DataConfig, ModelConfig
from mixerlab.data import load_dataset
from mixerlab.execution import Execution
from mixerlab.execution_choice import train_step
from mixerlab.measure import time_in_turns
from mixerlab.models import create_model

ITEM = "usual_way"
BATCH = 128  # quick.yaml's batch


def _label(cfg: ModelConfig) -> str:
    return f"{cfg.mixer} p{cfg.patch_size}"


def _worker(rank, configs, ways, device, batch, steps, barrier, queue) -> None:
    """One single-threaded 'trial' per process: for each config, warm up, wait for the others,
    time ``steps`` steps run its way, wait again (so no one's warm-up overlaps a timing)."""
    torch.set_num_threads(1)
    for i, (cfg, way) in enumerate(zip(configs, ways)):
        torch.manual_seed(rank)
        step = train_step(create_model(cfg), cfg, batch, way, torch.device(device))
        step()
        barrier.wait()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        queue.put((i, (time.perf_counter() - t0) / steps))
        barrier.wait()


def side_by_side(configs: list[ModelConfig], ways: list[Execution], device, batch: int, steps: int,
                 slots: int) -> list[float]:
    """Seconds per step of each config when ``slots`` single-threaded processes run it at once
    (the slowest process's time: the pair finishes when it does)."""
    ctx = mp.get_context("spawn")  # a fresh interpreter per trial, as Ray's workers are
    # The timeout breaks the barrier for the others if one worker dies, instead of a hang.
    barrier, queue = ctx.Barrier(slots, timeout=600), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, configs, ways, device, batch, steps, barrier, queue))
             for r in range(slots)]
    for p in procs:
        p.start()
    per_step, pending = [0.0] * len(configs), slots * len(configs)
    try:
        while pending:
            try:
                i, s = queue.get(timeout=2)
            except queue_mod.Empty:
                dead = [p.exitcode for p in procs if p.exitcode]
                if dead:
                    raise RuntimeError(f"a side-by-side worker exited with {dead[0]}") from None
                continue
            per_step[i] = max(per_step[i], s)
            pending -= 1
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    return per_step


def compare_ways(cfg: ModelConfig, ways: list[Execution], device, rounds: int, steps: int) -> list[float]:
    """Median seconds per training step of ``cfg`` run each of ``ways`` (same initial weights,
    fixed batch), timed in interleaved blocks of ``steps`` so all see the same machine state."""
    fns = []
    for way in ways:
        torch.manual_seed(0)
        fns.append(train_step(create_model(cfg), cfg, BATCH, way, torch.device(device)))
    times = time_in_turns(fns, torch.device(device), rounds=rounds, block=steps)
    return [statistics.median(t) for t in times]


def measure(configs: list[ModelConfig], data_cfg: DataConfig, root, ctx: Context,
            ways: list[Execution]) -> list[dict]:
    """Per configuration: seconds per step along the chain usual -> mixerlab (see module doc);
    ``ways``: how the sweep ran each configuration (its records)."""
    subset, steps, rounds = (256, 2, 1) if ctx.quick else (2560, 5, 3)
    cpu = torch.device(ctx.device).type == "cpu"
    slots = (os.cpu_count() or 1) if cpu else 2  # the sweep's trials at a time (cpu: 1 / gpu: 0.5)
    data = load_dataset(data_cfg) if cpu else None
    out = []
    usual = Execution(precision="fp32", channels_last=False, attention_kernel="fused")
    for cfg, way in zip(configs, ways):
        r = {"config": _label(cfg), "way": way.label}
        if cpu:
            t_dl, t_dev = pipeline.versus_dataloader(cfg, data, subset, workers=2, root=root)
            n = subset // BATCH
            r.update(dataloader_s=t_dl / n, deviceloader_s=t_dev / n)
        r["nchw_s"], r["way_s"] = compare_ways(cfg, [usual, way], ctx.device, rounds, steps)
        out.append(r)
    for r, s in zip(out, side_by_side(configs, ways, ctx.device, BATCH, steps, slots)):
        r["side_by_side_s"] = s / slots  # per step of the whole machine: slots steps at once
    return out


def rows(measured: list[dict], overall: float) -> list[dict]:
    """Per-config factors and the study-weighted ones (sums of per-step times: every config
    runs the same number of steps in the study), their product and what is left over."""
    chain = [("P", "pipeline: DataLoader / DeviceLoader", "dataloader_s", "deviceloader_s",
              "one epoch each, NCHW, all cores"),
             ("W", "way to run: fp32 NCHW / the way the sweep chose", "nchw_s", "way_s",
              "median step, fixed batch, all cores"),
             ("T", "one all-core trial / single-threaded trials side by side", "way_s",
              "side_by_side_s", "throughput, each its way, fixed batch")]
    out, product = [], 1.0
    for sym, what, before, after, how in chain:
        if any(before not in r for r in measured):
            out.append(figure(ITEM, f"{sym} {what}", float("nan"), "x",
                              "not measured on this device (pipeline.versus_dataloader is CPU-only)"))
            continue
        for r in measured:
            note = f"{how}; way: {r['way']}" if sym == "W" else how
            out.append(figure(ITEM, f"{sym} {r['config']}", r[before] / r[after], "x", note))
        factor = sum(r[before] for r in measured) / sum(r[after] for r in measured)
        product *= factor
        out.append(figure(ITEM, f"{sym} {what}", factor, "x",
                          f"all {len(measured)} configs, weighted by their time per step; {how}"))
    out.append(figure(ITEM, "P x W x T: explained by the three", product, "x",
                      "product of the weighted factors above"))
    out.append(figure(ITEM, "unexplained: wall-time ratio / (P x W x T)", overall / product, "x",
                      "process start-up, data reading, evaluation pipeline, per-step syncs, "
                      "against Ray start-up, checkpoints, inference timing"))
    return out
