"""The record of a trial the ASHA scheduler stopped early (``status: stopped``).

Such a trial never reaches ``train``'s own record: the driver's callback
(:class:`~mixerlab.sweep.progress.StudyCallback`) builds its row from what Tune kept, its
last epoch's metrics and its last checkpoint, so the table keeps its factors, size, cost
and learning curve up to the stop.
"""

from __future__ import annotations

from pathlib import Path

from mixerlab.convergence import LATE_GAIN_KEY, late_gain
from mixerlab.sweep.trials import Trial

WHY = "stopped early by the ASHA scheduler"
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


def stopped_record(trial: Trial, last: dict | None, checkpoint=None, *, study_name: str) -> dict:
    """Row for a trial ASHA stopped early: its last epoch's metrics, factors, size and cost,
    and its per-epoch history from its last checkpoint (the learning curve up to the stop)."""
    from mixerlab import measure
    from mixerlab.models import create_model
    from mixerlab.sweep.trainable import error_record

    rec = error_record(trial, study_name, RuntimeError(WHY))
    cfg = trial.config.model
    model = create_model(cfg)
    rec.update(status="stopped", error=WHY, **trial.extra,
               **measure.count_params(model),
               **measure.count_flops(model, (cfg.in_chans, cfg.image_size, cfg.image_size)))
    last = last or {}
    for k in METRICS:
        rec[k] = last.get(k, float("nan"))
    rec["epochs_run"] = int(last.get("epoch", 0) or 0)
    rec["test_acc"] = float("nan")
    rec.update(_curve(checkpoint))
    return rec


def _curve(checkpoint) -> dict:
    """History, training time and best epoch from the trial's last checkpoint ({} without one)."""
    from mixerlab.sweep.trainable import load_trial_state
    from mixerlab.train import best_epoch

    state = load_trial_state(Path(checkpoint.path))[0] if checkpoint is not None else None
    if not state:
        return {}
    history = state["history"]
    best = best_epoch(history)
    return dict(history=history, train_time_s=state["train_time_s"],
                best_val_acc=best.get("val_acc", float("nan")), best_epoch=best.get("epoch"),
                **{LATE_GAIN_KEY: late_gain(history)})
