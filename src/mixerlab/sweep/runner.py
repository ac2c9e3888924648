"""Run a study on Ray Tune: validate everything, then fan ``train`` out; resume if interrupted.

Order of work, so that bad input costs nothing: parse the spec, load the data set once,
expand and check every trial, check and connect to the cluster of ``--address`` (see
mixerlab/sweep/connect.py), check the results folder (ownership, lock, disk) -- and only
then start Ray's trials. Re-running the same command continues a study: trials with a
record are not re-run, Ray's experiment state is restored so running trials resume from
their last checkpoint, and a finished study is a no-op.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

from mixerlab import provenance
from mixerlab.data import load_dataset
from mixerlab.errors import ConfigError
from mixerlab.results import atomic_write_text
from mixerlab.sweep.spec import Spec, load_spec
from mixerlab.sweep.study import FAILED, FINAL, Study
from mixerlab.sweep.trials import Plan, Trial, expand, group_id

log = logging.getLogger("mixerlab.sweep")


def prepare(spec_path: str | Path) -> tuple[Spec, object, Plan]:
    """Parse, load data and expand: everything that can fail on bad input, before Ray."""
    spec = load_spec(spec_path)
    data = load_dataset(spec.data_config())
    plan = expand(spec, (data.image_size, data.in_chans, data.num_classes), where=str(spec_path))
    if not plan.trials:
        raise ConfigError(f"{spec_path}: the grid is empty; add factors to vary under 'grid'")
    for note in plan.notes:
        print(f"warning: {spec_path}: {note}", file=sys.stderr)
    return spec, data, plan


def _stopped_record(study_name: str):
    """Row for a trial ASHA stopped early: its last epoch's metrics, factors, size and cost,
    and its per-epoch history from its last checkpoint (the learning curve up to the stop)."""
    from mixerlab import measure
    from mixerlab.models import create_model
    from mixerlab.sweep.trainable import error_record, load_trial_state
    from mixerlab.train import best_epoch

    def build(trial: Trial, last: dict | None, checkpoint=None) -> dict:
        rec = error_record(trial, study_name, RuntimeError("stopped early by the ASHA scheduler"))
        cfg = trial.config.model
        model = create_model(cfg)
        rec.update(status="stopped", error="stopped early by the ASHA scheduler", **trial.extra,
                   **measure.count_params(model),
                   **measure.count_flops(model, (cfg.in_chans, cfg.image_size, cfg.image_size)))
        last = last or {}
        for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
            rec[k] = last.get(k, float("nan"))
        rec["epochs_run"] = int(last.get("epoch", 0) or 0)
        rec["test_acc"] = float("nan")
        state = load_trial_state(Path(checkpoint.path))[0] if checkpoint is not None else None
        if state:
            history = state["history"]
            best = best_epoch(history)
            rec.update(history=history, train_time_s=state["train_time_s"],
                       best_val_acc=best.get("val_acc", float("nan")), best_epoch=best.get("epoch"))
        return rec

    return build


def _init_ray(address: str | None, study: Study) -> None:
    """Reuse the connection run_sweep made (``--address``), else start mixerlab's own Ray."""
    import ray

    from mixerlab.sweep import connect

    study.logs_dir.mkdir(parents=True, exist_ok=True)
    # Ray's and Tune's own chatter goes to a file in the study folder, not the terminal.
    handler = logging.FileHandler(study.logs_dir / "ray.log")

    def route():
        for name in ("ray", "ray.tune", "ray.train"):
            lg = logging.getLogger(name)
            lg.handlers[:] = [handler]
            lg.propagate = False

    route()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    live = connect.current()
    if address and live is None:  # run_sweep connects first; this is for other callers
        live = connect.connect(address)
    if live is not None:
        if live.log:  # what Ray said while connecting, before the study folder existed
            with open(study.logs_dir / "ray.log", "a") as f:
                f.write(live.log)
            live.log = ""
        return
    # address="local": always a new Ray of our own. Without it ray.init attaches to any Ray
    # it finds (a `ray start` head, or the stale address a dead one left in
    # /tmp/ray/ray_current_cluster) and then refuses num_cpus.
    # ray.init(configure_logging=False) clears the "ray" logger's handlers first, and what
    # it logs then (e.g. "Token authentication is enabled") would reach the terminal through
    # logging's last resort: catch it one level down, under ray._private, meanwhile.
    init_logger = logging.getLogger("ray._private")
    init_logger.addHandler(handler)
    try:
        ray.init(address="local", num_cpus=os.cpu_count(), log_to_driver=False,
                 include_dashboard=False, configure_logging=False, logging_level=logging.WARNING)
    finally:
        init_logger.removeHandler(handler)
        route()


def check_shared_storage(study: Study) -> None:
    """On a cluster every node must see the results folder (trial checkpoints live there)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = study.path / ".storage-probe"
    probe.write_text(str(os.getpid()))

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        return os.path.exists(path) and os.access(os.path.dirname(path), os.W_OK)

    nodes = [n for n in ray.nodes() if n["Alive"]]
    checks = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
              .remote(str(probe.resolve())) for n in nodes]
    blind = [n["NodeManagerAddress"] for n, ok in zip(nodes, ray.get(checks, timeout=60)) if not ok]
    probe.unlink(missing_ok=True)
    if blind:
        raise ConfigError(f"--results {study.path.resolve()}: not reachable (or not writable) from "
                          f"node(s) {', '.join(blind)}; on a cluster use a folder every node mounts "
                          "at the same path (e.g. NFS)")


def run_sweep(spec_path, *, results_root="results", address=None, max_concurrent=None,
              new_study=False, retry_failed=False, command: str = "", extend=False,
              log=(), log_dir=None) -> Path:
    if log:  # a tracker's missing package: one line, exit 2, before anything is read or written
        from mixerlab.trackers import require

        require(log)
    elif log_dir:
        raise ConfigError("--log-dir: name the tracker(s) too, e.g. --log tensorboard")
    tracking = {"log": log, "log_dir": log_dir}
    spec, data, plan = prepare(spec_path)
    if address:
        # Before anything is written: a wrong address or a refused token is one line, exit 2.
        from mixerlab.sweep.connect import connect, disconnect

        connect(address)
        try:
            return _run_sweep(spec, data, plan, spec_path, results_root, address, max_concurrent,
                              new_study, retry_failed, command, extend, **tracking)
        finally:
            disconnect()
    return _run_sweep(spec, data, plan, spec_path, results_root, address, max_concurrent,
                      new_study, retry_failed, command, extend, **tracking)


def _run_sweep(spec, data, plan, spec_path, results_root, address, max_concurrent, new_study,
               retry_failed, command, extend=False, **tracking) -> Path:
    study = Study(Path(results_root) / spec.name)
    study.check_owned()
    study.check_writable()
    marker = study.marker
    changed = bool(marker) and marker["fingerprint"] not in spec.fingerprints()
    if changed and extend:
        _check_extension(study, plan)
    elif changed and not new_study:
        raise ConfigError(
            f"{study.path}: holds a study from a different spec; re-run with --extend if the spec "
            "only adds values (grid, nuisance, seeds), with --new-study to move the old results "
            "aside and start again, or give the spec another 'name'")
    study.lock()
    try:
        if marker and not changed and marker["fingerprint"] != spec.fingerprint():
            # The same spec, recorded in the older form of the fingerprint: record the new one.
            study.refingerprint(spec.fingerprint(), len(plan.trials), why="migrated_at")
        if changed and extend:
            study.refingerprint(spec.fingerprint(), len(plan.trials))
            print(f"{study.path}: extending the study to {len(plan.trials)} trials; its finished "
                  "trials are kept", file=sys.stderr)
        elif changed:
            study.unlock()
            moved = study.archive()
            print(f"moved the previous study to {moved}", file=sys.stderr)
            study = Study(study.path)
            study.lock()
        return _run_locked(spec, data, plan, study, spec_path, address, max_concurrent,
                           retry_failed, command, **tracking)
    finally:
        study.unlock()


def _check_extension(study: Study, plan: Plan) -> None:
    """An extension only adds trials: every finished trial must still be in the new plan."""
    records, _ = study.scan_records()
    planned = {t.trial_id for t in plan.trials}
    gone = sorted(set(records) - planned)
    if gone:
        raise ConfigError(
            f"{study.path}: --extend keeps every finished trial, but {len(gone)} of {len(records)} "
            f"are not in the new spec (e.g. {gone[0]}): it changes more than added values. Use "
            "--new-study, or give the spec another 'name'")


def _run_locked(spec, data, plan, study, spec_path, address, max_concurrent, retry_failed, command,
                log=(), log_dir=None):
    order = [t.trial_id for t in plan.trials]
    stale = study.remove_stale_temporaries()
    if stale:
        print(f"removed {len(stale)} temporary file(s) left by an interrupted write", file=sys.stderr)
    study.create(spec.fingerprint(), len(plan.trials))
    atomic_write_text(study.path / "spec.yaml", Path(spec_path).read_text())
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
    trackers = _open_trackers(log, log_dir, study, spec.name, plan, records)
    done = {t for t, r in records.items() if r["status"] in FINAL and t in order}
    pending = [t for t in plan.trials if t.trial_id not in done]
    if not pending:
        study.write_tables(order)
        _close_trackers(trackers, study)
        print(f"{study.path}: all {len(order)} trials already finished; nothing to run",
              file=sys.stderr)
        return study.path

    import ray
    from ray import tune

    from mixerlab.sweep.progress import StudyCallback
    from mixerlab.sweep.trainable import run_trial

    # The dry run's estimate, kept beside the real wall time (provenance.json), so every local
    # CPU study checks the estimate users plan with. On a cluster or a GPU it would time the
    # wrong machine, so none is made there.
    estimate = None
    if not address and not spec.resources.gpu:
        from mixerlab.sweep.estimate import estimate_per_trial

        per_trial = estimate_per_trial(plan, data, spec.resources.cpu)
        estimate = sum(per_trial[t.trial_id] for t in pending)
        estimate = None if math.isnan(estimate) else estimate  # a configuration could not be timed
    started = provenance.now()
    t0 = time.time()
    _init_ray(address, study)
    try:
        if address:
            check_shared_storage(study)
        cpu, gpu = spec.resources.cpu, spec.resources.gpu
        total = ray.cluster_resources()
        if cpu > total.get("CPU", 0) or gpu > total.get("GPU", 0):
            raise ConfigError(
                f"{spec_path}: resources: a trial asks for {cpu} CPU and {gpu} GPU but the cluster has "
                f"{total.get('CPU', 0):g} CPU and {total.get('GPU', 0):g} GPU; lower 'resources'")
        slots = int(total.get("CPU", 1) // cpu)
        if gpu:
            slots = min(slots, int(total.get("GPU", 0) // gpu))
        limit = max_concurrent or spec.max_concurrent
        slots = max(1, min(slots, limit or slots, len(pending)))
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=data, study=spec.name,
                                 records_dir=str(study.records_dir.resolve())),
            {"cpu": cpu, "gpu": gpu})
        callback = StudyCallback(str(study.path), spec.name, len(order), len(done), slots,
                                 _stopped_record(spec.name))
        tuner = _restore(study, trainable, pending, retry_failed)
        if tuner is None:
            scheduler = None
            if spec.scheduler.type == "asha":
                scheduler = tune.schedulers.ASHAScheduler(
                    time_attr="epoch", metric="val_acc", mode="max", max_t=spec.train_config().epochs,
                    grace_period=spec.scheduler.grace_period,
                    reduction_factor=spec.scheduler.reduction_factor)
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search([t.to_dict() for t in pending])},
                tune_config=tune.TuneConfig(max_concurrent_trials=slots, scheduler=scheduler,
                                            time_budget_s=spec.time_budget_s,
                                            # a worker runs trial after trial: no process
                                            # start and torch import per trial
                                            reuse_actors=True),
                run_config=tune.RunConfig(
                    name=_next_run_name(study), storage_path=str(study.ray_dir.resolve()),
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[callback], verbose=0),
            )
        guess = f", about {estimate / slots / 60:,.1f} min by the dry run's estimate" if estimate else ""
        print(f"{spec.name}: {len(pending)} trial(s) to run ({len(done)} already done), "
              f"{slots} at a time{guess}; logs in {study.logs_dir}", file=sys.stderr)
        results = tuner.fit()
        _harvest(study, results, spec.name)
    finally:
        ray.shutdown()
        trials = study.write_tables(order)
        finished = set(trials["trial_id"][trials["status"].isin(FINAL)]) if len(trials) else set()
        if any(t.trial_id not in finished for t in pending):
            # Interrupted: the estimate covers trials this session did not finish, so their
            # ratio would say nothing about the estimate.
            estimate = None
        _write_provenance(study, spec, command, started, time.time() - t0, len(order), trials,
                          locals().get("slots", 0), estimate)
        _close_trackers(trackers, study)
    return study.path


# -- experiment trackers (--log): fed from the records; see mixerlab/trackers/hub.py ---------
def _open_trackers(log, log_dir, study: Study, name: str, plan: Plan, records: dict):
    """The sweep's trackers (None without --log), given every record they have not got yet.
    While they are open, StudyCallback logs each record it writes to them."""
    from mixerlab.trackers import make_trackers

    trackers = make_trackers(log, study.path, name, {t.trial_id: group_id(t) for t in plan.trials},
                             log_dir=log_dir)
    if trackers is not None:
        trackers.catch_up(records)
    return trackers


def _close_trackers(trackers, study: Study) -> None:
    if trackers is not None:  # records harvested after a restart, and logs that failed
        trackers.catch_up(study.records())
        trackers.close()


def _next_run_name(study: Study) -> str:
    runs = sorted(study.ray_dir.glob("run-*")) if study.ray_dir.exists() else []
    return f"run-{len(runs) + 1:03d}"


def _restore(study: Study, trainable, pending: list[Trial], retry_failed: bool):
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
    why_not = _why_not_resume(saved, pending, any(latest.glob("basic-variant-state-*.json")))
    if why_not:
        print(f"not resuming Ray experiment {latest.name}: {why_not}; starting a new run for the "
              f"{len(pending)} unfinished trial(s)", file=sys.stderr)
        return None
    _recreate_deleted_checkpoints(latest, saved)
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


def _why_not_resume(saved_trials, pending: list[Trial], search_state_saved: bool) -> str:
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


def _recreate_deleted_checkpoints(run_dir: Path, saved_trials) -> list[Path]:
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


def _harvest(study: Study, results, study_name: str) -> None:
    """Records of trials that finished while no driver was listening (killed driver)."""
    have = study.records()
    for result in results:
        metrics = result.metrics or {}
        if metrics.get("final") and "record_json" in metrics:
            rec = json.loads(metrics["record_json"])
            if rec["trial_id"] not in have:
                study.write_record(rec)


def _write_provenance(study, spec, command, started, wall, n_trials, trials, slots, estimate=None):
    import pandas as pd

    prov_path = study.path / "provenance.json"
    previous = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    sessions = previous.get("sessions", []) + [
        {"command": command, "started_at": started, "finished_at": provenance.now(),
         "wall_time_s": round(wall, 1), "concurrent_trials": slots,
         # estimated seconds of this session's trials shared among its slots, and real / estimate
         "estimate_wall_s": round(estimate / slots, 1) if estimate and slots else None,
         "wall_over_estimate": round(wall / (estimate / slots), 3) if estimate and slots else None}]
    busy = float(pd.to_numeric(trials.get("trial_time_s", pd.Series(dtype=float)),
                               errors="coerce").sum()) if len(trials) else 0.0
    total_wall = sum(s["wall_time_s"] for s in sessions)
    out = {
        "study": spec.name, "question": spec.question, "command": command,
        "started_at": sessions[0]["started_at"], "finished_at": sessions[-1]["finished_at"],
        "n_trials": n_trials, "n_finished": int(len(trials)),
        "seeds": spec.seed_list, "wall_time_s": round(total_wall, 1),
        "sum_trial_time_s": round(busy, 1),
        "sweep_efficiency": round(busy / (total_wall * slots), 3) if total_wall and slots and
        not math.isnan(busy) and len(sessions) == 1 else None,
        "sessions": sessions, "hardware": provenance.hardware(), "versions": provenance.versions(),
        "spec_fingerprint": spec.fingerprint(),
    }
    atomic_write_text(prov_path, json.dumps(out, indent=2, default=str))
