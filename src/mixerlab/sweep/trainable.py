"""The Ray Tune trainable: a thin wrapper that reports and checkpoints ``train`` every epoch.

Divergence and out-of-memory come back from :func:`~mixerlab.train.train` as statuses; any
other exception is recorded as ``error`` with its message. None of them is retried by Ray
(they would fail again); only a trial whose worker process dies is retried, from its last
checkpoint (``FailureConfig(max_failures)``).
"""

from __future__ import annotations

import json
import tempfile
import traceback
from pathlib import Path

from ray import tune

from mixerlab import provenance
from mixerlab.checkpoint import load_state, save_state
from mixerlab.sweep.trials import Trial

STATE_FILE = "state.pt"


class RayCheckpoint:
    """``train``'s resume hook, backed by the trial's latest Ray Tune checkpoint."""

    def load(self) -> dict | None:
        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            return load_state(Path(d) / STATE_FILE)


def error_record(trial: Trial, study: str, err: BaseException) -> dict:
    """A complete-as-possible row for a trial that raised: its factors and the error."""
    cfg = trial.config
    tail = traceback.format_exception_only(type(err), err)[-1].strip()
    frames = traceback.extract_tb(err.__traceback__)
    if frames:  # where it happened: the innermost frame, for `mixerlab status`
        f = frames[-1]
        tail += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    rec = {"trial_id": trial.trial_id, "study": study, "status": "error", "error": tail,
           "variant": cfg.model.label, **cfg.model.model_dump(), "dataset": cfg.data.name,
           **cfg.train.model_dump(exclude={"device", "threads", "eval_batch_size",
                                           "measure_throughput"}),
           "seed": cfg.seed, "epochs_run": 0, "history": [], "finished_at": provenance.now(),
           **provenance.versions()}
    rec.pop("ray_version", None)
    return rec


def _existing_record(records_dir: str | None, trial_id: str) -> dict | None:
    """The trial's record if it already has one: Ray may restore a finished trial as running."""
    try:
        return json.loads((Path(records_dir) / f"{trial_id}.json").read_text()) if records_dir else None
    except (OSError, ValueError):
        return None  # none yet, or unreadable: train it


def run_trial(config: dict, data=None, study: str = "", records_dir: str | None = None) -> None:
    from mixerlab.train import train  # imported in the worker, after Ray has set threads

    trial = Trial.from_dict(config["trial"])
    done = _existing_record(records_dir, trial.trial_id)
    if done is not None:  # finished before a killed driver's last experiment-state save
        tune.report({"epoch": done["epochs_run"], "val_acc": done.get("val_acc", float("nan")),
                     "final": True, "status": done["status"],
                     "record_json": json.dumps(done, default=str)})
        return
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    cfg = trial.config.model_copy(deep=True)
    cfg.train.threads = max(1, int(cpus))

    def on_epoch(row: dict, state: dict) -> None:
        with tempfile.TemporaryDirectory() as d:
            save_state(state, Path(d) / STATE_FILE)
            tune.report({**row, "final": False}, checkpoint=tune.Checkpoint.from_directory(d))

    try:
        record = train(cfg, data=data, on_epoch=on_epoch, checkpoint=RayCheckpoint())
    except Exception as err:  # a bug or bad input in one trial must not stop the sweep
        record = error_record(trial, study, err)
    import ray

    record.update(trial_id=trial.trial_id, study=study, **trial.extra,
                  ray_node_id=ray.get_runtime_context().get_node_id())
    last = record["history"][-1] if record.get("history") else {}
    tune.report({"epoch": last.get("epoch", 0), "val_acc": record.get("val_acc", float("nan")),
                 "final": True, "status": record["status"],
                 "record_json": json.dumps(record, default=str)})
