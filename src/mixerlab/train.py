"""``train(config) -> record``: train and evaluate one model configuration, without Ray.

The sweep engine only fans this function out. It reports each epoch through ``on_epoch``
and resumes from ``checkpoint.load()``, so a killed trial continues from its last epoch.

Reproducibility: every random stream of an epoch (data order, augmentation, mixup) is
seeded from ``(seed, epoch)``, so on CPU the same config and seed give bit-identical
metrics, and resuming at an epoch boundary gives exactly the uninterrupted result. On
CUDA, cuDNN autotuning and atomic adds in some backward kernels make runs close but not
bit-identical.

A budget ladder (``train.budgets``, ``schedule: wsd``) is one trial: the main branch trains
to the largest budget; at each smaller budget's cool-down start it saves the stable state,
trains that budget's cool-down branch, evaluates it as a trial's end is evaluated (precise BN
where asked, validation, test, speed), keeps its record (a *rung*), loads the stable state
back and goes on. As each epoch is seeded from ``(seed, epoch)`` and WSD does not depend on
the budget before its cool-down, a rung is the run a trial of that budget alone would have
been (bit-identical on CPU): the ladder only saves the shared stable epochs. Resuming: the
epoch checkpoint carries the rungs so far (``rungs_json``) and, inside a branch, its budget and
the stable state to return to (``branch``); a checkpoint is saved as soon as a rung is
recorded, so a kill anywhere (main branch or branch) loses and repeats nothing.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mixerlab import execution, measure, provenance, record
from mixerlab.config import TrialConfig
from mixerlab.data import Dataset, DeviceLoader, open_data
from mixerlab.data.base import TrialLoaders
from mixerlab.models import create_model
from mixerlab.precise_bn import recompute_bn_stats
from mixerlab.record import Measured, Outcome
from mixerlab.schedule import make_scheduler, set_budget

OnEpoch = Callable[[dict, dict], None]  # (epoch metrics, resumable state); a ladder's rungs too


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def _epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    return (seed * 1_000_003 + epoch + stream) % 2**31


def _reseed(seed: int, epoch: int) -> torch.Generator:
    s = _epoch_seed(seed, epoch)
    torch.manual_seed(s)
    np.random.seed(s)  # timm's Mixup draws from numpy
    random.seed(s)
    return torch.Generator().manual_seed(s)


def _bn_generator(seed: int, epoch: int) -> torch.Generator:
    """The draw of training batches precise BN reads after ``epoch``: its own stream, apart
    from the epochs' (and the global generators untouched), so a trial with it trains on
    the batches a trial without it trains on."""
    return torch.Generator().manual_seed(_epoch_seed(seed, epoch, stream=500_009))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(model, loader: DeviceLoader, amp) -> tuple[float, float]:
    """(accuracy %, mean cross-entropy) over a loader."""
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in loader:
        with amp:
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        n += len(y)
    return (100.0 * correct / n, loss_sum / n) if n else (float("nan"), float("nan"))


def train(cfg: TrialConfig, *, data: Dataset | None = None, on_epoch: OnEpoch | None = None,
          checkpoint=None) -> dict:
    """Train ``cfg`` and return one flat, complete result record (see docs/results-schema.md);
    a budget ladder's holds its smaller budgets' records in ``rungs`` (mixerlab/record.py).

    ``data``: a loaded data set (sweeps load it once), in memory or streamed
    (:class:`~mixerlab.data.stream.StreamData`): both answer ``for_trial`` and ``loaders``, so
    nothing here depends on which; opened from ``cfg.data`` otherwise, on the path
    :func:`~mixerlab.data.path.open_data` chooses.
    ``checkpoint``: anything with ``load() -> state | None`` to resume from.
    Divergence and out-of-memory end the trial early with status ``diverged``/``oom``; the
    record is still complete.
    """
    started, t_start = provenance.now(), time.perf_counter()
    # The code this process trains with: read once, now, not when the record is written, so
    # a commit made while a long trial runs is not credited with it.
    versions = provenance.versions()
    run = _setup(cfg, data)
    run.stamp = dict(versions=versions, started=started, t_start=t_start)
    outcome, rungs = _loop(run, on_epoch, checkpoint.load() if checkpoint is not None else None)
    rec = _record(run, outcome, run.cfg.train.epochs)
    return rec if rungs is None else record.with_rungs(rec, rungs)


def _record(run: _Run, outcome: Outcome, budget: int) -> dict:
    """The record of ``outcome`` as a run of ``budget`` epochs, evaluated on the weights
    ``run`` holds now (a ladder's smaller budget: its row's ``epochs`` is that budget)."""
    cfg = run.cfg
    if budget != cfg.train.epochs:  # model_copy: the ladder's rule is the whole trial's
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": budget})})
    return record.trained(cfg, run.data, outcome, _evaluate(run, outcome), columns=run.loaders.columns, **run.stamp)


@dataclass
class _Run:
    """Everything a trial trains with, built by :func:`_setup`."""

    cfg: TrialConfig  # with the model's shapes set from the data
    data: object
    device: torch.device
    how: execution.Execution
    model: torch.nn.Module
    step_model: torch.nn.Module  # ``model``, compiled where asked (CUDA)
    loaders: TrialLoaders
    opt: torch.optim.Optimizer
    sched: object
    ema: object = None  # timm's ModelEmaV3 where the recipe asks for it
    mixup: object = None  # timm's Mixup where the recipe asks for it
    criterion: object = None
    counts: dict | None = None
    stamp: dict = field(default_factory=dict)  # versions, start time: record.trained's keywords

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def amp(self):
        return self.how.autocast(self.device)


def _setup(cfg: TrialConfig, data) -> _Run:
    """The trial's data, model, way of running, loaders and optimiser."""
    t, device = cfg.train, pick_device(cfg.train.device)
    measure.reset_peak_memory(device)
    if t.threads and device.type == "cpu":
        torch.set_num_threads(t.threads)
    data = (data if data is not None else open_data(cfg.data)).for_trial(cfg.data, cfg.seed)
    # The data set fixes the input and output shapes the model is built for.
    mcfg = cfg.model.model_copy(update=dict(image_size=data.image_size, in_chans=data.in_chans,
                                            num_classes=data.num_classes))
    cfg = cfg.model_copy(update={"model": mcfg})
    torch.manual_seed(cfg.seed)
    model = create_model(mcfg).to(device)
    counts = measure.count_params(model)
    counts.update(measure.count_flops(model, (data.in_chans, data.image_size, data.image_size), device))
    # How it runs: the sweep's measured choice, or as every trial ran before there was one.
    how = execution.of_trial(t, device)
    model = how.prepare(model)
    step_model = torch.compile(model) if (t.compile and device.type == "cuda") else model
    loaders = data.loaders(cfg.data, t.batch_size, t.eval_batch_size, device=device,
                           channels_last=how.channels_last, cpus=t.threads or torch.get_num_threads())
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = make_scheduler(opt, t, steps_per_epoch=len(loaders.train))
    run = _Run(cfg, data, device, how, model, step_model, loaders, opt, sched, counts=counts)
    _recipe(run)
    return run


def _recipe(run: _Run) -> None:
    """The recipe's EMA, Mixup / CutMix and loss. timm is imported only when a recipe asks for
    its EMA or Mixup: importing it loads torchvision and torch._dynamo, about half of a trial
    worker's start-up (models/reference.py, ``_timm``)."""
    t = run.cfg.train
    if t.ema:
        from timm.utils import ModelEmaV3
        run.ema = ModelEmaV3(run.model, decay=t.ema)
    if t.mixup or t.cutmix:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy
        run.mixup = Mixup(mixup_alpha=t.mixup, cutmix_alpha=t.cutmix, label_smoothing=t.label_smoothing,
                          num_classes=run.data.num_classes)
        run.criterion = SoftTargetCrossEntropy()
    else:
        run.criterion = torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)


@dataclass
class _Ladder:
    """A budget ladder under way: the rungs recorded so far (one record per smaller budget)
    and, inside a branch, its budget, where it is (``position``: the branch's outcome so far)
    and the main branch's stable state to go back to."""

    starts: dict[int, int]  # each smaller budget -> its cool-down start (where it branches off)
    rungs: list[dict] = field(default_factory=list)
    branch: int | None = None
    stable: dict | None = None
    position: Outcome | None = None

    def due(self, epoch: int) -> list[int]:
        """The budgets whose branch starts at ``epoch`` and has no rung yet, smallest first."""
        done = {r["epochs"] for r in self.rungs}
        return [b for b, start in self.starts.items() if start == epoch and b not in done]

    def begin(self, budget: int, run: _Run, out: Outcome) -> None:
        """Branch off for ``budget`` from the state ``run`` holds now (a copy is kept)."""
        self.branch, self.stable = budget, copy.deepcopy(_state(run, out))
        self.position = Outcome(history=list(out.history), train_time=out.train_time,
                                resumed_from=out.resumed_from)

    def state(self) -> dict:
        """What the epoch checkpoint adds for the ladder: the rungs, and the branch if in one."""
        extra = {"rungs_json": json.dumps(self.rungs, default=str)}
        if self.branch is not None:
            extra["branch"] = {"budget": self.branch, "stable": self.stable}
        return extra


def _state(run: _Run, out: Outcome) -> dict:
    """The resumable state after ``out``'s last epoch (live tensors: saved or copied at once)."""
    return {"model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(), "ema": run.ema.state_dict() if run.ema else None,
            "history": out.history, "epoch": len(out.history), "train_time_s": out.train_time}


def _load(run: _Run, state: dict) -> None:
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])


def _restore(run: _Run, state: dict | None) -> tuple[Outcome, _Ladder | None]:
    """The outcome so far: empty, or the checkpoint's (its weights loaded into ``run``); and a
    ladder's progress (None without a ladder). A checkpoint taken inside a branch holds the
    branch's weights and where it was; the main branch's outcome is then its stable state's."""
    t = run.cfg.train
    lad = _Ladder({b: t.cooldown_start(b) for b in t.ladder[:-1]}) if t.budgets else None
    if not state:
        return Outcome(), lad
    _load(run, state)
    now = Outcome(history=state["history"], train_time=state["train_time_s"], resumed_from=state["epoch"])
    if lad is None:
        return now, None
    lad.rungs = json.loads(state.get("rungs_json", "[]"))
    if "branch" not in state:
        return now, lad
    stable = state["branch"]["stable"]
    lad.branch, lad.stable, lad.position = state["branch"]["budget"], stable, now
    return Outcome(history=stable["history"], train_time=stable["train_time_s"],
                   resumed_from=stable["epoch"]), lad


def _loop(run: _Run, on_epoch: OnEpoch | None, state: dict | None) -> tuple[Outcome, list[dict] | None]:
    """Train from where ``state`` left off to the last epoch, reporting each epoch, with a
    ladder's branches on the way (:func:`_branch`); divergence and out-of-memory end it early,
    as the outcome's status. Returns the outcome and a ladder's rungs (None without one)."""
    out, lad = _restore(run, state)
    extra = lad.state if lad is not None else dict
    try:
        if lad is not None and lad.branch is not None:  # killed inside a branch: finish it first
            _branch(run, out, lad, on_epoch)
        for epoch in range(out.resumed_from, run.cfg.train.epochs):
            for budget in lad.due(epoch) if lad is not None else ():
                lad.begin(budget, run, out)
                _branch(run, out, lad, on_epoch)
            _train(run, out, epoch + 1, on_epoch, extra)
    except (Diverged, torch.OutOfMemoryError) as err:
        _ended(run, out, err)
    if lad is None:
        return out, None
    for budget in set(lad.starts) - {r["epochs"] for r in lad.rungs}:  # the main branch ended
        lad.rungs.append(_record(run, out, budget))  # before its branch: that run ends so too
    return out, lad.rungs


def _train(run: _Run, out: Outcome, stop: int, on_epoch: OnEpoch | None, extra) -> None:
    """Epochs from ``out``'s last to ``stop``, each appended to ``out`` and reported with the
    state to resume from (``extra()``: what a ladder adds to it)."""
    for epoch in range(len(out.history), stop):
        row = _epoch(run, epoch)
        out.train_time += row["epoch_time_s"]
        out.history.append(row)
        if on_epoch is not None:
            on_epoch(row, {**_state(run, out), **extra()})


def _ended(run: _Run, out: Outcome, err: BaseException) -> None:
    """Divergence or out-of-memory, as ``out``'s status."""
    if isinstance(err, Diverged):
        out.status, out.error = "diverged", str(err)
        return
    out.status, out.error = "oom", f"out of memory: {str(err).splitlines()[0] if str(err) else 'OutOfMemoryError'}"
    if run.device.type == "cuda":
        torch.cuda.empty_cache()


def _branch(run: _Run, out: Outcome, lad: _Ladder, on_epoch: OnEpoch | None) -> None:
    """The cool-down branch of ``lad.branch`` from where it stands (``lad.position``): trained
    to its budget, evaluated and recorded as a rung; then the main branch's stable state is
    loaded back and checkpointed with the new rung, so a kill from here on repeats nothing.
    Divergence or out-of-memory in a branch ends that rung only."""
    budget, here = lad.branch, lad.position
    set_budget(run.sched, budget)
    try:
        _train(run, here, budget, on_epoch, lad.state)
    except (Diverged, torch.OutOfMemoryError) as err:
        _ended(run, here, err)
    rung = _record(run, here, budget)
    lad.rungs.append(rung)
    _load(run, lad.stable)  # its scheduler state points the schedule back at the main budget
    set_budget(run.sched, run.cfg.train.epochs)
    lad.branch = lad.stable = lad.position = None
    if on_epoch is not None:  # the rung's last epoch row, with its budget and test accuracy
        row = {**(here.history[-1] if here.history else {}), "epoch": len(out.history),
               "budget": budget, "test_acc": rung["test_acc"]}
        on_epoch(row, {**_state(run, out), **lad.state()})


def _epoch(run: _Run, epoch: int) -> dict:
    """One epoch of training, then its validation: the history row."""
    t, device, loader = run.cfg.train, run.device, run.loaders.train
    loader.generator = _reseed(run.cfg.seed, epoch)
    run.model.train()
    check_every = 20 if device.type == "cuda" else 1  # a NaN check syncs the GPU: not every step there
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for i, (x, y) in enumerate(loader):
        target = y
        if run.mixup:
            x, target = run.mixup(x, y)
        with run.amp:
            logits = run.step_model(x)
            loss = run.criterion(logits, target)
        if i % check_every == 0 and not torch.isfinite(loss).item():
            raise Diverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}")
        _step(run, loss)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(-1) == y).sum()
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    epoch_time = time.perf_counter() - t0
    train_loss = loss_sum.item() / seen
    if not math.isfinite(train_loss):
        raise Diverged(f"loss became {train_loss} at epoch {epoch + 1}")
    if t.precise_bn:  # after the epoch's timing: evaluation, not training
        loader.generator = _bn_generator(run.cfg.seed, epoch)
        recompute_bn_stats(run.eval_model, itertools.islice(
            loader, math.ceil(t.precise_bn / t.batch_size)), run.amp)
    val_acc, val_loss = evaluate(run.eval_model, run.loaders.val, run.amp)
    return dict(epoch=epoch + 1, train_loss=train_loss, train_acc=100.0 * correct.item() / seen,
                val_loss=val_loss, val_acc=val_acc, lr=run.opt.param_groups[0]["lr"],
                epoch_time_s=epoch_time, images_per_s=seen / epoch_time)


def _step(run: _Run, loss: torch.Tensor) -> None:
    """One optimiser step: gradients, clipping, update, schedule, EMA."""
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.train.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.train.grad_clip)
    run.opt.step()
    run.sched.step()
    if run.ema is not None:
        run.ema.update(run.model)


def _evaluate(run: _Run, outcome: Outcome) -> Measured:
    """Test accuracy and inference speed of a trial that finished (NaN for one that did not),
    its peak memory and where it ran."""
    model, device, how, data = run.eval_model, run.device, run.how, run.data
    ok = outcome.status == "ok"
    test = evaluate(model, run.loaders.test, run.amp) if ok else (float("nan"), float("nan"))
    throughput = (float("nan"), float("nan"))
    if run.cfg.train.measure_throughput and ok:
        bench = measure.benchmark_inference(model, (data.in_chans, data.image_size, data.image_size),
                                            batch_size=256, device=device, warmup=2, repeats=5,
                                            iters=2, dtype=how.dtype, channels_last=how.channels_last)
        throughput = (bench["infer_images_per_s"], bench["infer_images_per_s_iqr"])
    where = dict(device=device.type, device_name=provenance.device_name(device),
                 threads=torch.get_num_threads())
    return Measured(counts=run.counts, test=test, throughput=throughput,
                    memory=measure.peak_memory(device), device=where)
