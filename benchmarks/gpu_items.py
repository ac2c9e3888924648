"""The items of the GPU check (``gpu_check.py``): each ``item(ctx) -> DataFrame``, one tidy
table whose GPU columns read ``not measured`` in the CPU dry mode.

* ``correctness``: quick.yaml's conv, attention and mlp models (patch 4, depth 4, width 64)
  from ``mixerlab.models.create_model``: a forward pass and one training step (the recipe's
  loss and AdamW) on the GPU against the CPU from the same weights and batch, TF32 off so
  both compute in float32; then a 1-epoch ``mixerlab.train.train`` trial of each on the same
  seed, images and way (fp32, channels_last) on both devices, test accuracy side by side.
* ``throughput``: the README recipe model (``ModelConfig()``: conv, patch 2, depth 6, width
  64; batch 128) timed by the execution chooser itself (``execution_choice.choose``: fp32 and bf16
  autocast, both layouts), then ``torch.compile`` of the chosen way against its eager self
  and eager fp32 channels_last, in turns with the chooser's loop (``time_in_turns``).
* ``packing``: 1, 2, 4 and 8 trials of quick.yaml's conv p4 model (seeds of one
  configuration) on one GPU through a real ``mixerlab sweep`` with ``resources.gpu`` 1/n.
* ``quick``: ``ablations/quick.yaml`` (24 trials) on the GPU, ``resources.gpu`` 1/8: the
  dry run's estimate, then the real sweep's wall time.
"""

from __future__ import annotations

import copy
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pandas as pd
import torch
import yaml
from gpu_carry import KEPT

from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from mixerlab.execution import Execution, ExecutionPins
from mixerlab.execution_choice import choose, train_step
from mixerlab.measure import time_in_turns
from mixerlab.models import create_model

NOT_MEASURED = "not measured"
ROOT = Path(__file__).resolve().parent.parent
MIXERS = ("conv", "attention", "mlp")
PACKS = (1, 2, 4, 8)
FP32 = Execution(precision="fp32", channels_last=True, how="pinned")  # the engine's default way
# Relative error ||gpu - cpu|| / ||cpu|| allowed, by what is compared. float32 against float32
# with TF32 off lands far under 1e-4 (different kernels, same precision: /work/.library/device/
# METHOD.md); gradients sum over the batch in another order; AdamW's first step is about
# lr * sign(g), so an element whose gradient is rounding noise can flip: the update is judged
# as a whole, loosely; bf16 operands land between 1e-3 and 1e-2.
TOLERANCE = {"forward": 1e-4, "loss": 1e-4, "gradients": 1e-3, "update (AdamW step)": 1e-2,
             "forward, bf16 autocast vs fp32": 5e-2}
ACC_TOLERANCE = 1.0  # points of test accuracy: a sanity bound for one epoch, not a test


@dataclass
class Ctx:
    """What every item gets: the mode, where files and logs go, the time left."""

    out: Path
    tmp: Path
    dry: bool
    deadline: float  # time.perf_counter() by which the whole check should be done
    log: TextIO
    pack_target_s: float = 5.0  # seconds of training of one packed trial alone (sets epochs)
    quick_gpu: float = 0.125  # resources.gpu of the quick study: 8 trials on the GPU at once

    @property
    def device(self) -> torch.device:
        return torch.device("cpu" if self.dry else "cuda")

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()


def quick_model(mixer: str) -> ModelConfig:
    """quick.yaml's model of ``mixer`` at patch 4."""
    return ModelConfig(mixer=mixer, patch_size=4, depth=4, width=64)


def data_config(ctx: Ctx) -> DataConfig:
    """The images every GPU item trains on (what ``gpu_carry.py`` keeps); in the dry mode a
    few hundred synthetic ones, so that it stays well under a minute on a busy 2-core CPU."""
    if ctx.dry:
        return DataConfig(name="synthetic", synthetic_size=64)
    return DataConfig(name="fashion-mnist", **KEPT)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


# ---- correctness ------------------------------------------------------------------------------

def step_outputs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                 ex: Execution) -> dict[str, torch.Tensor]:
    """A forward pass (eval) and one training step (recipe loss, AdamW) of a copy of
    ``model`` on ``device``, run ``ex``: every result on the CPU, in float32."""
    t = TrainConfig()
    model = ex.prepare(copy.deepcopy(model).to(device))
    x = x.to(device).contiguous(memory_format=torch.channels_last if ex.channels_last
                                else torch.contiguous_format)
    y = y.to(device)
    model.eval()
    with torch.no_grad(), ex.autocast(device):
        forward = model(x).float()
    model.train()
    before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    with ex.autocast(device):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y, label_smoothing=t.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    opt.step()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return {"forward": forward.cpu(), "loss": loss.detach().reshape(1).cpu(),
            "gradients": grads.cpu(), "update (AdamW step)": (after - before).cpu()}


def _verdict(rel: float, tol: float) -> str:
    return "pass" if math.isfinite(rel) and rel <= tol else "FAIL"


def step_rows(mixer: str, ctx: Ctx) -> list[dict]:
    """GPU against CPU for one mixer's forward pass and training step."""
    torch.manual_seed(0)
    model = create_model(quick_model(mixer))
    g = torch.Generator().manual_seed(1)
    n = 16 if ctx.dry else 64  # images in the batch
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    ref = step_outputs(model, x, y, torch.device("cpu"), FP32)
    got = None if ctx.dry else step_outputs(model, x, y, ctx.device, FP32)
    bf16 = None if ctx.dry else step_outputs(model, x, y, ctx.device, FP32.model_copy(
        update={"precision": "bf16"}))["forward"]
    rows = []
    for check, tol in TOLERANCE.items():
        cpu = ref["forward" if check.startswith("forward") else check]
        gpu = None if ctx.dry else (bf16 if "bf16" in check else got[check])
        rel = NOT_MEASURED if gpu is None else _rel(gpu, cpu)
        rows.append({"mixer": mixer, "check": check, "cpu": float(cpu.norm()),
                     "gpu": NOT_MEASURED if gpu is None else float(gpu.norm()), "rel_diff": rel,
                     "tolerance": tol, "result": NOT_MEASURED if gpu is None else _verdict(rel, tol)})
    return rows


def trial_rows(mixer: str, data, ctx: Ctx) -> list[dict]:
    """A 1-epoch ``train()`` trial on each device: same seed, images and way."""
    from mixerlab.train import train

    def run(device: str) -> dict:
        cfg = TrialConfig(model=quick_model(mixer), data=data_config(ctx), seed=0, train=TrainConfig(
            epochs=1, batch_size=16 if ctx.dry else TrainConfig().batch_size, device=device,
            measure_throughput=False, execution=FP32))
        return train(cfg, data=data)

    cpu = run("cpu")
    gpu = None if ctx.dry else run(str(ctx.device))
    diff = NOT_MEASURED if gpu is None else gpu["test_acc"] - cpu["test_acc"]
    note = (f"{cpu['train_images_per_s']:,.0f} images/s on the CPU" +
            ("" if gpu is None else f", {gpu['train_images_per_s']:,.0f} on the GPU"))
    return [{"mixer": mixer, "check": "test accuracy after 1 epoch (train())", "cpu": cpu["test_acc"],
             "gpu": NOT_MEASURED if gpu is None else gpu["test_acc"], "rel_diff": diff,
             "tolerance": ACC_TOLERANCE,
             "result": NOT_MEASURED if gpu is None else _verdict(abs(diff), ACC_TOLERANCE),
             "note": note}]


def blank_images(data) -> int:
    """Training and validation images that are all zero: a sign of images the carried,
    masked Fashion-MNIST (gpu_carry.py) does not hold, i.e. of settings other than ``KEPT``."""
    return int(sum((x.flatten(1).amax(1) == 0).sum() for x in (data.train_x, data.val_x)))


def correctness(ctx: Ctx) -> pd.DataFrame:
    from mixerlab.data import open_data

    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        rows = [r for mixer in MIXERS for r in step_rows(mixer, ctx)]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    data = open_data(data_config(ctx))
    blank = 0 if ctx.dry else blank_images(data)
    if blank:
        raise RuntimeError(f"{blank} training/validation images are blank: the data set is the "
                           f"masked carry of gpu_carry.py and these settings read other images")
    rows += [r for mixer in MIXERS for r in trial_rows(mixer, data, ctx)]
    return pd.DataFrame(rows)


# ---- throughput -------------------------------------------------------------------------------

def _row(figure: str, way: str, rate, base, note: str = "") -> dict:
    measured = isinstance(rate, float)
    return {"figure": figure, "way": way, "images_per_s": rate if measured else NOT_MEASURED,
            "vs_fp32_channels_last": rate / base if measured and base else NOT_MEASURED, "note": note}


def throughput(ctx: Ctx) -> pd.DataFrame:
    cfg, batch = ModelConfig(), TrainConfig().batch_size
    shape = f"recipe model: conv, patch 2, depth 6, width 64, batch {batch}"
    if ctx.dry:
        return pd.DataFrame([_row(f, NOT_MEASURED, None, None, shape) for f in
                             ("fp32", "bf16 autocast", "torch.compile", "chosen by execution_choice.choose")])
    way, rates = choose(cfg, batch, ExecutionPins(), ctx.device)
    base = rates.get("fp32 channels_last")
    best = {p: max((r, lab) for lab, r in rates.items() if lab.startswith(p)) for p in ("fp32", "bf16")
            if any(lab.startswith(p) for lab in rates)}
    rows = [_row(f"candidate ({'chosen' if lab == way.label else 'timed'})", lab, r, base,
                 "execution_choice.choose's own rate (median of its rounds)") for lab, r in rates.items()]
    rows += [_row(name, best[p][1], best[p][0], base, "the best layout, execution_choice.choose") if p in best
             else _row(name, NOT_MEASURED, None, None, "not a candidate here (execution_choice.candidates)")
             for p, name in (("fp32", "fp32"), ("bf16", "bf16 autocast"))]
    rows.append(_row("chosen by execution_choice.choose", way.label, rates[way.label], base, shape))
    rows += compiled_rows(cfg, batch, way, ctx)
    return pd.DataFrame(rows)


def compiled_rows(cfg: ModelConfig, batch: int, way: Execution, ctx: Ctx) -> list[dict]:
    """``torch.compile`` of the chosen way beside its eager self and eager fp32 channels_last,
    all timed in turns (``time_in_turns``, the chooser's loop). One compilation only: it
    takes tens of seconds of the budget."""
    torch.manual_seed(0)
    base_model = create_model(cfg)
    by_label = {FP32.label: FP32, way.label: way}  # FP32 first: the base of the ratios
    named = [("eager", label) for label in by_label] + [("torch.compile", way.label)]
    steps, kept, rows = [], [], []
    for kind, label in named:
        ex = by_label[label]
        model = ex.prepare(copy.deepcopy(base_model).to(ctx.device))
        step = train_step(torch.compile(model) if kind == "torch.compile" else model, cfg, batch,
                          ex, ctx.device)
        t0 = time.perf_counter()
        try:
            step()  # compiles, for a compiled step
        except Exception as err:  # a missing compiler must not cost the eager figures
            rows.append(_row(kind, label, None, None,
                             f"FAILED: {type(err).__name__}: {str(err).splitlines()[0][:200]}"))
            continue
        ctx.say(f"  {kind} {label}: first step {time.perf_counter() - t0:.1f} s")
        steps.append(step)
        kept.append((kind, label))
    times = time_in_turns(steps, ctx.device, rounds=5, block=10, warmup=2)
    rates = [batch / statistics.median(t) for t in times]
    base = rates[0]
    eager = {label: r for (kind, label), r in zip(kept, rates) if kind == "eager"}
    for (kind, label), r in zip(kept, rates):
        if kind == "torch.compile":
            rows.append(_row(kind, label, r, base, f"{r / eager[label]:.2f}x its eager way; median "
                             "of 5 rounds of 10 steps, in turns with the eager ways"))
    return rows


# ---- sweeps: packing and quick ----------------------------------------------------------------

def write_spec(spec: dict, ctx: Ctx) -> Path:
    """``spec`` as ``<tmp>/specs/<name>.yaml`` (never into ablations/)."""
    path = ctx.tmp / "specs" / f"{spec['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def planned_trials(spec: dict, ctx: Ctx) -> list:
    """The trials ``mixerlab sweep`` would run for ``spec``, read and expanded as it reads
    them (Fashion-MNIST's shape; no data loaded): the dry mode's check of a generated spec."""
    from mixerlab.sweep import expand, load_spec

    path = write_spec(spec, ctx)
    return expand(load_spec(path), (28, 1, 10), where=str(path)).trials


def sweep(spec: dict, ctx: Ctx, *, dry_run: bool = False, timeout: float = 600) -> tuple[float, str]:
    """``mixerlab sweep`` (or ``--dry-run``) of ``spec`` written under ``ctx.tmp``: (wall time
    of the whole command, its stdout). Its output goes to the log; past ``timeout`` seconds it
    is interrupted (SIGINT, as a batch system would), then killed."""
    path = write_spec(spec, ctx)
    cmd = [sys.executable, "-m", "mixerlab", "sweep", str(path), "--results", str(ctx.tmp / "sweeps")]
    cmd += ["--dry-run"] if dry_run else []
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    ctx.say(f"$ {' '.join(cmd)}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=ctx.log, text=True, env=env,
                            cwd=ROOT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        ctx.log.write(out)
        _log_tail(spec["name"], ctx)
        raise TimeoutError(f"{spec['name']}: stopped after {timeout:.0f} s (the check's time budget)") from None
    wall = time.perf_counter() - t0
    ctx.log.write(out)
    ctx.log.flush()
    if proc.returncode not in (0, 1):  # 1: finished with trials pending (resumable)
        _log_tail(spec["name"], ctx)
        raise RuntimeError(f"{spec['name']}: mixerlab sweep exited {proc.returncode} (see log.txt)")
    return wall, out


def _log_tail(name: str, ctx: Ctx, lines: int = 60) -> None:
    """The end of the study's own logs (Ray's among them) into log.txt: the study folder is
    temporary, and log.txt is what comes back from the GPU machine."""
    for path in sorted((ctx.tmp / "sweeps" / name / "logs").glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        ctx.log.write(f"---- last {len(tail)} lines of {path.name} ({name}) ----\n" + "\n".join(tail) + "\n")
    ctx.log.flush()


def _errors(trials: pd.DataFrame) -> str:
    """The first error of the trials that did not finish ok, for a table's note."""
    bad = trials[trials["status"] != "ok"]
    if bad.empty:
        return ""
    return f"; {len(bad)} not ok, first: {bad['status'].iloc[0]}: {str(bad['error'].iloc[0])[:200]}"


def study_table(name: str, ctx: Ctx) -> pd.DataFrame:
    return pd.read_parquet(ctx.tmp / "sweeps" / name / "trials.parquet")


def packing_spec(n: int, epochs: int) -> dict:
    """n seeds of quick.yaml's conv p4 model, each with 1/n of the GPU, pinned to fp32
    channels_last (nothing to time before the trials: the figure is the packing)."""
    return {"name": f"gpu_pack_{n}", "question": f"How fast do {n} trials share one GPU?",
            "dataset": {"name": "fashion-mnist", **KEPT},
            "train": {"epochs": epochs, "batch_size": TrainConfig().batch_size},
            "model": quick_model("conv").model_dump(include={"mixer", "patch_size", "depth", "width"}),
            "seeds": n, "resources": {"cpu": 1, "gpu": round(1 / n, 4)},
            "execution": {"precision": "fp32", "memory_format": "channels_last",
                          "attention_kernel": "fused"}}


def _concurrency(trials: pd.DataFrame) -> float:
    """Trials running at once on average: their summed durations over the span they cover."""
    start, end = pd.to_datetime(trials["started_at"]), pd.to_datetime(trials["finished_at"])
    span = (end.max() - start.min()).total_seconds()
    return float(trials["trial_time_s"].sum() / span) if span > 0 else float("nan")


def packing(ctx: Ctx) -> pd.DataFrame:
    images = KEPT["train_subset"]
    if ctx.dry:
        rows = []
        for n in PACKS:  # the specs are checked as the sweep would read them
            spec = packing_spec(n, 1)
            got = len(planned_trials(spec, ctx))
            if got != n:
                raise RuntimeError(f"{spec['name']}: {got} trials planned, not {n}")
            rows.append({"trials": n, "gpu_per_trial": spec["resources"]["gpu"], "epochs": NOT_MEASURED,
                         "total_images_per_s": NOT_MEASURED, "vs_one_trial": NOT_MEASURED,
                         "per_trial_images_per_s": NOT_MEASURED, "concurrency": NOT_MEASURED,
                         "sweep_wall_s": NOT_MEASURED, "note": f"spec checked: {got} trial(s)"})
        return pd.DataFrame(rows)
    # Epochs so that one trial alone trains about pack_target_s: its step rate, timed now.
    cfg = quick_model("conv")
    torch.manual_seed(0)
    step = train_step(create_model(cfg), cfg, TrainConfig().batch_size, FP32, ctx.device)
    t = time_in_turns([step], ctx.device, rounds=3, block=10, warmup=3)[0]
    rate = TrainConfig().batch_size / statistics.median(t)
    epochs = max(1, min(30, round(ctx.pack_target_s * rate / images)))
    ctx.say(f"  packing: {rate:,.0f} training images/s alone (train_step): {epochs} epoch(s) a trial")
    rows, one = [], None
    for n in PACKS:
        spec = packing_spec(n, epochs)
        try:
            wall, _ = sweep(spec, ctx, timeout=min(ctx.left() - 60, 150))
            trials = study_table(spec["name"], ctx)
        except Exception as err:  # the packings measured so far still count
            rows.append({"trials": n, "gpu_per_trial": spec["resources"].get("gpu"), "epochs": epochs,
                         "note": f"FAILED: {type(err).__name__}: {err}"})
            if isinstance(err, TimeoutError):
                break
            continue
        ok = trials[trials["status"] == "ok"]
        total = float(ok["train_images_per_s"].sum())
        one = total if n == 1 else one
        rows.append({"trials": n, "gpu_per_trial": spec["resources"].get("gpu"), "epochs": epochs,
                     "total_images_per_s": total, "vs_one_trial": total / one if one else float("nan"),
                     "per_trial_images_per_s": float(ok["train_images_per_s"].mean()),
                     "concurrency": _concurrency(trials), "sweep_wall_s": wall,
                     "note": f"{len(ok)}/{n} trials ok{_errors(trials)}; total = sum of the trials' "
                             f"training images/s (each over its own training time); concurrency: "
                             f"trials at once on average over the sweep's trial span"})
        ctx.say(f"  {n} trial(s): {total:,.0f} images/s in all, {wall:.0f} s")
    return pd.DataFrame(rows)


def quick_spec(gpu: float) -> dict:
    """ablations/quick.yaml as it is, with a GPU share per trial (its one CPU each kept)."""
    spec = yaml.safe_load((ROOT / "ablations" / "quick.yaml").read_text())
    spec["name"] = "gpu_quick"
    spec["resources"] = {**spec.get("resources", {}), "gpu": gpu}
    return spec


ESTIMATE = re.compile(r"about ([\d,.]+) minutes of wall time with (\d+) trial")


def parse_estimate(text: str) -> tuple[float, int] | None:
    """(estimated wall seconds, trials at a time) from the dry run's cost line; None when the
    dry run made no estimate (a GPU spec on a machine without one)."""
    m = ESTIMATE.search(text)
    return (float(m.group(1).replace(",", "")) * 60, int(m.group(2))) if m else None


TRIAL_COLUMNS = ("variant", "patch_size", "seed", "status", "test_acc", "val_acc", "train_time_s",
                 "trial_time_s", "train_images_per_s", "precision", "channels_last",
                 "attention_kernel", "device_name", "started_at", "finished_at")
# The quick item's figures, in order: the dry run's, then the real sweep's.
QUICK_FIGURES = (("dry run (`mixerlab sweep --dry-run`), whole command", "s"),
                 ("dry run's estimate of the wall time", "s"),
                 ("real wall time (`mixerlab sweep`), whole command", "s"),
                 ("the sweep's own wall time (provenance.json)", "s"),
                 ("real / estimate", "ratio"), ("mean test accuracy", "%"))


def _figures(values: list, notes: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{"figure": f, "value": v, "unit": u, "note": n}
                         for (f, u), v, n in zip(QUICK_FIGURES, values, notes)])


def quick(ctx: Ctx) -> pd.DataFrame:
    spec = quick_spec(ctx.quick_gpu)
    if not ctx.dry:
        return quick_measured(spec, ctx)
    # The spec as the sweep reads it, and the trials it would run; none measured.
    planned = pd.DataFrame([{"variant": t.config.model.label, "patch_size": t.config.model.patch_size,
                             "seed": t.config.seed} for t in planned_trials(spec, ctx)])
    for c in TRIAL_COLUMNS[3:]:
        planned[c] = NOT_MEASURED
    planned.to_csv(ctx.out / "quick-trials.csv", index=False)
    return _figures([NOT_MEASURED] * 6, [f"{len(planned)} trials planned"] + [""] * 5)


def quick_measured(spec: dict, ctx: Ctx) -> pd.DataFrame:
    """The dry run's estimate on this GPU, then the real sweep: wall times and accuracy."""
    import json

    dry_note = "times each configuration on this GPU"
    try:
        dry_wall, text = sweep(spec, ctx, dry_run=True, timeout=min(ctx.left() - 90, 180))
    except Exception as err:  # the real sweep's time is worth having without an estimate
        dry_wall, text, dry_note = NOT_MEASURED, "", f"FAILED: {type(err).__name__}: {err}"
    est = parse_estimate(text)
    est_note = (f"{est[1]} trials at a time; the dry run prints minutes to 0.1 (+-3 s)" if est else
                "no estimate line in the dry run's output (log.txt)")
    try:
        wall, _ = sweep(spec, ctx, timeout=ctx.left() - 10)
        trials = study_table(spec["name"], ctx)
    except Exception as err:  # keep the dry run's figures
        why = f"FAILED: {type(err).__name__}: {err}"
        return _figures([dry_wall, est[0] if est else NOT_MEASURED] + [NOT_MEASURED] * 4,
                        [dry_note, est_note, why, "", "", ""])
    trials[[c for c in TRIAL_COLUMNS if c in trials]].to_csv(ctx.out / "quick-trials.csv", index=False)
    prov = json.loads((ctx.tmp / "sweeps" / spec["name"] / "provenance.json").read_text())
    ok = trials[trials["status"] == "ok"]
    own = prov["wall_time_s"]
    return _figures(
        [dry_wall, est[0] if est else NOT_MEASURED, wall, own, own / est[0] if est else NOT_MEASURED,
         float(ok["test_acc"].mean())],
        [dry_note, est_note,
         f"{len(ok)}/{len(trials)} trials ok{_errors(trials)}, resources.gpu {ctx.quick_gpu:g}",
         f"{prov['sessions'][-1]['concurrent_trials']} trials at a time",
         "the sweep's own wall time over the dry run's estimate; goal 0.75-1.25", _cpu_quick_note()])


def _cpu_quick_note() -> str:
    """The committed CPU run of quick.yaml's mean test accuracy, for comparison."""
    path = ROOT / "results" / "quick" / "trials.parquet"
    if not path.exists():
        return ""
    cpu = pd.read_parquet(path)
    return f"the committed CPU run (results/quick): {cpu['test_acc'].mean():.2f}% over {len(cpu)} trials"
