"""Driver-side Tune callback: saves each finished trial's record and shows one live line.

The line: ``trials 5/12 done, 2 running, 1 failed, 4 pending | best val 88.1% (conv p4) |
2m10s elapsed, ~3m left``. On a terminal it is redrawn in place; otherwise a line is
printed when a trial starts or ends, so CI logs stay short.

The time left comes from the dry run's estimate of each trial, scaled by how the finished
trials compared with theirs: a study's trials can differ twentyfold (patch 1 against patch 4),
so a mean over the first finished trials would be far off.
"""

from __future__ import annotations

import json
import math
import sys
import time

from ray import tune

from mixerlab import trackers
from mixerlab.sweep.study import Study
from mixerlab.sweep.trials import Trial


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def eta_seconds(costs: dict[str, float], durations: dict[str, float], running: dict[str, float],
                pending: list[str], slots: int) -> float | None:
    """Seconds left: the estimated seconds (``costs``, by trial id) of the ``pending`` trials
    and what is left of the ``running`` ones (seconds they have run, by id), each scaled by
    real/estimated over the finished ``durations`` (1 before any finished), over ``slots``.
    None where a trial has no usable estimate."""
    ids = list(pending) + list(running) + list(durations)
    if not costs or any(not math.isfinite(costs.get(i, math.nan)) or costs[i] <= 0 for i in ids):
        return None
    est_done = sum(costs[i] for i in durations)
    ratio = sum(durations.values()) / est_done if durations else 1.0
    left = ratio * sum(costs[i] for i in pending)
    left += sum(max(0.0, ratio * costs[i] - ran) for i, ran in running.items())
    return left / max(1, slots)


class StudyCallback(tune.Callback):
    """Picklable (it only holds paths and counters): Ray stores it with the experiment."""

    def __init__(self, study_path: str, study_name: str, n_total: int, n_done_before: int,
                 slots: int, stopped_record, note: str = "", costs: dict[str, float] | None = None):
        self.study_path, self.study_name = study_path, study_name
        self.note = note  # e.g. an adaptive study's "4/6 comparisons decided"
        self.n_total, self.done_before, self.slots = n_total, n_done_before, slots
        self.stopped_record = stopped_record  # builds a row for an early-stopped trial
        self.costs = dict(costs or {})  # the dry run's seconds per pending trial, by trial id
        self.done_ids: set[str] = set()  # trials finished before this driver (a restored run)
        self.reset()

    def reset(self) -> None:
        self.t0 = time.time()
        self.running: set[str] = set()
        self.finished: dict[str, str] = {}
        self.took: dict[str, float] = {}  # seconds per finished trial, by mixerlab trial id
        self.started: dict[str, float] = {}
        self.ids: dict[str, str] = {}  # Tune's trial id -> mixerlab's
        self.best = (-math.inf, "")

    def __setstate__(self, state):  # a restored driver starts its clock and counters afresh
        self.__dict__.update(state)
        self.reset()
        # Tune restores the callback pickled when the run first started: its count of trials
        # done before then is stale. Count what the study holds now.
        from mixerlab.record import FINAL

        records = Study(self.study_path).records()
        # The estimates are the first session's: the trials done since then are not left.
        self.done_ids = {t for t, r in records.items() if r.get("status") in FINAL}
        self.done_before = len(self.done_ids)

    # -- Tune hooks -----------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self.started[trial.trial_id] = time.time()
        self.ids[trial.trial_id] = Trial.from_dict(trial.config["trial"]).trial_id
        self._show(event=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        va = result.get("val_acc")
        if va is not None and va == va and va > self.best[0]:
            t = Trial.from_dict(trial.config["trial"]).config.model
            self.best = (va, f"{t.label} p{t.patch_size}")
        if result.get("final"):
            record = json.loads(result["record_json"])
            self._save(record)
            self._finish(trial, record["status"])
        else:
            self._show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.finished:  # stopped by the scheduler before its end
            rec = self.stopped_record(Trial.from_dict(trial.config["trial"]), trial.last_result,
                                      trial.checkpoint)
            self._save(rec)
            self._finish(trial, rec["status"])

    def on_trial_error(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.finished:  # the worker died more than max_failures times
            from mixerlab.record import failed

            err = RuntimeError(f"worker failed {trial.num_failures} times: "
                               f"{str(trial.error_file or 'see logs')}")
            t = Trial.from_dict(trial.config["trial"])
            rec = failed(t.config, err, trial_id=t.trial_id, study=self.study_name)
            self._save(rec)
            self._finish(trial, "error")

    def _save(self, record: dict) -> None:
        Study(self.study_path).write_record(record)
        # The experiment trackers of this sweep (--log), if any, log it from the record.
        trackers.publish(self.study_path, record)

    def _finish(self, trial, status: str) -> None:
        self.finished[trial.trial_id] = status
        self.running.discard(trial.trial_id)
        if trial.trial_id in self.started:
            self.took[self.ids[trial.trial_id]] = time.time() - self.started.pop(trial.trial_id)
        Study(self.study_path).write_tables()
        self._show(event=True)

    # -- the line -------------------------------------------------------------------------
    def line(self) -> str:
        done = self.done_before + len(self.finished)
        failed = sum(s in ("error", "oom", "diverged") for s in self.finished.values())
        pending = max(0, self.n_total - done - len(self.running))
        elapsed = time.time() - self.t0
        eta = ""
        left = self._left()
        if left is not None:
            eta = f", ~{_fmt(left)} left"
        elif self.took:
            per_slot = sum(self.took.values()) / len(self.took)
            eta = f", ~{_fmt(per_slot * (pending + len(self.running) / 2) / max(1, self.slots))} left"
        best = f" | best val {self.best[0]:.1f}% ({self.best[1]})" if self.best[1] else ""
        note = f" | {self.note}" if getattr(self, "note", "") else ""  # absent in older pickles
        return (f"trials {done}/{self.n_total} done, {len(self.running)} running, {failed} failed, "
                f"{pending} pending{best}{note} | {_fmt(elapsed)} elapsed{eta}")

    def _left(self) -> float | None:
        """Seconds left by the per-trial estimates (``eta_seconds``), or None without them."""
        costs = getattr(self, "costs", None)  # absent in older pickles
        if not costs:
            return None
        now = time.time()
        running = {self.ids[t]: now - self.started[t] for t in self.running}  # set together
        seen = set(running) | set(self.took) | self.done_ids
        pending = [i for i in costs if i not in seen]
        return eta_seconds(costs, self.took, running, pending, self.slots)

    def _show(self, event: bool = False) -> None:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K" + self.line())
            sys.stderr.flush()
        elif event:
            print(self.line(), file=sys.stderr, flush=True)
