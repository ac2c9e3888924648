"""Re-running the same command continues a study: what is done, what runs, and from where.

Three levels, in the order the runner meets them: the study folder (is it this spec's, or an
extension of it, or a study to move aside: :func:`locked_study`); its records (finished
trials are not run again; damage left by a killed writer is repaired:
:func:`finished_records`); and Ray's saved experiment (running trials resume from their
last checkpoint: :func:`restore_tuner`; records a killed driver never heard of:
:func:`harvest`).
"""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from mixerlab.errors import ConfigError
from mixerlab.record import FAILED
from mixerlab.spec import Spec
from mixerlab.sweep.options import SweepOptions
from mixerlab.sweep.study import Study
from mixerlab.sweep.trials import Plan, Trial


# -- the study folder ------------------------------------------------------------------------
@contextmanager
def locked_study(spec: Spec, plan: Plan, options: SweepOptions):
    """The study folder of ``spec``, locked for the ``with`` block: checked to be ours, and
    holding this spec, an extension of it (``--extend``), or one to move aside (``--new-study``)."""
    study = Study(Path(options.results_root) / spec.name)
    study.check_owned()
    study.check_writable()
    marker = study.marker
    changed = bool(marker) and marker["fingerprint"] not in spec.fingerprints()
    if changed and options.extend:
        _check_extension(study, plan)
    elif changed and not options.new_study:
        raise ConfigError(
            f"{study.path}: holds a study from a different spec; re-run with --extend if the spec "
            "only adds values (grid, nuisance, seeds), with --new-study to move the old results "
            "aside and start again, or give the spec another 'name'")
    study.lock()
    try:
        if marker and not changed and marker["fingerprint"] != spec.fingerprint():
            # The same spec, recorded in the older form of the fingerprint: record the new one.
            study.refingerprint(spec.fingerprint(), len(plan.trials), why="migrated_at")
        if changed and options.extend:
            study.refingerprint(spec.fingerprint(), len(plan.trials))
            print(f"{study.path}: extending the study to {len(plan.trials)} trials; its finished "
                  "trials are kept", file=sys.stderr)
        elif changed:
            study.unlock()
            moved = study.archive()
            print(f"moved the previous study to {moved}", file=sys.stderr)
            study = Study(study.path)
            study.lock()
        yield study
    finally:
        study.unlock()


def _check_extension(study: Study, plan: Plan) -> None:
    """An extension only adds trials: every finished trial must still be in the new plan."""
    if (study.path / "rounds.json").exists():
        # Later rounds name their trials by arm and setting index, which an extended grid
        # renumbers; such a study grows by its own rounds instead.
        raise ConfigError(
            f"{study.path}: --extend: this study has later rounds (rounds.json: two-stage tuning or "
            "adaptive seeds), which an extended spec would renumber; adaptive studies add seeds "
            "themselves. Use --new-study, or give the extended spec another 'name'")
    records, _ = study.scan_records()
    planned = {t.trial_id for t in plan.trials}
    gone = sorted(set(records) - planned)
    if gone:
        raise ConfigError(
            f"{study.path}: --extend keeps every finished trial, but {len(gone)} of {len(records)} "
            f"are not in the new spec (e.g. {gone[0]}): it changes more than added values. Use "
            "--new-study, or give the spec another 'name'")


# -- its records -----------------------------------------------------------------------------
def remove_stale(study: Study) -> None:
    """Temporary files a killed writer left before its rename (never read): removed."""
    stale = study.remove_stale_temporaries()
    if stale:
        print(f"removed {len(stale)} temporary file(s) left by an interrupted write", file=sys.stderr)


def finished_records(study: Study, order: list[str], retry_failed: bool) -> dict[str, dict]:
    """The study's records by trial id, after repairing what an interruption damaged: an
    unreadable record's trial runs again, damaged tables are rebuilt from the records, and
    with ``retry_failed`` the failed trials' records are forgotten."""
    records, unreadable = study.scan_records()
    for f in unreadable:
        if f.stem in order:
            print(f"{f} is unreadable; trial {f.stem} will run again", file=sys.stderr)
    damaged = study.damaged_tables()
    if records and damaged:
        study.write_tables(order)
        print("; ".join(f"{name} was {why}" for name, why in damaged.items())
              + f"; rebuilt the tables from {len(records)} records", file=sys.stderr)
    if retry_failed:
        again = [t for t, r in records.items() if r["status"] in FAILED]
        study.forget(again)
        print(f"re-running {len(again)} failed trial(s)", file=sys.stderr)
        records = study.records()
    return records


def harvest(study: Study, results) -> None:
    """Records of trials that finished while no driver was listening (killed driver)."""
    have = study.records()
    for result in results:
        metrics = result.metrics or {}
        if metrics.get("final") and "record_json" in metrics:
            rec = json.loads(metrics["record_json"])
            if rec["trial_id"] not in have:
                study.write_record(rec)


# -- Ray's saved experiment ------------------------------------------------------------------
def next_run_name(study: Study) -> str:
    """The folder of a new Ray experiment under ``<study>/ray``: run-001, run-002, ..."""
    runs = sorted(study.ray_dir.glob("run-*")) if study.ray_dir.exists() else []
    return f"run-{len(runs) + 1:03d}"


def restore_tuner(study: Study, trainable, pending: list[Trial], retry_failed: bool):
    """Restore the latest Ray experiment if it still has unfinished trials of this study."""
    from ray import tune

    # Absolute: Tune reads a relative path as a URI without a scheme and raises.
    ray_dir = study.ray_dir.resolve()
    runs = sorted(ray_dir.glob("run-*")) if ray_dir.exists() else []
    if not runs or retry_failed:
        return None
    latest = runs[-1]
    if not tune.Tuner.can_restore(str(latest)):
        return None
    if not any(latest.glob("experiment_state-*.json")):
        # Killed before Tune saved any trial: tuner.pkl alone does not hold the param space,
        # and restoring it would run one trial with an empty config. Nothing ran: start afresh.
        return None
    try:
        saved = tune.ExperimentAnalysis(str(latest)).trials
    except Exception:  # unreadable: Tuner.restore below decides
        saved = []
    why_not = why_not_resume(saved, pending, any(latest.glob("basic-variant-state-*.json")))
    if why_not:
        print(f"not resuming Ray experiment {latest.name}: {why_not}; starting a new run for the "
              f"{len(pending)} unfinished trial(s)", file=sys.stderr)
        return None
    recreate_deleted_checkpoints(latest, saved)
    try:
        tuner = tune.Tuner.restore(str(latest), trainable, resume_unfinished=True,
                                   resume_errored=True)
    except Exception as err:  # corrupt or foreign state: start a fresh run for what is left
        moved = latest.with_name(latest.name + ".unreadable")
        shutil.move(str(latest), str(moved))
        print(f"could not restore {latest} ({type(err).__name__}); moved it to {moved} and "
              "starting the remaining trials afresh", file=sys.stderr)
        return None
    print(f"resuming Ray experiment {latest.name}", file=sys.stderr)
    return tuner


def why_not_resume(saved_trials, pending: list[Trial], search_state_saved: bool) -> str:
    """Why restoring a saved Ray experiment would not run the pending trials ('' if it would).

    Tune's saved state holds the trials it had created; the others it creates from its saved
    search state (``basic-variant-state-*.json``, the grid's remaining variants), since
    ``Tuner.restore`` does not keep the param space. A driver killed after the first but
    before the second was written (seen under load) leaves a run whose restore creates a
    trial with an empty config. And a run whose trials all ended resumes nothing. Either way
    a new run of the pending trials is the correct resume (finished trials keep their
    records; the cut ones start again, since their checkpoints belong to the old run).
    """
    if saved_trials and all(t.status in ("TERMINATED", "ERROR") for t in saved_trials):
        return "all its trials had ended"
    known = {(t.config.get("trial") or {}).get("trial_id") for t in saved_trials}
    missing = [t.trial_id for t in pending if t.trial_id not in known]
    if missing and not search_state_saved:
        return (f"its saved state lacks {len(missing)} of them (e.g. {missing[0]}) and Tune "
                "saved no search state to create them from")
    return ""


def recreate_deleted_checkpoints(run_dir: Path, saved_trials) -> list[Path]:
    """Give back every unfinished trial the checkpoint folder Ray's snapshot names.

    With ``num_to_keep`` Tune deletes a trial's older checkpoint as soon as it registers a
    newer one, so a driver killed before its next experiment snapshot leaves a snapshot
    naming a deleted folder; ``Trainable.restore`` then raises on every retry and the trial
    ends as an error. An empty folder in its place lets the restore through, and
    :func:`~mixerlab.sweep.trainable.load_trial_state` resumes from the newest readable
    checkpoint beside it (every checkpoint of a trial is a state of the same run), saying so
    in the record.
    """
    made = []
    for trial in saved_trials:
        ckpt = trial.checkpoint if trial.status not in ("TERMINATED", "ERROR") else None
        if ckpt is None:
            continue
        # Located under this run folder, wherever the study folder was when it was saved.
        path = run_dir / Path(ckpt.path).parent.name / Path(ckpt.path).name
        if path.parent.is_dir() and not path.exists():
            path.mkdir()
            made.append(path)
    return made
