"""A trial's record: one flat row, whatever became of the trial (docs/results-schema.md).

The one owner of the row. A trial that trained (``ok``, or ended early as ``diverged`` or
``oom``) gets :func:`trained`; one that raised gets :func:`failed`; one a scheduler stopped
gets :func:`stopped`. All three start from the same columns (:func:`_head`): the trial's
factors and recipe, so a failed or stopped trial still sorts into its arm. Builders only
assemble: training, evaluation and measurement happen in ``train`` before they are called.

A budget ladder's trial (``TrainConfig.budgets``) is one record with one entry per budget: the
record itself is its largest budget's (the main branch), and ``rungs`` holds a complete
:func:`trained` record for each smaller budget (its own ``epochs``, history, validation and
test). :func:`rows` turns it into one table row per budget.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from mixerlab import provenance
from mixerlab.config import HOW_FIELDS, ModelConfig, TrainConfig, TrialConfig
from mixerlab.late_gain import LATE_GAIN_KEY, late_gain
from mixerlab.models import relevant_factors, uses_pos_embed

# The column naming the ladder a row belongs to: the trial id of the run its budgets branch from.
LADDER = "ladder"
# Read only by the WSD schedule: recorded only where a trial uses it, so the records of the
# other schedules keep their columns.
_WSD_ONLY = frozenset({"cooldown_fraction", "cooldown_shape"})
FINAL = ("ok", "diverged", "oom", "error", "stopped")  # statuses of a finished trial
FAILED = ("error", "oom")  # what --retry-failed runs again (divergence is deterministic)
STOPPED_WHY = "stopped early by the ASHA scheduler"
_NAN = float("nan")


@dataclass
class Outcome:
    """What training produced: how it ended, its per-epoch history and its training time."""

    status: str = "ok"
    error: str = ""
    history: list[dict] = field(default_factory=list)
    train_time: float = 0.0
    resumed_from: int = 0  # the epoch a restart continued from (evidence it did not start over)


@dataclass
class Measured:
    """What was measured of the trained model: size, test metrics, speed, memory, where."""

    counts: dict  # parameters and MACs/FLOPs (measure.count_params, count_flops)
    test: tuple[float, float] = (_NAN, _NAN)  # (accuracy %, loss); NaN unless status is ok
    throughput: tuple[float, float] = (_NAN, _NAN)  # inference images/s and its IQR
    memory: dict = field(default_factory=dict)  # measure.peak_memory
    device: dict = field(default_factory=dict)  # device, device_name, threads


def best_epoch(history: list[dict]) -> dict:
    """The history row with the highest finite validation accuracy ({} for no history)."""
    return max(history, key=lambda r: r["val_acc"] if math.isfinite(r["val_acc"]) else -1, default={})


def _versions(versions: dict) -> dict:
    # Ray's version is the study's (provenance.json), not the trial's.
    return {k: v for k, v in versions.items() if k != "ray_version"}


def _curve(history: list[dict]) -> dict:
    """The last and best epochs' metrics and the late gain (a diagnostic)."""
    last, best = (history[-1] if history else {}), best_epoch(history)
    return {**{k: last.get(k, _NAN) for k in ("train_loss", "train_acc", "val_acc", "val_loss")},
            "best_val_acc": best.get("val_acc", _NAN), "best_epoch": best.get("epoch", 0),
            LATE_GAIN_KEY: late_gain(history)}  # points gained over the last 20% of the epochs


def _data_columns(cfg: TrialConfig, data) -> dict:
    """The data set's columns: its name, split, subset and augmentation."""
    d = cfg.data.model_dump(exclude={"data_dir", "synthetic_size", "split_per_seed", "stream",
                                     "memory_budget_gb", "workers", "randaugment",
                                     "random_erasing", "crop_pct", "name", "image_size"})
    # The seed the split was actually drawn from; split_per_seed appears only where it is
    # set, so records of the default keep their columns.
    d["split_seed"] = cfg.data.split_seed if data.split_seed is None else data.split_seed
    if cfg.data.split_per_seed:
        d["split_per_seed"] = True
    return {"dataset": data.name, **d, "augment": bool(data.crop_padding or data.flip)}


def recipe_columns(t: TrainConfig) -> dict:
    """The recipe's columns of a row: not how the trial ran (``HOW_FIELDS``), nor a ladder's
    ``budgets`` (each row is one budget, its ``epochs``; the run it came from is ``ladder``),
    and WSD's cool-down only where the schedule is WSD."""
    skip = HOW_FIELDS | {"budgets"} | (set() if t.schedule == "wsd" else _WSD_ONLY)
    return t.model_dump(exclude=skip)


def trained(cfg: TrialConfig, data, outcome: Outcome, measured: Measured, *, versions: dict,
            started: str, t_start: float, columns: dict | None = None) -> dict:
    """The record of a trial that trained: ``ok``, or ``diverged`` / ``oom`` (complete all the
    same). ``versions`` are the code's as read when the trial began; ``columns`` what the
    data path adds (data.base.TrialLoaders)."""
    t, m, history = cfg.train, cfg.model, outcome.history
    rec = dict(trial_id="", study="", status=outcome.status, error=outcome.error, variant=m.label)
    rec.update(m.model_dump())
    kept = {"model", "image_size", "in_chans", "num_classes", *relevant_factors(m)}
    rec.update({k: None for k in ModelConfig.model_fields if k not in kept})  # does not apply
    rec["pos_embed"] = uses_pos_embed(m)
    rec.update(_data_columns(cfg, data))
    rec.update(recipe_columns(t))
    if t.execution is not None:  # only then, so the records of earlier trials keep their columns
        rec.update(t.execution.record())
    rec.update(seed=cfg.seed, epochs_run=len(history), **_curve(history))
    rec["test_acc"], rec["test_loss"] = measured.test
    images = sum(r["images_per_s"] * r["epoch_time_s"] for r in history)
    rec.update(measured.counts, resumed_from_epoch=outcome.resumed_from,
               train_time_s=outcome.train_time,
               train_images_per_s=images / outcome.train_time if outcome.train_time else _NAN)
    rec["infer_images_per_s"], rec["infer_images_per_s_iqr"] = measured.throughput
    rec.update(measured.memory, **measured.device, **_versions(versions))
    rec.update(hostname=provenance.hardware()["hostname"], started_at=started,
               finished_at=provenance.now(), history=history)
    rec["synthetic"] = data.synthetic
    rec["trial_time_s"] = time.perf_counter() - t_start  # whole call: data, training, evaluation
    rec.update(columns or {})
    return rec


def _head(cfg: TrialConfig, *, trial_id: str, study: str, status: str, error: str) -> dict:
    """The columns every record has: which trial, how it ended, its factors and recipe."""
    return {"trial_id": trial_id, "study": study, "status": status, "error": error,
            "variant": cfg.model.label, **cfg.model.model_dump(), "dataset": cfg.data.name,
            **recipe_columns(cfg.train), "seed": cfg.seed, "epochs_run": 0,
            "history": [], "finished_at": provenance.now(), **_versions(provenance.versions())}


def failed(cfg: TrialConfig, err: BaseException, *, trial_id: str = "", study: str = "") -> dict:
    """A complete-as-possible row for a trial that raised: its factors and the error, with
    the innermost frame it was raised in (for ``mixerlab status``)."""
    tail = traceback.format_exception_only(type(err), err)[-1].strip()
    frames = traceback.extract_tb(err.__traceback__)
    if frames:
        f = frames[-1]
        tail += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    return _head(cfg, trial_id=trial_id, study=study, status="error", error=tail)


def stopped(cfg: TrialConfig, last: dict | None, state: dict | None, counts: dict, *,
            trial_id: str = "", study: str = "") -> dict:
    """Row for a trial a scheduler stopped early: its last epoch's metrics, factors, size
    (``counts``) and, from its last checkpoint's ``state``, its history up to the stop."""
    rec = _head(cfg, trial_id=trial_id, study=study, status="stopped", error=STOPPED_WHY)
    rec.update(counts)
    last = last or {}
    rec.update({k: last.get(k, _NAN) for k in ("train_loss", "train_acc", "val_loss", "val_acc")})
    rec["epochs_run"] = int(last.get("epoch", 0) or 0)
    rec["test_acc"] = _NAN
    if state:
        history, best = state["history"], best_epoch(state["history"])
        rec.update(history=history, train_time_s=state["train_time_s"],
                   best_val_acc=best.get("val_acc", _NAN), best_epoch=best.get("epoch"),
                   **{LATE_GAIN_KEY: late_gain(history)})
    return rec


def with_rungs(rec: dict, rungs: list[dict]) -> dict:
    """A ladder trial's record: ``rec`` (its largest budget's) with the records of its smaller
    budgets, smallest first."""
    return {**rec, "rungs": sorted(rungs, key=lambda r: r["epochs"])}


def rows(rec: dict) -> list[dict]:
    """The table rows of a record: the record itself, or for a ladder one row per budget,
    smallest first, each with ``ladder`` set to the record's trial id. The largest budget's
    row keeps that id; a smaller budget's is ``<id>/e<budget>``. A rung row takes the
    columns the sweep adds to the record (study, matching, stage, node) from the record."""
    rungs = rec.get("rungs")
    if not rungs:
        return [rec]
    tid = rec["trial_id"]
    top = {k: v for k, v in rec.items() if k != "rungs"}
    out = [{**top, **rung, "trial_id": f"{tid}/e{rung['epochs']}", "study": rec.get("study", ""),
            LADDER: tid} for rung in rungs]
    return out + [{**top, LADDER: tid}]
