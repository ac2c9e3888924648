"""Driver-side Tune callback: saves each finished trial's record and shows one live line.

The line: ``trials 5/12 done, 2 running, 1 failed, 4 pending | best val 88.1% (conv p4) |
2m10s elapsed, ~3m left``. On a terminal it is redrawn in place; otherwise a line is
printed when a trial starts or ends, so CI logs stay short.
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


class StudyCallback(tune.Callback):
    """Picklable (it only holds paths and counters): Ray stores it with the experiment."""

    def __init__(self, study_path: str, study_name: str, n_total: int, n_done_before: int,
                 slots: int, stopped_record, note: str = ""):
        self.study_path, self.study_name = study_path, study_name
        self.note = note  # e.g. an adaptive study's "4/6 comparisons decided"
        self.n_total, self.done_before, self.slots = n_total, n_done_before, slots
        self.stopped_record = stopped_record  # builds a row for an early-stopped trial
        self.reset()

    def reset(self) -> None:
        self.t0 = time.time()
        self.running: set[str] = set()
        self.finished: dict[str, str] = {}
        self.durations: list[float] = []
        self.started: dict[str, float] = {}
        self.best = (-math.inf, "")

    def __setstate__(self, state):  # a restored driver starts its clock and counters afresh
        self.__dict__.update(state)
        self.reset()
        # Tune restores the callback pickled when the run first started: its count of trials
        # done before then is stale. Count what the study holds now.
        from mixerlab.sweep.study import FINAL

        records = Study(self.study_path).records().values()
        self.done_before = sum(r.get("status") in FINAL for r in records)

    # -- Tune hooks -----------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self.started[trial.trial_id] = time.time()
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
            from mixerlab.sweep.trainable import error_record

            err = RuntimeError(f"worker failed {trial.num_failures} times: "
                               f"{str(trial.error_file or 'see logs')}")
            rec = error_record(Trial.from_dict(trial.config["trial"]), self.study_name, err)
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
            self.durations.append(time.time() - self.started.pop(trial.trial_id))
        Study(self.study_path).write_tables()
        self._show(event=True)

    # -- the line -------------------------------------------------------------------------
    def line(self) -> str:
        done = self.done_before + len(self.finished)
        failed = sum(s in ("error", "oom", "diverged") for s in self.finished.values())
        pending = max(0, self.n_total - done - len(self.running))
        elapsed = time.time() - self.t0
        eta = ""
        if self.durations:
            per_slot = sum(self.durations) / len(self.durations)
            eta = f", ~{_fmt(per_slot * (pending + len(self.running) / 2) / max(1, self.slots))} left"
        best = f" | best val {self.best[0]:.1f}% ({self.best[1]})" if self.best[1] else ""
        note = f" | {self.note}" if getattr(self, "note", "") else ""  # absent in older pickles
        return (f"trials {done}/{self.n_total} done, {len(self.running)} running, {failed} failed, "
                f"{pending} pending{best}{note} | {_fmt(elapsed)} elapsed{eta}")

    def _show(self, event: bool = False) -> None:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K" + self.line())
            sys.stderr.flush()
        elif event:
            print(self.line(), file=sys.stderr, flush=True)
