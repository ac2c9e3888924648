"""A study folder ``results/<name>/``: marker, lock, per-trial records and the tidy tables.

Ground truth is one JSON record per finished trial in ``records/`` (written atomically,
keyed by trial id, so a trial can never appear twice); ``trials.parquet``, ``trials.csv``
and ``history.parquet`` are rebuilt from the records after every trial, also atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from mixerlab import provenance
from mixerlab.errors import ConfigError
from mixerlab.record import rows as record_rows
from mixerlab.results import MARKER, atomic_write_csv, atomic_write_parquet, atomic_write_text

MIN_FREE_MB = 200


class Study:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records_dir = self.path / "records"
        self.ray_dir = self.path / "ray"
        self.logs_dir = self.path / "logs"
        self._lock_fd: int | None = None

    # -- identity -------------------------------------------------------------------------
    @property
    def marker(self) -> dict | None:
        try:
            return json.loads((self.path / MARKER).read_text())
        except (OSError, ValueError):
            return None

    def check_owned(self) -> None:
        """Refuse a folder mixerlab did not create: resuming unpickles Ray's state from it."""
        if self.path.exists() and any(self.path.iterdir()) and self.marker is None:
            raise ConfigError(
                f"{self.path}: exists but is not a mixerlab study (no {MARKER}); mixerlab only "
                "resumes folders it created itself. Choose another --results folder or spec name"
            )

    def create(self, fingerprint: str, n_trials: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if self.marker is not None:
            return  # keep the original creation time
        atomic_write_text(self.path / MARKER, json.dumps({
            "fingerprint": fingerprint, "n_trials": n_trials, "created_at": provenance.now(),
            "mixerlab_version": provenance.versions()["mixerlab_version"]}, indent=2))

    def refingerprint(self, fingerprint: str, n_trials: int, why: str = "extended_at") -> None:
        """The spec was extended (``--extend``), or its fingerprint is recorded in the older
        form (``migrated_at``): record the new fingerprint, keep the rest."""
        marker = {**(self.marker or {}), "fingerprint": fingerprint, "n_trials": n_trials,
                  why: provenance.now()}
        atomic_write_text(self.path / MARKER, json.dumps(marker, indent=2))

    def archive(self) -> Path:
        """Move the folder aside (nothing is deleted) and return where it went."""
        stamp = provenance.now().replace(":", "").replace("+0000", "Z")
        dest = self.path.with_name(f"{self.path.name}.old-{stamp}")
        self.path.rename(dest)
        return dest

    # -- safety ---------------------------------------------------------------------------
    def check_writable(self) -> None:
        parent = self.path if self.path.exists() else self.path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():  # mkdir below it would fail with a traceback
            raise ConfigError(f"{parent}: is a file, not a folder; choose another --results folder")
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"{parent}: not writable; choose a --results folder you can write to")
        free_mb = shutil.disk_usage(parent).free / 2**20
        if free_mb < MIN_FREE_MB:
            raise ConfigError(f"{parent}: only {free_mb:.0f} MiB free (need {MIN_FREE_MB}); free "
                              "disk space or choose another --results folder")

    def lock(self) -> None:
        """One sweep per study at a time (an advisory lock the kernel drops if we die)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(f"{self.path}: another mixerlab sweep (pid {holder}) is running this "
                              "study; wait for it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary files of a writer that was killed before its rename (never read)."""
        stale = [p for p in self.path.rglob(".*.tmp")
                 if p.is_file() and p.relative_to(self.path).parts[0] != "ray"]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- records and tables ---------------------------------------------------------------
    def scan_records(self) -> tuple[dict[str, dict], list[Path]]:
        """(records by trial id, record files that do not parse): one pass over records/.

        A torn file cannot come from our atomic writes; one damaged on disk counts as not
        done, so its trial runs again."""
        out, bad = {}, []
        for f in sorted(self.records_dir.glob("*.json")) if self.records_dir.exists() else []:
            try:
                rec = json.loads(f.read_text())
                out[rec["trial_id"]] = rec
            except (OSError, ValueError, KeyError, TypeError):
                bad.append(f)
        return out, bad

    def records(self) -> dict[str, dict]:
        return self.scan_records()[0]

    def damaged_tables(self) -> dict[str, str]:
        """Tables that are 'missing' or 'unreadable' (e.g. truncated); the records rebuild them."""
        out = {}
        for name in ("trials.parquet", "trials.csv", "history.parquet"):
            path = self.path / name
            if not path.exists():
                out[name] = "missing"
            elif name.endswith(".parquet"):
                try:
                    pd.read_parquet(path)
                except Exception:  # pyarrow raises several types for a damaged file
                    out[name] = "unreadable"
        return out

    def write_record(self, record: dict) -> None:
        atomic_write_text(self.records_dir / f"{record['trial_id']}.json",
                          json.dumps(record, default=str, indent=1))

    def forget(self, trial_ids) -> None:
        for tid in trial_ids:
            (self.records_dir / f"{tid}.json").unlink(missing_ok=True)

    def write_tables(self, order: list[str] | None = None) -> pd.DataFrame:
        """Rebuild trials.parquet / trials.csv / history.parquet from the records.

        One row per trial, but for a budget ladder one row per budget (``record.rows``): each
        with ``epochs`` = that budget, its own ``trial_id`` (``<id>/e<budget>``; the largest
        budget's keeps the trial's id) and ``ladder`` = the trial's id, and its own history, so
        the report, the claims and the stability check read them like separate runs."""
        recs = self.records()
        ids = [t for t in (order or []) if t in recs] + sorted(set(recs) - set(order or []))
        rows, hist = [], []
        for rec in (dict(row) for tid in ids for row in record_rows(recs[tid])):
            history = rec.pop("history", []) or []
            rows.append(rec)
            keys = {k: rec.get(k) for k in ("trial_id", "study", "variant", "model", "mixer",
                                            "patch_size", "kernel_size", "depth", "width",
                                            "mlp_ratio", "heads", "norm", "seed")}
            hist.extend({**keys, **h} for h in history)
        trials = pd.DataFrame(rows)
        atomic_write_parquet(self.path / "trials.parquet", trials)
        atomic_write_csv(self.path / "trials.csv", trials)
        atomic_write_parquet(self.path / "history.parquet", pd.DataFrame(hist))
        return trials
