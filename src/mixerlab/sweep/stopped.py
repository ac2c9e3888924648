"""The record of a trial the ASHA scheduler stopped early (``status: stopped``).

Such a trial never reaches ``train``'s own record: the driver's callback
(:class:`~mixerlab.sweep.progress.StudyCallback`) builds its row from what Tune kept, its
last epoch's metrics and its last checkpoint, so the table keeps its factors, size, cost
and learning curve up to the stop (:func:`mixerlab.record.stopped` builds it).
"""

from __future__ import annotations

from pathlib import Path

from mixerlab import record
from mixerlab.sweep.trials import Trial

WHY = record.STOPPED_WHY


def stopped_record(trial: Trial, last: dict | None, checkpoint=None, *, study_name: str) -> dict:
    """Row for a trial ASHA stopped early: its last epoch's metrics, factors, size and cost,
    and its per-epoch history from its last checkpoint (the learning curve up to the stop)."""
    from mixerlab import measure
    from mixerlab.models import create_model
    from mixerlab.sweep.trainable import load_trial_state

    cfg = trial.config.model
    model = create_model(cfg)
    counts = {**measure.count_params(model),
              **measure.count_flops(model, (cfg.in_chans, cfg.image_size, cfg.image_size))}
    state = load_trial_state(Path(checkpoint.path))[0] if checkpoint is not None else None
    rec = record.stopped(trial.config, last, state, counts, trial_id=trial.trial_id, study=study_name)
    rec.update(trial.extra)
    return rec
