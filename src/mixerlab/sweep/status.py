"""What a study holds: done, running, failed, pending, and why."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mixerlab.errors import ConfigError
from mixerlab.results import MARKER
from mixerlab.sweep.study import Study


def trial_statuses(path: str | Path) -> list[dict]:
    """One row per planned trial: id, variant, patch size, seed, status, error."""
    study = Study(path)
    if study.marker is None:
        raise ConfigError(f"{study.path}: not a mixerlab study (no {MARKER}); give a folder made by "
                          "`mixerlab sweep`, e.g. results/quick")
    records = study.records()
    rows = [{k: r.get(k) for k in ("trial_id", "variant", "patch_size", "seed", "status",
                                    "error", "test_acc")} for r in records.values()]
    n_total = study.marker.get("n_trials", len(rows))
    lock = study.path / ".lock"
    running = _locked(lock)
    rest = n_total - len(rows)
    if rest > 0:
        rows.append({"trial_id": "", "variant": "", "status": "running" if running else "pending",
                     "error": f"{rest} trial(s) without a result yet"
                     + (" (a sweep is running now)" if running else "; re-run the sweep to finish them"),
                     "count": rest})
    return rows


def summary(path) -> str:
    counts = Counter()
    for r in trial_statuses(path):
        counts[r["status"]] += r.get("count", 1)
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _locked(lock: Path) -> bool:
    import fcntl
    import os

    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def status_json(path) -> str:
    return json.dumps(trial_statuses(path), indent=2, default=str)
