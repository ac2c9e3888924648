"""The trackers of one sweep: log each finished record once to each, and catch up later.

Records are the ground truth (``records/<trial_id>.json``), so trackers log from them, in
the driver: a trial is logged when its record is written (ok, stopped by ASHA, diverged,
failed), and at the start and end of every sweep each record of the plan that a tracker has
not got yet is logged too: records from before ``--log`` was given, records harvested after
a driver was killed, and logs that failed (a tracker's failure is one line on stderr and
never stops the sweep). ``<study>/trackers/logged.jsonl`` is the ledger: one line per
(tracker destination, trial, record version) logged.

The callback reaches the trackers through :func:`publish`, not an attribute: Tune pickles its
callbacks with the experiment and a resumed sweep gets the first run's copy back, which would
log to the first run's ``--log`` choices instead of this run's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mixerlab.errors import ConfigError
from mixerlab.record import rows
from mixerlab.trackers.registry import first_line, get_tracker
from mixerlab.trackers.run import from_record

MAX_FAILURES = 2  # failures in a row after which a tracker rests until the next sweep


class Trackers:
    def __init__(self, trackers: dict, ledger: Path, groups: dict[str, str]):
        self.trackers = trackers  # name -> tracker
        self.ledger = ledger
        self.groups = groups  # trial id -> group id, in the plan's order
        self.failures = dict.fromkeys(trackers, 0)
        self.done = self._read_ledger()

    def _key(self, name: str) -> str:
        return f"{name} {self.trackers[name].destination}"

    def _read_ledger(self) -> set[tuple]:
        done = set()
        try:
            lines = self.ledger.read_text().splitlines()
        except OSError:
            return done
        for line in lines:
            try:
                d = json.loads(line)
                done.add((d["tracker"], d["trial_id"], d["finished_at"]))
            except (ValueError, KeyError, TypeError):
                continue  # the last line of a killed write: that trial is logged again
        return done

    def log(self, record: dict) -> int:
        """Log one record to every tracker that lacks it; how many trackers logged it. A budget
        ladder's record is one run per budget (``record.rows``), a smaller budget's grouped
        apart from the largest's (``<group>/e<budget>``, as its trial id)."""
        group = self.groups.get(record["trial_id"], record["trial_id"])
        return max(self._log(row, group + row["trial_id"][len(record["trial_id"]):])
                   for row in rows(record))

    def _log(self, record: dict, group: str) -> int:
        tid, version = record["trial_id"], str(record.get("finished_at", ""))
        run = from_record(record, group)
        logged = 0
        for name, tracker in self.trackers.items():
            key = (self._key(name), tid, version)
            if key in self.done or self.failures[name] >= MAX_FAILURES:
                continue
            try:
                tracker.log(run)
            except Exception as err:  # a tracker's trouble must not stop the sweep
                self.failures[name] += 1
                rest = (f"; {MAX_FAILURES} failures in a row, so no more logging to it in this "
                        "sweep" if self.failures[name] >= MAX_FAILURES else "")
                print(f"--log {name}: could not log trial {tid} ({type(err).__name__}: "
                      f"{first_line(err)}); the next sweep logs it{rest}", file=sys.stderr)
                continue
            self.failures[name] = 0
            self.done.add(key)
            with open(self.ledger, "a") as f:  # one short line: a kill tears at most the last
                f.write(json.dumps({"tracker": key[0], "trial_id": tid, "finished_at": version})
                        + "\n")
            logged += 1
        return logged

    def catch_up(self, records: dict[str, dict]) -> None:
        """Log every record of the plan a tracker has not got (see the module docstring)."""
        counts = [self.log(records[tid]) for tid in self.groups if tid in records]
        if any(counts):
            print(f"trackers: logged {sum(1 for c in counts if c)} trial(s) not logged before",
                  file=sys.stderr)

    def close(self) -> None:
        for key in [k for k, hub in _ATTACHED.items() if hub is self]:
            del _ATTACHED[key]
        for tracker in self.trackers.values():
            try:
                tracker.close()
            except Exception as err:
                print(f"--log: closing a tracker failed ({first_line(err)})", file=sys.stderr)


_ATTACHED: dict[str, Trackers] = {}  # study folder -> its trackers, in this driver process


def publish(study_path, record: dict) -> None:
    """Log a just-written record to the trackers attached to its study (none: nothing)."""
    hub = _ATTACHED.get(os.path.abspath(study_path))
    if hub is not None:
        hub.log(record)


def make_trackers(names, study_path, study: str, groups: dict[str, str],
                  log_dir=None) -> Trackers | None:
    """The trackers ``names`` for a study (None for none), attached to it until closed.

    Each writes under ``log_dir``/NAME (default ``<study>/trackers/NAME``); one that cannot
    start (e.g. an unreachable MLflow store) is one line, exit 2. ``groups``: trial id -> group id for the plan."""
    names = list(dict.fromkeys(names or ()))
    if not names:
        return None
    base = Path(log_dir) if log_dir else Path(study_path) / "trackers"
    made = {}
    for name in names:
        try:
            made[name] = tracker = get_tracker(name).cls(base / name, study)
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(f"--log {name}: could not start ({type(err).__name__}: "
                              f"{first_line(err)})") from None
        hint = getattr(tracker, "hint", "")
        print(f"--log {name}: {tracker.destination}" + (f"; {hint}" if hint else ""),
              file=sys.stderr)
    ledger = Path(study_path) / "trackers" / "logged.jsonl"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    hub = Trackers(made, ledger, groups)
    _ATTACHED[os.path.abspath(study_path)] = hub  # until close(): see publish
    return hub
