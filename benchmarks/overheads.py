"""The study's own overheads, each timed alone: what a sweep spends besides training.

For the quick study's most expensive model (attention, patch 4, depth 4, width 64: the
largest checkpoint and the slowest forward pass), one thread, as its trials run:

* **Ray start-up**: ``ray.init`` of the embedded local Ray and its shutdown; once per
  driver session (every round of a session runs on it: ``sweep/runner.py``).
* **a checkpoint**: what the trainable does each epoch (``torch.save`` of model, optimizer
  and scheduler state, then ``tune.report`` with the checkpoint, which Tune copies into the
  study folder), against ``tune.report`` alone, both inside one real Tune trial.
* **inference timing**: ``measure.benchmark_inference`` as ``train`` calls it after training;
  with ways chosen per configuration only the first measured seed runs it.
* **a trial worker's imports**: each trial slot is a Ray worker process that imports the
  trainable (``mixerlab.sweep.trainable``) before its first trial (Tune reuses it for the
  slot's later trials: ``reuse_actors``), and every ``mixerlab`` command imports the same
  models and data code; timed in fresh interpreters,
  alternated with the same import plus timm (what a worker loaded before mixerlab stopped
  importing timm for its own models: timm loads torchvision and torch._dynamo).

    python benchmarks/overheads.py [--quick]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from figures import Context, figure, standalone

from mixerlab.checkpoint import save_state
from mixerlab.config import ModelConfig
from mixerlab.measure import benchmark_inference
from mixerlab.models import create_model

ITEM = "overheads"
MODEL = ModelConfig(mixer="attention", patch_size=4, depth=4, width=64)


def _state(model) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(8, 1, 28, 28)
    torch.nn.functional.cross_entropy(model(x), torch.randint(0, 10, (8,))).backward()
    opt.step()  # so the optimizer holds its two moments, as after an epoch
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "history": [], "epoch": 1}


def _trial(config: dict) -> None:
    """A Tune function trial: ``n`` reports with a checkpoint, ``n`` without, timed inside."""
    from ray import tune

    torch.set_num_threads(1)
    state = _state(create_model(MODEL))
    times = {"with": [], "without": []}
    for i in range(2 * config["n"]):
        kind = "with" if i % 2 == 0 else "without"  # alternated: drift falls on both
        t0 = time.perf_counter()
        if kind == "with":
            with tempfile.TemporaryDirectory() as d:
                save_state(state, Path(d) / "state.pt")
                tune.report({"i": i}, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report({"i": i})
        times[kind].append(time.perf_counter() - t0)
    tune.report({"done": 1, "with_s": statistics.median(times["with"]),
                 "without_s": statistics.median(times["without"])})


def _import_s(extra: str) -> float:
    """Seconds a fresh interpreter takes to import the trainable (and ``extra``)."""
    code = ("import time; t = time.perf_counter(); import mixerlab.sweep.trainable" + extra +
            "; print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def worker_imports(n: int) -> tuple[float, float]:
    """(median import time of the trainable, the same with timm), ``n`` of each, alternated."""
    now, before = [], []
    for _ in range(n):
        now.append(_import_s(""))
        before.append(_import_s("; import timm"))
    return statistics.median(now), statistics.median(before)


def run(ctx: Context) -> list[dict]:
    import ray
    from ray import tune

    n = 3 if ctx.quick else 10
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray_start = time.perf_counter() - t0
    try:
        with tempfile.TemporaryDirectory() as storage:
            grid = tune.Tuner(tune.with_resources(_trial, {"cpu": 1}), param_space={"n": n},
                              run_config=tune.RunConfig(storage_path=storage, verbose=0,
                                                        checkpoint_config=tune.CheckpointConfig(num_to_keep=1))).fit()
            res = grid[0].metrics
    finally:
        t0 = time.perf_counter()
        ray.shutdown()
        ray_stop = time.perf_counter() - t0
    ckpt = res["with_s"] - res["without_s"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = create_model(MODEL)
    t0 = time.perf_counter()
    benchmark_inference(model, (1, 28, 28), batch_size=256, warmup=2, repeats=5, iters=2,
                        channels_last=True)  # as train.py calls it
    infer = time.perf_counter() - t0
    torch.set_num_threads(threads)
    imports, with_timm = worker_imports(1 if ctx.quick else 7)
    state_mb = sum(t.numel() * t.element_size() for t in _state(model)["model"].values()) * 3 / 1e6
    note = "attention p4 d4 w64 (the quick study's slowest model), 1 thread"
    return [figure(ITEM, "Ray start-up and shutdown (once per session)", ray_start + ray_stop, "s",
                   f"ray.init {ray_start:.1f} s + shutdown {ray_stop:.1f} s, embedded local Ray"),
            figure(ITEM, "a checkpoint: save + tune.report(checkpoint) - tune.report", ckpt, "s",
                   f"median of {n} each, alternated, one real Tune trial; ~{state_mb:.1f} MB of state; {note}"),
            figure(ITEM, "tune.report without checkpoint", res["without_s"], "s", f"median of {n}"),
            figure(ITEM, "inference timing after training", infer, "s",
                   f"measure.benchmark_inference as train.py calls it; {note}"),
            figure(ITEM, "a trial worker's imports", imports, "s",
                   f"fresh interpreter, import mixerlab.sweep.trainable; with timm as well {with_timm:.2f} s "
                   f"({with_timm / imports:.2f}x); medians, alternated")]


def main() -> None:
    standalone(__doc__.splitlines()[0], ITEM, run)


if __name__ == "__main__":
    main()
