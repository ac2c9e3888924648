"""Run a study on Ray Tune: validate everything, then fan ``train`` out; resume if interrupted.

Order of work, so that bad input costs nothing: the options (:mod:`~mixerlab.sweep.options`,
checked when the CLI makes them), then :func:`prepare` (parse the spec, load the data set
once, expand and check every trial), connect to the cluster of ``--address``
(:mod:`~mixerlab.sweep.connect`), check and lock the results folder
(:mod:`~mixerlab.sweep.resume`) -- and only then start Ray (:mod:`~mixerlab.sweep.ray_start`)
and its trials. Afterwards the tables are rebuilt from the records and the session is
recorded (:mod:`~mixerlab.sweep.study_provenance`). Re-running the same command continues a
study: trials with a record are not re-run, Ray's experiment state is restored so running
trials resume from their last checkpoint, and a finished study is a no-op.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from functools import partial
from pathlib import Path

from mixerlab import provenance
from mixerlab.claims import registration
from mixerlab.data import open_data
from mixerlab.errors import ConfigError
from mixerlab.record import FINAL
from mixerlab.results import atomic_write_text
from mixerlab.spec import Spec, load_spec
from mixerlab.sweep import resume, rounds
from mixerlab.sweep.connect import connected
from mixerlab.sweep.options import SweepOptions
from mixerlab.sweep.study import Study
from mixerlab.sweep.trials import Plan, Trial, expand, group_id

log = logging.getLogger("mixerlab.sweep")


def prepare(spec_path: str | Path) -> tuple[Spec, object, Plan]:
    """Parse, load data and expand: everything that can fail on bad input, before Ray."""
    spec = load_spec(spec_path)
    # In memory, or streamed (data/path.py), chosen for the largest side a configuration asks for.
    data = open_data(spec.data_config(), sides=_sides(spec))
    plan = expand(spec, (data.image_size, data.in_chans, data.num_classes), where=str(spec_path))
    if not plan.trials:
        raise ConfigError(f"{spec_path}: the grid is empty; add factors to vary under 'grid'")
    for note in plan.notes:
        print(f"warning: {spec_path}: {note}", file=sys.stderr)
    return spec, data, plan


def _sides(spec: Spec) -> tuple[int, ...]:
    """The image sizes the grid (or the list of configurations) asks for; () when none does."""
    grid = [{"image_size": v} for v in (spec.grid or {}).get("image_size", [])]
    points = spec.configs if spec.configs is not None else grid
    return tuple(sorted({int(p["image_size"]) for p in points if p.get("image_size")}))


def run_sweep(spec_path: str | Path, options: SweepOptions) -> Path:
    """Run (or resume) the study of ``spec_path``; returns its folder."""
    spec, data, plan = prepare(spec_path)
    # Connected before anything is written: a wrong address or a refused token is one line.
    with connected(options.address), resume.locked_study(spec, plan, options) as study:
        return _run_locked(spec, data, plan, study, spec_path, options)


def _run_locked(spec: Spec, data, plan: Plan, study: Study, spec_path, options: SweepOptions) -> Path:
    """The study's pending trials on Ray, in named steps: record the spec, find what is done,
    estimate, start Ray, size the slots, fan out round by round, then record the session."""
    resume.remove_stale(study)
    study.create(spec.fingerprint(), len(plan.trials))
    atomic_write_text(study.path / "spec.yaml", Path(spec_path).read_text())
    registration.register(study.path, spec.claims)  # before any trial of this session runs
    rounds.restore(plan, study)
    records = resume.finished_records(study, _order(plan), options.retry_failed)
    trackers = _open_trackers(options, study, spec.name, plan, records)
    pending = _pending(plan, study) or _plan_round(spec, plan, study)
    if not pending:
        study.write_tables(_order(plan))
        _close_trackers(trackers, study)
        print(f"{study.path}: all {len(plan.trials)} trials already finished; nothing to run",
              file=sys.stderr)
        return study.path

    import ray

    from mixerlab.sweep.ray_start import start_ray
    from mixerlab.sweep.study_provenance import session_entry, write_provenance

    started, t0 = provenance.now(), time.time()
    start_ray(options.address, study)  # once: every round of this session runs on it
    slots, first, ran, estimate = 0, True, [], None  # what provenance.json records if refused
    try:
        slots = _slots(spec, spec_path, study, options, len(pending))
        ways = _ways(spec, study, plan.trials, options.address)  # timed before any trial starts
        per_trial = _estimate(spec, data, plan, _assigned(spec, study, pending), options.address, ways)
        estimate = _total(per_trial, pending)
        if spec.scheduler.type == "none":  # ASHA's cuts depend on arrival order: the spec's
            pending = _longest_first(pending, per_trial)
        while pending:
            ran += pending
            _run_round(spec, data, plan, study, pending, options, slots, estimate if first else None,
                       restore=first, costs=per_trial if first else None)
            first = False
            pending = _plan_round(spec, plan, study)
            estimate = None if pending else estimate  # it covered only the first round
    finally:
        ray.shutdown()
        trials = study.write_tables(_order(plan))
        if not _all_finished(trials, ran):
            estimate = None
        session = session_entry(options.command, started, time.time() - t0, slots, estimate)
        write_provenance(study, spec, session, len(plan.trials), trials)
        _close_trackers(trackers, study)
    return study.path


def _ways(spec: Spec, study: Study, trials: list[Trial], address: str | None) -> dict:
    """The study's way to run each configuration (sweep/execution_plan.py), any new one timed
    on the device and with the threads its trials get: here, for the embedded local Ray (this
    machine is the trials' machine); on a cluster, by a Ray task with a trial's resources."""
    import ray

    from mixerlab.sweep import execution_plan

    res, device = spec.resources, execution_plan.trial_device(spec)
    if address is None or spec.pins.all_pinned:  # nothing to time where every choice is pinned
        timer = execution_plan.measure
    else:
        task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu)(execution_plan.measure)
        timer = lambda *args: ray.get(task.remote(*args))  # noqa: E731
    return execution_plan.ensure(study, trials, spec.pins,
                                 lambda missing: timer(missing, spec.pins, device, res.cpu))


def _assigned(spec: Spec, study: Study, trials: list[Trial]) -> list[Trial]:
    """``trials`` set to run their configuration's way (sweep/execution_plan.py)."""
    from mixerlab.sweep import execution_plan

    return execution_plan.assign(trials, execution_plan.load(study), spec.max_seed_list[0])


def _order(plan: Plan) -> list[str]:
    return [t.trial_id for t in plan.trials]


def _pending(plan: Plan, study: Study) -> list[Trial]:
    done = {t for t, r in study.records().items() if r["status"] in FINAL}
    return [t for t in plan.trials if t.trial_id not in done]


def _plan_round(spec: Spec, plan: Plan, study: Study) -> list[Trial]:
    """The next round's trials (two-stage tuning, adaptive seeds), recorded before they run."""
    if not rounds.has_rounds(spec):
        return []
    table = study.write_tables(_order(plan))
    trials, why = rounds.next_round(spec, plan, table)
    if spec.adaptive and not trials and len(table):
        from mixerlab.analysis.decisions import decided_text

        print(f"{spec.name}: {decided_text(rounds.decision_table(spec, table))}; no "
              "comparison can take more seeds", file=sys.stderr)
    if trials:
        rounds.save(study, plan, trials, why)
        plan.add(trials)
        print(f"{spec.name}: round {trials[0].extra.get('round')}: {why}: {len(trials)} trial(s)",
              file=sys.stderr)
    return trials


def _run_round(spec: Spec, data, plan: Plan, study: Study, pending: list[Trial],
               options: SweepOptions, slots: int, estimate: float | None, restore: bool,
               costs: dict[str, float] | None = None) -> None:
    """One Ray Tune run of ``pending`` (restoring the saved one of an interrupted session);
    ``costs``, the dry run's seconds per trial, give the progress line its time left."""
    from mixerlab.sweep.progress import StudyCallback
    from mixerlab.sweep.stopped import stopped_record

    order = _order(plan)
    done = len(order) - len(pending)
    note = _note(spec, study, order)
    _ways(spec, study, pending, options.address)  # a later round's new configuration, if any
    pending = _assigned(spec, study, pending)
    callback = StudyCallback(str(study.path), spec.name, len(order), done, slots,
                             partial(stopped_record, study_name=spec.name), note=note,
                             costs=costs)
    tuner = _tuner(spec, data, study, pending, options.retry_failed, slots, callback, restore)
    guess = f", about {estimate / slots / 60:,.1f} min by the dry run's estimate" if estimate else ""
    print(f"{spec.name}: {len(pending)} trial(s) to run ({done} already done), "
          f"{slots} at a time{guess}; logs in {study.logs_dir}", file=sys.stderr)
    resume.harvest(study, tuner.fit())


def _note(spec: Spec, study: Study, order: list[str]) -> str:
    """The progress line's word on an adaptive study: its comparisons decided so far."""
    if not spec.adaptive:
        return ""
    table = study.write_tables(order)
    measured = table[table["stage"] == "measure"] if "stage" in table.columns else table
    from mixerlab.analysis.decisions import decided_text

    return decided_text(rounds.decision_table(spec, table)) if len(measured) else ""


def _total(per_trial: dict[str, float] | None, pending: list[Trial]) -> float | None:
    """The estimated seconds of ``pending`` in all (None without a usable estimate)."""
    if not per_trial:
        return None
    total = sum(per_trial[t.trial_id] for t in pending)
    return None if math.isnan(total) else total  # a configuration could not be timed


def _longest_first(pending: list[Trial], per_trial: dict[str, float] | None) -> list[Trial]:
    """``pending`` with the longest estimated trials first (LPT): the short ones then fill the
    slots at the end, instead of one long trial running alone while the others idle."""
    if not per_trial or any(math.isnan(per_trial[t.trial_id]) for t in pending):
        return pending
    return sorted(pending, key=lambda t: -per_trial[t.trial_id])  # stable: ties keep plan order


def _estimate(spec: Spec, data, plan: Plan, pending: list[Trial], address: str | None,
              ways: dict | None = None) -> dict[str, float] | None:
    """The dry run's estimate of each pending trial's seconds, by trial id: their sum is kept
    beside the real wall time (provenance.json), so every local CPU study checks the estimate
    users plan with, and the trials start longest first. On a cluster or a GPU it would time
    the wrong machine, so none is made there (None)."""
    if address or spec.resources.gpu:
        return None
    from mixerlab.sweep.estimate import estimate_per_trial

    return estimate_per_trial(plan, data, spec.resources.cpu, trials=pending, ways=ways)


def _slots(spec: Spec, spec_path, study: Study, options: SweepOptions, n_pending: int) -> int:
    """Trials at a time on the cluster Ray is connected to, after checking it can run them."""
    import ray

    from mixerlab.sweep.ray_start import check_shared_storage
    from mixerlab.sweep.resources import check_fits, concurrent_slots

    if options.address:
        check_shared_storage(study)
    total = ray.cluster_resources()
    check_fits(spec_path, spec.resources, total)
    return concurrent_slots(total, spec.resources, options.max_concurrent or spec.max_concurrent,
                            n_pending)


def _tuner(spec: Spec, data, study: Study, pending: list[Trial], retry_failed: bool, slots: int,
           callback, restore: bool = True):
    """The restored Ray experiment of an interrupted run, else a new one of the pending trials."""
    from ray import tune

    from mixerlab.sweep.trainable import run_trial

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=data, study=spec.name,
                             records_dir=str(study.records_dir.resolve())),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    tuner = resume.restore_tuner(study, trainable, pending, retry_failed) if restore else None
    if tuner is not None:
        return tuner
    scheduler = None
    if spec.scheduler.type == "asha":
        scheduler = tune.schedulers.ASHAScheduler(
            time_attr="epoch", metric="val_acc", mode="max", max_t=spec.train_config().epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor)
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.to_dict() for t in pending])},
        tune_config=tune.TuneConfig(max_concurrent_trials=slots, scheduler=scheduler,
                                    time_budget_s=spec.time_budget_s,
                                    # a worker runs trial after trial: no process
                                    # start and torch import per trial
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            name=resume.next_run_name(study), storage_path=str(study.ray_dir.resolve()),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[callback], verbose=0),
    )


def _all_finished(trials, pending: list[Trial]) -> bool:
    """Whether this session finished every trial it set out to run. Interrupted, the estimate
    covers trials it did not finish, so their ratio would say nothing about the estimate."""
    finished = set(trials["trial_id"][trials["status"].isin(FINAL)]) if len(trials) else set()
    return all(t.trial_id in finished for t in pending)


# -- experiment trackers (--log): fed from the records; see mixerlab/trackers/hub.py ---------
def _open_trackers(options: SweepOptions, study: Study, name: str, plan: Plan, records: dict):
    """The sweep's trackers (None without --log), given every record they have not got yet.
    While they are open, StudyCallback logs each record it writes to them."""
    from mixerlab.trackers import make_trackers

    trackers = make_trackers(options.log, study.path, name,
                             {t.trial_id: group_id(t) for t in plan.trials}, log_dir=options.log_dir)
    if trackers is not None:
        trackers.catch_up(records)
    return trackers


def _close_trackers(trackers, study: Study) -> None:
    if trackers is not None:  # records harvested after a restart, and logs that failed
        trackers.catch_up(study.records())
        trackers.close()
