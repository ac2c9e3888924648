"""The tools the fault scenarios (``fault_scenarios.py``) are built from: ``mixerlab`` run
in a process session of its own, bounded waits, and what a study holds on disk.

Process hygiene: every sweep and Ray node runs in its own session (``start_new_session``), so
it can be killed as a unit, and the caller ends whatever is left with :func:`end_sessions` --
never ``ray stop --force``, which would also stop other people's Ray on a shared machine.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:  # the process helpers are the tests' own, shared with test_connect
    sys.path.insert(0, str(TESTS))

from processes import cmdline, kill_session, session_pids  # noqa: E402

SWEEP_TIMEOUT = 240  # seconds; a healthy sweep here takes 20-60 s


# -- processes ----------------------------------------------------------------------------
_SESSIONS: list[int] = []  # sessions started since the last end_sessions()


def watch_session(sid: int) -> None:
    """A session started here (``start_new_session``), for :func:`end_sessions` to end."""
    _SESSIONS.append(sid)


def end_sessions() -> None:
    """Kill whatever is left of the sessions the scenarios started (and only those)."""
    while _SESSIONS:
        kill_session(_SESSIONS.pop())


class Sweep:
    """``mixerlab sweep ARGS`` in its own session, output in files (no pipe can fill up)."""

    def __init__(self, *args, log: Path, env: dict | None = None, command="sweep"):
        self.log = log
        self.started = time.monotonic()
        with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mixerlab", command, *map(str, args)],
                                         stdout=out, stderr=err, start_new_session=True,
                                         env={**os.environ, **(env or {})})
        watch_session(self.proc.pid)
        self.pid = self.proc.pid
        self.seconds = None

    @property
    def stdout(self) -> str:
        return Path(f"{self.log}.out").read_text()

    @property
    def stderr(self) -> str:
        return Path(f"{self.log}.err").read_text()

    @property
    def returncode(self):
        return self.proc.poll()

    def wait(self, timeout: float = SWEEP_TIMEOUT) -> Sweep:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_session()
            raise AssertionError(f"mixerlab did not finish within {timeout:.0f} s; stderr:\n"
                                 f"{self.stderr[-3000:]}") from None
        self.seconds = time.monotonic() - self.started
        return self

    def kill_session(self) -> None:
        """Power cut: the driver and every Ray process it started, at once."""
        kill_session(self.pid)
        self.proc.wait(30)

    def kill_driver(self) -> None:
        """Only the driver: Ray's own processes are orphaned and keep running for a while."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(30)


def sweep(*args, log: Path, env: dict | None = None, timeout: float = SWEEP_TIMEOUT) -> Sweep:
    return Sweep(*args, log=log, env=env).wait(timeout)


def wait_for(predicate, timeout: float, what: str, proc: Sweep | None = None, every=0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.returncode is not None:
            raise AssertionError(f"{what}: mixerlab exited ({proc.returncode}) first; stderr:\n"
                                 f"{proc.stderr[-3000:]}")
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def run_cli(*args) -> tuple[int, str, str]:
    """``mixerlab ARGS`` in this process, as the tests' ``run_cli`` fixture runs it:
    (exit code, stdout, stderr). In-process, so a scenario can tell whether it started Ray."""
    from mixerlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder): what "nothing written" means."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


# -- study inspection ---------------------------------------------------------------------
TRIAL_DIR = re.compile(r"trial_id_([0-9a-f]{12})")


def record_bytes(study: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((study / "records").glob("*.json"))}


def kept(before: dict[str, bytes], study: Path) -> int:
    """How many of the records ``before`` are still byte for byte the same."""
    after = record_bytes(study)
    return sum(after.get(tid) == content for tid, content in before.items())


def resumed_from(study: Path, tid: str) -> int:
    """The epoch a trial's record says it resumed from (0: it started over, or no record)."""
    try:
        return int(json.loads((study / "records" / f"{tid}.json").read_text())["resumed_from_epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def trials_with_checkpoint(study: Path) -> set[str]:
    """Trials that have saved at least one epoch checkpoint in Ray's experiment folder."""
    out = set()
    for ckpt in (study / "ray").glob("run-*/*/checkpoint_*"):
        m = TRIAL_DIR.search(ckpt.parent.name)
        if m:
            out.add(m.group(1))
    return out


def mid_trial(study: Path) -> set[str]:
    """Trials with a checkpoint but no record yet: killed now, they are cut mid-training."""
    return trials_with_checkpoint(study) - set(record_bytes(study))


def ray_known_checkpoints(study: Path) -> dict[str, int]:
    return {t: epoch for t, (epoch, _) in ray_named_checkpoints(study).items()}


def ray_named_checkpoints(study: Path) -> dict[str, tuple[int, Path]]:
    """Unfinished trial id -> epoch of the checkpoint Ray's saved experiment state will
    restore it from (Ray 2.x ``experiment_state-*.json`` layout).

    That is the trial's checkpoint manager, not ``last_result``: Tune records a result that
    carries a checkpoint first and registers the checkpoint only when the trial's ``save``
    task comes back, so a snapshot taken in between names a checkpoint in ``last_result``
    that a restored run does not know about.
    """
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    out = {}
    for path in (study / "ray").glob("run-*/experiment_state-*.json"):
        try:
            trial_data = json.loads(path.read_text())["trial_data"]
        except (OSError, ValueError, KeyError):
            continue  # being rewritten: look again later
        for trial_json, meta_json in trial_data:
            trial = json.loads(trial_json)
            m = TRIAL_DIR.search(trial.get("relative_logdir") or "")
            meta = _TrainingRunMetadata.from_json_state(meta_json)
            latest = meta.checkpoint_manager and meta.checkpoint_manager.latest_checkpoint_result
            if m and latest and not (meta.last_result or {}).get("final"):
                out[m.group(1)] = (int(latest.metrics["epoch"]),
                                   path.parent / Path(latest.checkpoint.path).parent.name
                                   / Path(latest.checkpoint.path).name)
    return out


def unfinished_with_checkpoint(study: Path) -> dict[str, int]:
    """Trials Ray's saved experiment state would resume from a checkpoint: killed now, they
    continue mid-training."""
    return {t: e for t, e in ray_known_checkpoints(study).items() if t not in record_bytes(study)}


def stale_temporaries(study: Path) -> list[Path]:
    """Our atomic writers' leftovers (``.name.XXXX.tmp``); Ray's own folder is Ray's business."""
    return [p for p in study.rglob(".*.tmp") if "ray" not in p.relative_to(study).parts[:1]]


def saved_rounds(study: Path) -> list[dict]:
    try:
        return json.loads((study / "rounds.json").read_text())
    except (OSError, ValueError):
        return []  # not written yet (written atomically: never half)


def mid_round(study: Path) -> list[dict] | None:
    """rounds.json, when its latest round has some but not all of its trials recorded."""
    saved = saved_rounds(study)
    if not saved:
        return None
    last, done = {t["trial_id"] for t in saved[-1]["trials"]}, set(record_bytes(study))
    return saved if last & done and not last <= done else None


def trial_workers(sid: int) -> list[int]:
    """Ray worker processes running a trial (``ray::ImplicitFunc...``) in a session."""
    return [p for p in session_pids(sid) if cmdline(p).startswith("ray::ImplicitFunc")]


def trial_of_worker(pid: int) -> str | None:
    """The trial id a worker runs: Tune moves it into ``.../working_dirs/<trial dir>``."""
    try:
        m = TRIAL_DIR.search(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    return m.group(1) if m else None
