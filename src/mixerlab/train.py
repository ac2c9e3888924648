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

import numpy as np
import torch
import torch.nn.functional as F

from mixerlab import execution, measure, provenance
from mixerlab.config import HOW_FIELDS, ModelConfig, TrialConfig
from mixerlab.convergence import LATE_GAIN_KEY, late_gain
from mixerlab.data import Dataset, DeviceLoader, open_data, resized, split_for_seed
from mixerlab.data.path import STREAM_ONLY_FIELDS, is_streamed
from mixerlab.models import create_model, relevant_factors, uses_pos_embed
from mixerlab.precise_bn import recompute_bn_stats
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
    (:class:`~mixerlab.data.stream.StreamData`); opened from ``cfg.data`` otherwise, on the
    path :func:`~mixerlab.data.path.open_data` chooses.
    ``checkpoint``: anything with ``load() -> state | None`` to resume from.
    Divergence and out-of-memory end the trial early with status ``diverged``/``oom``; the
    record is still complete.
    """
    started, t_start = provenance.now(), time.perf_counter()
    # The code this process trains with: read now, not when the record is written, so a
    # commit made while a long trial runs is not credited with it.
    versions = provenance.versions()
    t, device = cfg.train, pick_device(cfg.train.device)
    measure.reset_peak_memory(device)
    if t.threads and device.type == "cpu":
        torch.set_num_threads(t.threads)
    data = data if data is not None else open_data(cfg.data)
    streamed = is_streamed(data)
    if streamed:
        data = data.for_trial(cfg.data, cfg.seed)  # its split and size; decoded per batch
    else:
        data = split_for_seed(data, cfg.data, cfg.seed)  # its own split with split_per_seed; else as is
        if cfg.data.image_size and cfg.data.image_size != data.image_size:
            data = resized(data, cfg.data.image_size)  # a sweep's shared data set, another size asked
    # The data set fixes the input and output shapes the model is built for.
    mcfg = cfg.model.model_copy(update=dict(image_size=data.image_size, in_chans=data.in_chans,
                                            num_classes=data.num_classes))
    cfg = cfg.model_copy(update={"model": mcfg})
    torch.manual_seed(cfg.seed)
    model = create_model(mcfg).to(device)
    counts = measure.count_params(model)
    counts.update(measure.count_flops(model, (data.in_chans, data.image_size, data.image_size), device))
    cuda = device.type == "cuda"
    # How it runs: the sweep's measured choice, or as every trial ran before there was one.
    how = t.execution or execution.legacy(t.channels_last, device)
    amp = how.autocast(device)
    model = how.prepare(model)
    step_model = torch.compile(model) if (t.compile and cuda) else model

    if streamed:
        workers, (train_loader, val_loader, test_loader) = _stream_loaders(cfg, data, device,
                                                                          how.channels_last)
    else:
        loader_kw = dict(mean=data.mean, std=data.std, device=device, channels_last=how.channels_last)
        train_loader = DeviceLoader(data.train_x, data.train_y, t.batch_size, train=True,
                                    crop_padding=data.crop_padding, flip=data.flip, **loader_kw)
        val_loader = DeviceLoader(data.val_x, data.val_y, t.eval_batch_size, train=False, **loader_kw)
        test_loader = DeviceLoader(data.test_x, data.test_y, t.eval_batch_size, train=False, **loader_kw)

    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = make_scheduler(opt, t, steps_per_epoch=len(train_loader))
    ema, mixup = None, None
    # timm is imported only when a recipe asks for its EMA or Mixup: importing it loads
    # torchvision and torch._dynamo, about half of a trial worker's start-up (models/reference.py, `_timm`).
    if t.ema:
        from timm.utils import ModelEmaV3
        ema = ModelEmaV3(model, decay=t.ema)
    if t.mixup or t.cutmix:
        from timm.data import Mixup
        mixup = Mixup(mixup_alpha=t.mixup, cutmix_alpha=t.cutmix, label_smoothing=t.label_smoothing,
                      num_classes=data.num_classes)
    if mixup:
        from timm.loss import SoftTargetCrossEntropy
        criterion = SoftTargetCrossEntropy()
    else:
        criterion = torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)

    history, start_epoch, train_time = [], 0, 0.0
    state = checkpoint.load() if checkpoint is not None else None
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history, start_epoch, train_time = state["history"], state["epoch"], state["train_time_s"]
    resumed_from = start_epoch  # evidence that a restart continued instead of starting over

    status, error = "ok", ""
    check_every = 20 if cuda else 1  # a NaN check syncs the GPU: not every step there
    try:
        for epoch in range(start_epoch, t.epochs):
            train_loader.generator = _reseed(cfg.seed, epoch)
            model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            for i, (x, y) in enumerate(train_loader):
                target = y
                if mixup:
                    x, target = mixup(x, y)
                with amp:
                    logits = step_model(x)
                    loss = criterion(logits, target)
                if i % check_every == 0 and not torch.isfinite(loss).item():
                    raise Diverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if t.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                opt.step()
                sched.step()
                if ema is not None:
                    ema.update(model)
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(-1) == y).sum()
                seen += len(y)
            if cuda:
                torch.cuda.synchronize(device)
            epoch_time = time.perf_counter() - t0
            train_time += epoch_time
            train_loss = loss_sum.item() / seen
            if not math.isfinite(train_loss):
                raise Diverged(f"loss became {train_loss} at epoch {epoch + 1}")
            eval_model = ema.module if ema is not None else model
            if t.precise_bn:  # after the epoch's timing: evaluation, not training
                train_loader.generator = _bn_generator(cfg.seed, epoch)
                recompute_bn_stats(eval_model, itertools.islice(
                    train_loader, math.ceil(t.precise_bn / t.batch_size)), amp)
            val_acc, val_loss = evaluate(eval_model, val_loader, amp)
            row = dict(epoch=epoch + 1, train_loss=train_loss, train_acc=100.0 * correct.item() / seen,
                       val_loss=val_loss, val_acc=val_acc, lr=opt.param_groups[0]["lr"],
                       epoch_time_s=epoch_time, images_per_s=seen / epoch_time)
            history.append(row)
            if on_epoch is not None:
                on_epoch(row, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "ema": ema.state_dict() if ema else None,
                    "history": history, "epoch": epoch + 1, "train_time_s": train_time,
                })
    except Diverged as err:
        status, error = "diverged", str(err)
    except torch.OutOfMemoryError as err:
        status, error = "oom", f"out of memory: {str(err).splitlines()[0] if str(err) else 'OutOfMemoryError'}"
        if cuda:
            torch.cuda.empty_cache()

    counts["resumed_from_epoch"] = resumed_from
    rec = _record(cfg, data, model if ema is None else ema.module, history, counts,
                  status=status, error=error, train_time=train_time, device=device,
                  how=how, test_loader=test_loader, started=started, t_start=t_start)
    rec.update({k: v for k, v in versions.items() if k in rec})
    if streamed:  # only here, so in-memory records keep their columns
        rec.update(data_path="stream", loader_workers=workers,
                   **{k: getattr(cfg.data, k) for k in STREAM_ONLY_FIELDS})
    return rec


def _stream_loaders(cfg: TrialConfig, data, device, channels_last: bool):
    """(workers, (train, val, test) loaders) of the streamed path. The workers share the
    trial's CPUs with the training step (sweep/resources.py: loader_workers), so the step
    keeps the rest of them as threads."""
    from mixerlab.data.stream_loader import stream_loaders
    from mixerlab.sweep.resources import loader_workers

    t = cfg.train
    workers = loader_workers(cfg.data.workers, t.threads or torch.get_num_threads())
    if device.type == "cpu" and workers:
        torch.set_num_threads(max(1, torch.get_num_threads() - workers))
    return workers, stream_loaders(data, cfg.data, data.image_size, t.batch_size,
                                   t.eval_batch_size, workers=workers, device=device,
                                   channels_last=channels_last)


def best_epoch(history: list[dict]) -> dict:
    """The history row with the highest finite validation accuracy ({} for no history)."""
    return max(history, key=lambda r: r["val_acc"] if math.isfinite(r["val_acc"]) else -1, default={})


def _record(cfg, data, model, history, counts, *, status, error, train_time, device, how,
            test_loader, started, t_start) -> dict:
    t, m = cfg.train, cfg.model
    rec = dict(trial_id="", study="", status=status, error=error, variant=m.label)
    rec.update(m.model_dump())
    kept = {"model", "image_size", "in_chans", "num_classes", *relevant_factors(m)}
    rec.update({k: None for k in ModelConfig.model_fields if k not in kept})  # does not apply
    rec["pos_embed"] = uses_pos_embed(m)
    d = cfg.data.model_dump(exclude={"data_dir", "synthetic_size", "split_per_seed", "stream",
                                     "memory_budget_gb", "workers", *STREAM_ONLY_FIELDS})
    d.pop("name")
    # The seed the split was actually drawn from; split_per_seed appears only where it is set,
    # so records of the default keep their columns.
    d["split_seed"] = cfg.data.split_seed if data.split_seed is None else data.split_seed
    if cfg.data.split_per_seed:
        d["split_per_seed"] = True
    rec.update(dataset=data.name, **{k: v for k, v in d.items() if k != "image_size"})
    rec["augment"] = bool(data.crop_padding or data.flip)
    rec.update(t.model_dump(exclude=HOW_FIELDS))
    if t.execution is not None:  # only then, so the records of earlier trials keep their columns
        rec.update(t.execution.record())
    rec.update(seed=cfg.seed, epochs_run=len(history))
    last = history[-1] if history else {}
    best = best_epoch(history)
    rec.update(train_loss=last.get("train_loss", float("nan")), train_acc=last.get("train_acc", float("nan")),
               val_acc=last.get("val_acc", float("nan")), val_loss=last.get("val_loss", float("nan")),
               best_val_acc=best.get("val_acc", float("nan")), best_epoch=best.get("epoch", 0))
    rec[LATE_GAIN_KEY] = late_gain(history)  # points gained over the last 20% of the epochs run
    if status == "ok":
        rec["test_acc"], rec["test_loss"] = evaluate(model, test_loader, how.autocast(device))
    else:
        rec["test_acc"] = rec["test_loss"] = float("nan")
    images = sum(r["images_per_s"] * r["epoch_time_s"] for r in history)
    rec.update(counts, train_time_s=train_time, train_images_per_s=images / train_time if train_time else float("nan"))
    shape = (data.in_chans, data.image_size, data.image_size)
    if t.measure_throughput and status == "ok":
        bench = measure.benchmark_inference(model, shape, batch_size=256, device=device,
                                            warmup=2, repeats=5, iters=2, dtype=how.dtype,
                                            channels_last=how.channels_last)
        rec.update(infer_images_per_s=bench["infer_images_per_s"],
                   infer_images_per_s_iqr=bench["infer_images_per_s_iqr"])
    else:
        rec.update(infer_images_per_s=float("nan"), infer_images_per_s_iqr=float("nan"))
    rec.update(measure.peak_memory(device))
    rec.update(device=device.type, device_name=provenance.device_name(device),
               threads=torch.get_num_threads())
    rec.update(provenance.versions())
    rec.pop("ray_version", None)
    rec.update(hostname=provenance.hardware()["hostname"], started_at=started,
               finished_at=provenance.now(), history=history)
    rec["synthetic"] = data.synthetic
    rec["trial_time_s"] = time.perf_counter() - t_start  # whole call: data, training, evaluation
    return rec
