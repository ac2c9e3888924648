"""The Ray Tune trainable: a thin wrapper that reports and checkpoints ``train`` every epoch.

Divergence and out-of-memory come back from :func:`~mixerlab.train.train` as statuses; any
other exception is recorded as ``error`` with its message. None of them is retried by Ray
(they would fail again); only a trial whose worker process dies is retried, from its last
checkpoint (``FailureConfig(max_failures)``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ray import tune

from mixerlab.checkpoint import load_state, save_state
from mixerlab.record import failed
from mixerlab.sweep.trials import Trial

STATE_FILE = "state.pt"


def load_trial_state(named: Path) -> tuple[dict | None, str]:
    """(state, note): the checkpoint Ray names, else the newest readable one beside it.

    Ray's saved experiment state can name a checkpoint that no longer exists: with
    ``num_to_keep`` Tune deletes the older checkpoint as soon as a newer one is registered,
    and a driver killed before its next state snapshot leaves the snapshot naming the
    deleted one. Every checkpoint of a trial is a state of the same deterministic run, so
    any readable one resumes it correctly; with none readable the trial starts at epoch 0
    (the same final result on CPU, only slower). ``note`` says which case happened.
    """
    others = sorted((p for p in named.parent.glob("checkpoint_*") if p != named), reverse=True)
    for path in [named, *others]:
        try:
            state = load_state(path / STATE_FILE)
        except Exception as err:  # missing or damaged (torch raises several types): next one
            print(f"checkpoint {path} unreadable ({type(err).__name__})", file=sys.stderr)
            continue
        note = "" if path == named else f"resumed from {path.name}; Ray named {named.name}, unreadable"
        return state, note
    return None, f"no readable checkpoint (Ray named {named.name}); trained from epoch 0"


class RayCheckpoint:
    """``train``'s resume hook, backed by the trial's latest Ray Tune checkpoint."""

    def __init__(self):
        self.note = ""  # how the resume went, kept in the record when it was not plain

    def load(self) -> dict | None:
        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        # The storage path is a local (or on a cluster, shared) folder: see check_shared_storage.
        state, self.note = load_trial_state(Path(ckpt.path))
        return state


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
        if row["epoch"] >= cfg.train.epochs:
            # The last epoch travels in the final report below. Reported on its own, it
            # would let a scheduler stop the trial there (ASHA stops every trial that
            # reaches max_t), before the report that carries the test accuracy and record.
            return
        with tempfile.TemporaryDirectory() as d:
            save_state(state, Path(d) / STATE_FILE)
            tune.report({**row, "final": False}, checkpoint=tune.Checkpoint.from_directory(d))

    resume = RayCheckpoint()
    try:
        record = train(cfg, data=data, on_epoch=on_epoch, checkpoint=resume)
    except Exception as err:  # a bug or bad input in one trial must not stop the sweep
        record = failed(trial.config, err, trial_id=trial.trial_id, study=study)
    if resume.note:
        record["resume_note"] = resume.note
    import ray

    record.update(trial_id=trial.trial_id, study=study, **trial.extra,
                  ray_node_id=ray.get_runtime_context().get_node_id())
    last = record["history"][-1] if record.get("history") else {}
    tune.report({"epoch": last.get("epoch", 0), "val_acc": record.get("val_acc", float("nan")),
                 "final": True, "status": record["status"],
                 "record_json": json.dumps(record, default=str)})
