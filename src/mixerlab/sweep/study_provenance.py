"""``<study>/provenance.json``: how the study was run, one entry per driver session.

A study can take several sessions (interrupted, resumed, extended). Each session records its
command, wall time, trials at a time and the dry run's estimate of its trials beside the
real wall time (so every local CPU study checks the estimate users plan with); the study's
totals, hardware and library versions are kept above them.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from mixerlab import provenance
from mixerlab.analysis.load import run_ids
from mixerlab.results import atomic_write_text
from mixerlab.spec import Spec
from mixerlab.sweep.study import Study


def session_entry(command: str, started: str, wall: float, slots: int,
                  estimate: float | None) -> dict:
    """One driver session: ``estimate`` is the dry run's seconds for the trials it ran (None
    if not made, or if the session did not finish them)."""
    shared = estimate / slots if estimate and slots else None
    return {"command": command, "started_at": started, "finished_at": provenance.now(),
            "wall_time_s": round(wall, 1), "concurrent_trials": slots,
            # estimated seconds of this session's trials shared among its slots, and real / estimate
            "estimate_wall_s": round(shared, 1) if shared else None,
            "wall_over_estimate": round(wall / shared, 3) if shared else None}


def trial_seconds(trials: pd.DataFrame) -> float:
    """Seconds the study's trials ran, each trial once: a budget ladder's smaller budgets are
    rows of the same trial (their ``trial_time_s`` is part of the run's), so only the row of
    the run itself counts."""
    if not len(trials) or "trial_time_s" not in trials.columns:
        return 0.0
    own = trials[trials["trial_id"] == run_ids(trials)]
    return float(pd.to_numeric(own["trial_time_s"], errors="coerce").sum())


def provenance_document(spec: Spec, sessions: list[dict], n_trials: int, trials: pd.DataFrame,
                        ways: dict | None = None) -> dict:
    """The study's provenance from its ``sessions`` (the last one is this one), its table and
    its ways to run (``execution.json``; None: not chosen)."""
    last = sessions[-1]
    slots = last["concurrent_trials"]
    busy = trial_seconds(trials)
    total_wall = sum(s["wall_time_s"] for s in sessions)
    return {
        "study": spec.name, "question": spec.question, "command": last["command"],
        "started_at": sessions[0]["started_at"], "finished_at": last["finished_at"],
        "n_trials": n_trials, "n_finished": int(run_ids(trials).nunique()) if len(trials) else 0,
        "seeds": spec.seed_list, "wall_time_s": round(total_wall, 1),
        "sum_trial_time_s": round(busy, 1),
        # one session only: the slots of several sessions would mix in the denominator
        "sweep_efficiency": round(busy / (total_wall * slots), 3) if total_wall and slots and
        not math.isnan(busy) and len(sessions) == 1 else None,
        "sessions": sessions, "hardware": provenance.hardware(), "versions": provenance.versions(),
        # each configuration's way to run and its candidates' speeds (execution.json)
        "execution": {"legacy": ways["legacy"], "ways": {
            k: f"{w['variant']} (batch {w['batch_size']}): {w['label']}" for k, w in ways["ways"].items()}}
        if ways else None,
        "spec_fingerprint": spec.fingerprint(),
        # each claim's fingerprint as this session ran it; its registration: claims.json
        "claims": {c.name: c.fingerprint() for c in spec.claims} if spec.claims else None,
    }


def write_provenance(study: Study, spec: Spec, session: dict, n_trials: int,
                     trials: pd.DataFrame) -> None:
    """Add ``session`` to the study's provenance.json and update its totals (atomically)."""
    from mixerlab.sweep.execution_plan import load

    path = study.path / "provenance.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    sessions = previous.get("sessions", []) + [session]
    atomic_write_text(path, json.dumps(provenance_document(spec, sessions, n_trials, trials, load(study)),
                                       indent=2, default=str))
