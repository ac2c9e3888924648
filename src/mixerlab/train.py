"""``train(config) -> record``: train and evaluate one model configuration, without Ray.

The sweep engine only fans this function out. It reports each epoch through ``on_epoch``
and resumes from ``checkpoint.load()``, so a killed trial continues from its last epoch.

Reproducibility: every random stream of an epoch (data order, augmentation, mixup) is
seeded from ``(seed, epoch)``, so on CPU the same config and seed give bit-identical
metrics, and resuming at an epoch boundary gives exactly the uninterrupted result. On
CUDA, cuDNN autotuning and atomic adds in some backward kernels make runs close but not
bit-identical.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

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
from mixerlab.schedule import make_scheduler

OnEpoch = Callable[[dict, dict], None]  # (epoch metrics, resumable state)


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
    """Train ``cfg`` and return one flat, complete result record (see docs/results-schema.md).

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
    outcome = _loop(run, on_epoch, checkpoint.load() if checkpoint is not None else None)
    measured = _evaluate(run, outcome)
    return record.trained(run.cfg, run.data, outcome, measured, versions=versions,
                          started=started, t_start=t_start, columns=run.loaders.columns)


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


def _restore(run: _Run, state: dict | None) -> Outcome:
    """The outcome so far: empty, or the checkpoint's (its weights loaded into ``run``)."""
    if not state:
        return Outcome()
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    return Outcome(history=state["history"], train_time=state["train_time_s"],
                   resumed_from=state["epoch"])


def _loop(run: _Run, on_epoch: OnEpoch | None, state: dict | None) -> Outcome:
    """Train from where ``state`` left off to the last epoch, reporting each epoch; divergence
    and out-of-memory end it early, as the outcome's status."""
    out = _restore(run, state)
    try:
        for epoch in range(out.resumed_from, run.cfg.train.epochs):
            row = _epoch(run, epoch)
            out.train_time += row["epoch_time_s"]
            out.history.append(row)
            if on_epoch is not None:
                on_epoch(row, {
                    "model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
                    "scheduler": run.sched.state_dict(),
                    "ema": run.ema.state_dict() if run.ema else None,
                    "history": out.history, "epoch": epoch + 1, "train_time_s": out.train_time,
                })
    except Diverged as err:
        out.status, out.error = "diverged", str(err)
    except torch.OutOfMemoryError as err:
        out.status, out.error = "oom", f"out of memory: {str(err).splitlines()[0] if str(err) else 'OutOfMemoryError'}"
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
    return out


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
