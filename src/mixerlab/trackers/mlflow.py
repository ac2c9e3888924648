"""MLflow: one run per trial in the experiment named like the study.

Where: ``$MLFLOW_TRACKING_URI`` when set (a tracking server, a database), else a SQLite
store in the tracker's folder, ``sqlite:///<root>/mlflow.db``. Not a ``file:`` store: MLflow
3.7+ keeps that backend in maintenance mode and refuses it unless
``MLFLOW_ALLOW_FILE_STORE=true`` (set it and ``MLFLOW_TRACKING_URI=file:DIR`` to get one).
The experiment is ``$MLFLOW_EXPERIMENT_NAME``, else the study's name.

A run holds the configuration as params (every factor, the seed, the nuisance values, the
widths matching solved), the per-epoch history as metric series (step = epoch), the final
metrics at the last epoch trained, and tags: ``group`` (shared by the seeds of one
configuration: filter ``tags.group = '...'``), ``trial_id``, ``status`` (ok, stopped,
diverged, oom, error) and provenance. The run's own status is FINISHED, KILLED for a trial
ASHA stopped, FAILED for one that diverged or failed; its description holds the error.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from mixerlab.trackers.registry import register_tracker
from mixerlab.trackers.run import TrackedRun

TAG_LIMIT = 5000  # characters; MLflow refuses longer tag values (8000 in its SQL store)
BATCH = 100  # entities per log_batch call that every MLflow backend accepts (params: 100)


@contextmanager
def _quiet():
    """Creating a SQLite store logs its schema migration (MLflow, alembic) on stderr."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _ms(seconds: float | None) -> int:
    return int(1000 * (seconds if seconds is not None else time.time()))


@register_tracker("mlflow", packages=("mlflow", "sqlalchemy", "alembic"), extra="mlflow")
class MlflowTracker:
    def __init__(self, root: Path, study: str):
        from mlflow.tracking import MlflowClient

        self.uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        artifacts = None
        if not self.uri:
            root = Path(root).resolve()
            root.mkdir(parents=True, exist_ok=True)
            self.uri = f"sqlite:///{root / 'mlflow.db'}"
            # mixerlab logs no artifacts, but an experiment names a folder for them, by
            # default ./mlruns of wherever the sweep was started
            artifacts = (root / "artifacts").as_uri()
        self.experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or study
        with _quiet():
            self.client = MlflowClient(self.uri)
            found = self.client.get_experiment_by_name(self.experiment)
            self.experiment_id = (found.experiment_id if found is not None else
                                  self.client.create_experiment(self.experiment,
                                                                artifact_location=artifacts))

    @property
    def destination(self) -> str:
        return f"{self.uri} experiment {self.experiment}"

    @property
    def hint(self) -> str:
        return f"view with `mlflow ui --backend-store-uri {self.uri}` (the full mlflow package)"

    def log(self, run: TrackedRun) -> None:
        from mlflow.entities import Metric, Param

        client = self.client
        for old in client.search_runs([self.experiment_id],
                                      filter_string=f"tags.trial_id = '{run.trial_id}'"):
            client.delete_run(old.info.run_id)  # an earlier or half-written log of this trial
        tags = {k: v[:TAG_LIMIT] for k, v in run.labels.items()}
        if run.status != "ok" and run.labels.get("error"):
            tags["mlflow.note.content"] = run.labels["error"][:TAG_LIMIT]  # the run's description
        created = client.create_run(self.experiment_id, start_time=_ms(run.started), tags=tags,
                                    run_name=run.name)
        run_id, stamp = created.info.run_id, _ms(run.finished)
        params = [Param(k, str(v)) for k, v in run.config.items()]
        metrics = [Metric(k, float(v), stamp, int(row["epoch"]))
                   for row in run.history for k, v in row.items() if k != "epoch"]
        metrics += [Metric(k, float(v), stamp, run.last_step) for k, v in run.metrics.items()]
        for i in range(0, len(params), BATCH):
            client.log_batch(run_id, params=params[i:i + BATCH])
        for i in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + BATCH])
        status = "FINISHED" if run.status == "ok" else "FAILED" if run.failed else "KILLED"
        client.set_terminated(run_id, status, end_time=_ms(run.finished))

    def close(self) -> None:
        pass
