"""Reliability: real faults, real processes, real Ray; nothing lost, nothing duplicated.

Every fault here is the real thing: SIGKILL of the driver (alone, or with its whole
process session like a power cut), SIGKILL of a trial's worker process, a Ray worker node
stopped mid-trial, torch's own ``OutOfMemoryError`` and an unexpected exception raised
inside a trial by a plugin mixer, results tables truncated or overwritten on disk, two
sweeps racing for one study, a full and a read-only file system (real tmpfs mounts).
Nothing of Ray or torch is mocked.

After each fault the same command is run again (what a user would do) and the study must
hold every planned trial exactly once, with the records of trials finished before the
fault untouched. Ground truth is ``records/<trial_id>.json``; ``trials.parquet`` is checked
against the plan.

Process hygiene: every sweep and Ray node runs in its own session (``start_new_session``),
so a test can kill it as a unit, and an autouse fixture kills whatever is left in those
sessions -- never ``ray stop --force``, which would also stop other people's Ray on a
shared machine. Every wait is bounded.

``MIXERLAB_RELIABILITY_FIGURES=FILE`` makes each scenario append one JSON line (faults
injected, trials planned, lost, duplicated, recovery time) for ``benchmarks/reliability.py``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import alive_nodes
from processes import cmdline, kill_session, session_pids

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fashion = pytest.mark.skipif(
    not FASHION.exists(), reason="real Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
RAY = Path(sys.executable).with_name("ray")
SWEEP_TIMEOUT = 240  # seconds; a healthy sweep here takes 20-60 s

SPEC = """\
name: {name}
question: Does the study survive the fault?
dataset: {dataset}
train: {{epochs: {epochs}, batch_size: 64, measure_throughput: false}}
model: {{depth: 1, width: 16}}
{grid}
seeds: {seeds}
resources: {{cpu: 1}}
execution: {{precision: fp32, memory_format: channels_last, attention_kernel: fused}}
{extra}"""

# Trials long enough (about 0.5 s an epoch on one core) that a kill lands mid-trial.
LONG = dict(subset=8192, epochs=3, seeds=2, grid="grid: {mixer: [conv, identity], patch_size: [7]}")
# Where the kill needs no trial mid-training (before any trial starts, or while a finished
# trial's results are written), four one-epoch trials on a small subset do: the rerun that
# follows trains the whole study again, so this is most of the test's time.
SHORT = dict(subset=1024, epochs=1, seeds=2, grid="grid: {mixer: [conv, identity], patch_size: [7]}")


def write_spec(folder: Path, name="t", *, subset=256, epochs=1, seeds=1, extra="",
               grid="grid: {mixer: [conv, identity], patch_size: [7]}", synthetic=False) -> Path:
    dataset = ("{name: synthetic, synthetic_size: 64}" if synthetic else
               f"{{name: fashion-mnist, train_subset: {subset}, val_fraction: 0.02}}")
    path = folder / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, dataset=dataset, epochs=epochs, seeds=seeds, grid=grid,
                                extra=extra))
    return path


def planned_ids(spec: Path, env: dict | None = None) -> list[str]:
    """The trial ids the plan of ``spec`` holds (in a subprocess when plugins are involved)."""
    if env is None:
        from mixerlab.sweep import expand, load_spec

        return [t.trial_id for t in expand(load_spec(spec), (28, 1, 10)).trials]
    code = ("import json, sys; from mixerlab.sweep import expand, load_spec; "
            "print(json.dumps([t.trial_id for t in expand(load_spec(sys.argv[1]), (28, 1, 10)).trials]))")
    out = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **env}, check=True)
    return json.loads(out.stdout)


# -- processes ----------------------------------------------------------------------------
_SESSIONS: list[int] = []  # sessions started by the running test; ended after it


@pytest.fixture(autouse=True)
def _end_started_sessions():
    yield
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
        _SESSIONS.append(self.proc.pid)
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


# -- study inspection ---------------------------------------------------------------------
TRIAL_DIR = re.compile(r"trial_id_([0-9a-f]{12})")


def record_bytes(study: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((study / "records").glob("*.json"))}


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


def stale_temporaries(study: Path) -> list[Path]:
    """Our atomic writers' leftovers (``.name.XXXX.tmp``); Ray's own folder is Ray's business."""
    return [p for p in study.rglob(".*.tmp") if "ray" not in p.relative_to(study).parts[:1]]


def assert_complete(study: Path, planned: list[str], statuses=("ok",)) -> pd.DataFrame:
    """Every planned trial exactly once in trials.parquet and in records/, no leftovers."""
    trials = pd.read_parquet(study / "trials.parquet")
    assert trials["trial_id"].is_unique, trials["trial_id"].value_counts()
    assert sorted(trials["trial_id"]) == sorted(planned)
    assert sorted(record_bytes(study)) == sorted(planned)
    assert set(trials["status"]) <= set(statuses), trials[["trial_id", "status", "error"]]
    assert not stale_temporaries(study)
    return trials


def assert_resumed(record: bytes, epoch: int, tid: str, *, driver_alive: bool = False) -> None:
    """The trial continued from the checkpoint Ray's snapshot named, or (where Tune had
    already deleted that one) from another of its checkpoints, and its record says so.

    With ``driver_alive`` the driver restores from its own checkpoint manager, which may
    have registered newer checkpoints since the snapshot was read: any of them counts.
    """
    rec = json.loads(record)
    got = rec["resumed_from_epoch"]
    ok = got >= epoch if driver_alive else got == epoch
    assert ok or (got > 0 and "resumed from checkpoint_" in rec.get("resume_note", "")), \
        (tid, epoch, got, rec.get("resume_note"))


def figure(kind: str, *, faults: int, planned: list[str], study: Path | None,
           recovery_s: float | None, note: str = "") -> None:
    """One line of evidence for benchmarks/reliability.py (only when it asks for it)."""
    path = os.environ.get("MIXERLAB_RELIABILITY_FIGURES")
    if not path:
        return
    ids = list(pd.read_parquet(study / "trials.parquet")["trial_id"]) if study else []
    row = {"kind": kind, "faults": faults, "planned": len(planned),
           "lost": len(set(planned) - set(ids)), "duplicated": len(ids) - len(set(ids)),
           "recovery_s": None if recovery_s is None else round(recovery_s, 1), "note": note}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


# == 1. the driver killed at three points, then the same command again ====================
KILL_POINTS = ["before-any-trial", "mid-trial-power-cut", "mid-trial-driver-only",
               "writing-results"]


@needs_fashion
@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_driver_rerun_keeps_every_trial_once(point, tmp_path):
    spec = write_spec(tmp_path, "kill", **(LONG if point.startswith("mid-trial") else SHORT))
    planned = planned_ids(spec)
    results, study = tmp_path / "results", tmp_path / "results" / "kill"
    failpoint = {"MIXERLAB_FAILPOINTS": "trials.parquet:before-rename"}
    first = Sweep(spec, "--results", results, log=tmp_path / "first",
                  env=failpoint if point == "writing-results" else None)
    if point == "before-any-trial":
        wait_for(lambda: (study / "ray").exists(), 120, "ray/ created", first)
        first.kill_session()
    elif point == "mid-trial-power-cut":
        wait_for(lambda: mid_trial(study), 120, "a trial checkpointed", first)
        first.kill_session()
    elif point == "mid-trial-driver-only":  # after one trial is done, while another runs
        wait_for(lambda: record_bytes(study) and set(ray_known_checkpoints(study)) - set(
            record_bytes(study)), 120, "one trial done and another checkpointed", first)
        first.kill_driver()
    else:  # the failpoint SIGKILLs the driver between writing trials.parquet and renaming it
        first.wait()
        assert first.returncode == -signal.SIGKILL, first.stderr
        assert stale_temporaries(study), "the failpoint did not fire"
    before = record_bytes(study)
    assert len(before) < len(planned), "the kill came after the study had finished"
    resumable = {t: e for t, e in ray_known_checkpoints(study).items() if t not in before}
    if (study / "trials.parquet").exists():  # a reader now sees a complete older table
        old = pd.read_parquet(study / "trials.parquet")
        assert set(old["trial_id"]) <= set(before) and old["trial_id"].is_unique

    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    counts = re.findall(r"trials (\d+)/(\d+) done", again.stderr)
    # The live line counts the trials finished before the kill (a restored run's callback
    # would otherwise count from the first start's zero).
    assert counts and int(counts[0][0]) >= len(before), (counts[:3], len(before))
    trials = assert_complete(study, planned)
    after = record_bytes(study)
    for tid, content in before.items():  # finished trials were not trained again
        assert after[tid] == content, f"trial {tid} finished before the kill but was re-run"
    for tid, epoch in resumable.items():  # interrupted trials continued from their checkpoint
        assert_resumed(after[tid], epoch, tid)
    if point == "mid-trial-driver-only":
        assert resumable, "no trial was cut mid-training"
    if point == "writing-results":
        assert "removed 1 temporary file(s) left by an interrupted write" in again.stderr
    assert len(trials) == len(planned)
    figure(f"driver SIGKILL: {point}", faults=1, planned=planned, study=study,
           recovery_s=again.seconds, note=f"{len(before)} record(s) kept byte-identical; "
           f"{sum(e > 0 for e in resumable.values())} trial(s) resumed from a checkpoint")


@needs_fashion
@pytest.mark.slow
def test_snapshot_naming_a_deleted_checkpoint_still_resumes(tmp_path):
    """Tune deletes a trial's older checkpoint when it registers a newer one (num_to_keep),
    so a driver killed before its next snapshot leaves the snapshot naming a folder that is
    gone. Here the kill is real and the deletion is Tune's, done by hand at the same place:
    every trial must still finish, and its record must say how it resumed."""
    spec = write_spec(tmp_path, "gone", **LONG)
    planned = planned_ids(spec)
    results, study = tmp_path / "results", tmp_path / "results" / "gone"
    first = Sweep(spec, "--results", results, log=tmp_path / "first")
    named = wait_for(lambda: {t: v for t, v in ray_named_checkpoints(study).items()
                              if t not in record_bytes(study)}, 120,
                     "Ray's snapshot named a checkpoint of an unfinished trial", first)
    first.kill_session()
    named = {t: v for t, v in ray_named_checkpoints(study).items() if t not in record_bytes(study)}
    assert named, "the kill came after the trials had finished"
    for _, folder in named.values():
        shutil.rmtree(folder, ignore_errors=True)
    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert_complete(study, planned)
    for tid in named:
        rec = json.loads((study / "records" / f"{tid}.json").read_text())
        assert rec["status"] == "ok", rec.get("error")
        assert "unreadable" in rec.get("resume_note", "") or \
            "no readable checkpoint" in rec.get("resume_note", ""), rec.get("resume_note")


# == 1b. a two-stage adaptive study: the driver killed in the middle of a later round =======
ADAPTIVE = dict(subset=256, epochs=1, seeds="{min: 3, max: 4}",
                grid="grid: {mixer: [conv, identity], patch_size: [7]}",
                extra="nuisance: {lr: [0.003, 0.3]}\ntuning: {seeds: 1}\nmax_concurrent: 1\n")


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


@needs_fashion
@pytest.mark.slow
def test_killed_mid_round_of_an_adaptive_study_resumes_that_round(tmp_path):
    """Stage 1 (tuning), then rounds the driver plans from the records and writes to
    rounds.json before they run. A power cut in the middle of a round, then the same command:
    the round is finished as it was planned (not planned again from its partial records), the
    later rounds follow, and every trial of stage 1 and of every round is there exactly once."""
    spec = write_spec(tmp_path, "rounds", **ADAPTIVE)
    stage_one = planned_ids(spec)
    results, study = tmp_path / "results", tmp_path / "results" / "rounds"
    first = Sweep(spec, "--results", results, log=tmp_path / "first")
    wait_for(lambda: mid_round(study), 240, "a round of rounds.json part-finished", first)
    first.kill_session()
    before, rounds_before = record_bytes(study), saved_rounds(study)
    cut = {t["trial_id"] for t in rounds_before[-1]["trials"]} - set(before)
    assert rounds_before and cut, "the kill came after the round had finished"
    assert set(stage_one) <= set(before)  # a round is planned only once stage 1 has finished

    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    rounds_after = saved_rounds(study)
    assert rounds_after[:len(rounds_before)] == rounds_before  # resumed as planned, not re-planned
    planned = stage_one + [t["trial_id"] for r in rounds_after for t in r["trials"]]
    assert len(planned) == len(set(planned))
    trials = assert_complete(study, planned, statuses=("ok", "diverged"))
    after = record_bytes(study)
    for tid, content in before.items():  # finished trials were not trained again
        assert after[tid] == content, f"trial {tid} finished before the kill but was re-run"
    assert set(trials.loc[trials["stage"] == "measure", "trial_id"]) == set(planned) - set(stage_one)
    assert re.search(r"\d+/\d+ comparisons decided", again.stderr), again.stderr[-3000:]
    figure("driver killed mid-round (adaptive seeds)", faults=1, planned=planned, study=study,
           recovery_s=again.seconds, note=f"killed in round {rounds_before[-1]['round']} of "
           f"{len(rounds_after)} with {len(cut)} of its trial(s) unfinished; {len(before)} record(s) "
           "kept byte-identical; the round finished as planned")


# == 2. a trial's worker process killed mid-training =======================================
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


@needs_fashion
@pytest.mark.slow
def test_killed_worker_resumes_from_checkpoint_with_identical_metrics(tmp_path):
    spec = write_spec(tmp_path, "worker", subset=8192, epochs=4,
                      grid="configs: [{mixer: conv, patch_size: 7}]", extra="max_failures: 2\n")
    results, study = tmp_path / "results", tmp_path / "results" / "worker"
    run = Sweep(spec, "--results", results, log=tmp_path / "sweep")
    # Wait until the driver has registered a checkpoint (it is in Ray's saved state), not
    # merely until the worker has written one: killed in between, the retry rightly starts
    # over, since Ray never learnt of that checkpoint.
    wait_for(lambda: set(ray_known_checkpoints(study)) - set(record_bytes(study)), 120,
             "Ray registered a checkpoint of the trial", run)
    workers = wait_for(lambda: trial_workers(run.pid), 30, "the trial's worker process", run)
    assert len(workers) == 1, [cmdline(p) for p in workers]
    os.kill(workers[0], signal.SIGKILL)
    t_fault = time.monotonic()
    run.wait()
    recovery = time.monotonic() - t_fault
    assert run.returncode == 0, run.stderr
    from mixerlab.sweep.runner import prepare
    from mixerlab.train import train

    _, data, plan = prepare(spec)
    (trial,) = plan.trials
    trials = assert_complete(study, [trial.trial_id])
    rec = json.loads((study / "records" / f"{trial.trial_id}.json").read_text())
    assert rec["resumed_from_epoch"] >= 1, "the retry started over instead of resuming"
    assert rec["epochs_run"] == 4 and [h["epoch"] for h in rec["history"]] == [1, 2, 3, 4]
    cfg = trial.config.model_copy(deep=True)
    cfg.train.threads = 1  # as the trainable runs it (resources: {cpu: 1})
    undisturbed = train(cfg, data=data)
    for key in ("test_acc", "test_loss", "val_acc", "val_loss", "train_loss"):
        assert rec[key] == undisturbed[key], (key, rec[key], undisturbed[key])  # bit-for-bit
    figure("trial worker SIGKILL (max_failures: 2)", faults=1, planned=[trial.trial_id],
           study=study, recovery_s=recovery, note=f"resumed from epoch {rec['resumed_from_epoch']}; "
           "test_acc/test_loss/val_acc bit-identical to an undisturbed run")
    assert len(trials) == 1


# == 3. a worker node of a two-node cluster stopped mid-trial ==============================
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _forget_cluster(address: str) -> None:
    """`ray start` notes its cluster in /tmp/ray/ray_current_cluster; `ray stop` would remove it."""
    note = Path("/tmp/ray/ray_current_cluster")
    try:
        if note.read_text().strip().endswith(address.split(":")[-1]):
            note.unlink()
    except OSError:
        pass


@needs_fashion
@pytest.mark.slow
def test_worker_node_stopped_mid_trial_is_rescheduled_on_the_survivor(tmp_path, request):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    _SESSIONS.append(head.pid)  # `ray start` exits; the head's daemons keep its session
    assert head.wait(120) == 0, "ray start --head failed"
    request.addfinalizer(lambda: _forget_cluster(address))
    node = subprocess.Popen([RAY, "start", "--block", f"--address={address}", "--num-cpus=1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    _SESSIONS.append(node.pid)
    wait_for(lambda: alive_nodes(address, env) == 2, 90, "the worker node joined", every=1)
    raylet = [p for p in session_pids(node.pid) if "/raylet " in cmdline(p)]
    node_id = re.search(r"--node_id=([0-9a-f]+)", cmdline(raylet[0])).group(1)

    spec = write_spec(tmp_path, "node", subset=8192, epochs=8, seeds=1,
                      grid="grid: {mixer: [conv, identity], patch_size: [7]}", extra="max_failures: 3\n")
    planned = planned_ids(spec)
    results, study = tmp_path / "results", tmp_path / "results" / "node"
    run = Sweep(spec, "--results", results, "--address", address, log=tmp_path / "sweep", env=env)

    def victims() -> dict[str, int]:  # unfinished trials on the node whose checkpoint Ray knows
        known, done = ray_known_checkpoints(study), record_bytes(study)
        on_node = {trial_of_worker(p) for p in trial_workers(node.pid)}
        return {t: known[t] for t in on_node if t in known and t not in done}

    cut = wait_for(victims, 150, "a trial on the worker node checkpointed", run)
    before = record_bytes(study)
    kill_session(node.pid)  # the node's raylet, its agents and its trial worker: a power cut
    node.wait(30)
    t_fault = time.monotonic()
    run.wait(SWEEP_TIMEOUT)
    recovery = time.monotonic() - t_fault
    assert run.returncode == 0, run.stderr
    trials = assert_complete(study, planned).set_index("trial_id")
    after = record_bytes(study)
    for tid, content in before.items():
        assert after[tid] == content
    for tid, epoch in cut.items():  # moved to the surviving node, resumed from its checkpoint
        assert tid not in before
        assert trials.loc[tid, "ray_node_id"] != node_id and trials.loc[tid, "ray_node_id"]
        assert_resumed(after[tid], epoch, tid, driver_alive=True)
    figure("Ray worker node stopped (2-node cluster)", faults=1, planned=planned, study=study,
           recovery_s=recovery, note="interrupted trial resumed on the head node from epoch "
           + ", ".join(str(e) for e in cut.values()))


# == 4. faults inside trials: real OOM, an unexpected exception, divergence ===============
PLUGIN = '''\
"""Mixers that fail while training, while {flag} exists (forward in eval mode is fine)."""
import os

import torch
from torch import nn

from mixerlab.models.mixers import register_mixer

FLAG = {flag!r}


@register_mixer("oom_on_train")
class OOMOnTrain(nn.Module):
    """Raises torch's real OutOfMemoryError in a training forward pass."""

    def __init__(self, dim, grid):
        super().__init__()

    def forward(self, x):
        if self.training and os.path.exists(FLAG):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return x


@register_mixer("raise_on_train")
class RaiseOnTrain(nn.Module):
    """Raises an unexpected exception in a training forward pass."""

    def __init__(self, dim, grid):
        super().__init__()

    def forward(self, x):
        if self.training and os.path.exists(FLAG):
            raise RuntimeError("injected fault")
        return x
'''


@needs_fashion
@pytest.mark.slow
def test_failing_trials_are_recorded_and_only_they_are_retried(tmp_path):
    flag = tmp_path / "fail-now"
    flag.touch()
    (tmp_path / "faulty_mixers.py").write_text(PLUGIN.format(flag=str(flag)))
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
           "MIXERLAB_PLUGINS": "faulty_mixers"}
    grid = ("configs: [{mixer: conv, patch_size: 7}, {mixer: identity, patch_size: 7}, "
            "{mixer: oom_on_train, patch_size: 7}, {mixer: raise_on_train, patch_size: 7}, "
            "{mixer: conv, patch_size: 7, lr: 1.0e+9, grad_clip: null}]")
    spec = write_spec(tmp_path, "faults", grid=grid)
    planned = planned_ids(spec, env)
    results, study = tmp_path / "results", tmp_path / "results" / "faults"
    first = sweep(spec, "--results", results, log=tmp_path / "first", env=env)
    assert first.returncode == 0, first.stderr
    trials = assert_complete(study, planned, statuses=("ok", "oom", "error", "diverged"))
    rows = {("diverged" if r.lr == 1e9 else r.mixer): r for r in trials.itertuples()}
    assert rows["conv"].status == rows["identity"].status == "ok"
    assert rows["oom_on_train"].status == "oom"
    assert rows["oom_on_train"].error.startswith("out of memory: CUDA out of memory"), rows
    assert rows["raise_on_train"].status == "error"
    assert "RuntimeError: injected fault" in rows["raise_on_train"].error
    assert "faulty_mixers.py" in rows["raise_on_train"].error  # where it happened
    assert rows["diverged"].status == "diverged" and "loss became" in rows["diverged"].error
    status = dict(zip(trials["trial_id"], trials["status"]))

    shown = subprocess.run([sys.executable, "-m", "mixerlab", "status", study], capture_output=True,
                           text=True, timeout=120, env={**os.environ, **env})
    assert shown.returncode == 0, shown.stderr
    assert "1 diverged, 1 error, 2 ok, 1 oom" in shown.stdout
    for line in ("oom", "out of memory"), ("error", "injected fault"), ("diverged", "loss became"):
        assert any(all(w in row for w in line) for row in shown.stdout.splitlines()), shown.stdout

    kept = {tid: c for tid, c in record_bytes(study).items() if status[tid] in ("ok", "diverged")}
    flag.unlink()  # the cause is fixed: the failed trials now succeed
    retry = sweep(spec, "--results", results, "--retry-failed", log=tmp_path / "retry", env=env)
    assert retry.returncode == 0, retry.stderr
    assert "re-running 2 failed trial(s)" in retry.stderr
    assert "2 trial(s) to run (3 already done)" in retry.stderr
    trials = assert_complete(study, planned, statuses=("ok", "diverged"))
    assert sorted(trials["status"]) == ["diverged", "ok", "ok", "ok", "ok"]
    after = record_bytes(study)
    for tid, content in kept.items():  # ok and diverged records untouched
        assert after[tid] == content
    figure("faults inside trials (OOM, exception, divergence)", faults=3, planned=planned,
           study=study, recovery_s=retry.seconds, note="recorded as oom/error/diverged; "
           "--retry-failed re-ran only the 2 failed")

    # The diverged trial ran in Ray's first run; the latest run (the retry) has ended. Its
    # lost record must bring it back, not leave it pending on every re-run.
    (victim,) = [t for t, s in status.items() if s == "diverged"]
    (study / "records" / f"{victim}.json").write_text("{")
    again = sweep(spec, "--results", results, log=tmp_path / "again", env=env)
    assert again.returncode == 0, again.stderr
    assert f"records/{victim}.json is unreadable; trial {victim} will run again" in again.stderr
    trials = assert_complete(study, planned, statuses=("ok", "diverged"))
    assert sorted(trials["status"]) == ["diverged", "ok", "ok", "ok", "ok"]
    assert {t: c for t, c in record_bytes(study).items() if t != victim} == \
        {t: c for t, c in after.items() if t != victim}
    figure("record lost, trial from an older Ray run", faults=1, planned=planned, study=study,
           recovery_s=again.seconds, note="named on stderr; that trial alone ran again")


# == 5. results tables and records corrupted on disk ======================================
@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A small finished study, copied by each test that damages it."""
    if not FASHION.exists():
        pytest.skip("real Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
    root = tmp_path_factory.mktemp("finished")
    spec = write_spec(root, "done")
    run = sweep(spec, "--results", root / "results", log=root / "sweep")
    assert run.returncode == 0, run.stderr
    yield spec, root / "results" / "done"
    while _SESSIONS:
        kill_session(_SESSIONS.pop())


def _copy_study(finished, tmp_path) -> tuple[Path, Path, Path]:
    spec, src = finished
    results = tmp_path / "results"
    shutil.copytree(src, results / src.name, symlinks=True)
    return spec, results, results / src.name


def test_study_recorded_under_the_older_fingerprint_is_resumed_not_refused(finished_study, tmp_path):
    """Studies made before fingerprints left defaults out carry the full-dump fingerprint: the
    same spec must still be recognised (a no-op here), and the marker takes the new form."""
    import hashlib

    from mixerlab.sweep import load_spec

    spec, results, study = _copy_study(finished_study, tmp_path)
    loaded = load_spec(spec)
    # Every field dumped, as studies recorded it then: the fields added since (tuning,
    # execution, claims) were not in that form.
    full = loaded.model_dump(mode="json", exclude={"question", "resources", "max_concurrent",
                                                   "max_failures", "time_budget_s", "tuning",
                                                   "execution", "claims"})
    legacy = hashlib.sha1(json.dumps(full, sort_keys=True).encode()).hexdigest()[:12]
    assert legacy != loaded.fingerprint()
    marker = study / ".mixerlab-study.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "fingerprint": legacy}))
    before = record_bytes(study)
    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert "already finished; nothing to run" in again.stderr
    assert record_bytes(study) == before
    now = json.loads(marker.read_text())
    assert now["fingerprint"] == loaded.fingerprint() and "migrated_at" in now
    # A spec that changes what is computed is still refused.
    other = tmp_path / spec.name  # the fixture's spec is shared: change a copy
    other.write_text(spec.read_text().replace("epochs: 1", "epochs: 2"))
    changed = sweep(other, "--results", results, log=tmp_path / "changed")
    assert changed.returncode == 2 and "holds a study from a different spec" in changed.stderr


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
    else:
        path.unlink()


@needs_fashion
@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "garbage", "deleted"])
def test_damaged_table_is_rebuilt_from_records(how, finished_study, tmp_path):
    spec, results, study = _copy_study(finished_study, tmp_path)
    planned = planned_ids(spec)
    before = record_bytes(study)
    _damage(study / "trials.parquet", how)
    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    what = "missing" if how == "deleted" else "unreadable"
    assert f"trials.parquet was {what}; rebuilt the tables from {len(planned)} records" in again.stderr
    assert "nothing to run" in again.stderr  # rebuilt from records, nothing trained again
    assert_complete(study, planned)
    assert record_bytes(study) == before
    figure(f"trials.parquet {how}", faults=1, planned=planned, study=study,
           recovery_s=again.seconds, note="rebuilt from records, said so; nothing re-trained")


@needs_fashion
@pytest.mark.parametrize("how", ["truncated", "garbage", "deleted"])
def test_analyze_on_damaged_table_says_how_to_recover(how, finished_study, tmp_path, run_cli):
    _, _, study = _copy_study(finished_study, tmp_path)
    _damage(study / "trials.parquet", how)
    code, out, err = run_cli("analyze", study)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "trials.parquet" in err and "mixerlab sweep" in err, err  # the fix: re-run to rebuild


@needs_fashion
@pytest.mark.slow
def test_corrupt_record_is_named_and_its_trial_runs_once(finished_study, tmp_path):
    spec, results, study = _copy_study(finished_study, tmp_path)
    planned = planned_ids(spec)
    before = record_bytes(study)
    victim = planned[0]
    (study / "records" / f"{victim}.json").write_bytes(b'{"trial_id": "' + os.urandom(64))
    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert f"records/{victim}.json is unreadable; trial {victim} will run again" in again.stderr
    assert_complete(study, planned)
    after = record_bytes(study)
    assert json.loads(after[victim])["status"] == "ok"
    for tid in set(planned) - {victim}:
        assert after[tid] == before[tid]
    figure("record file corrupted", faults=1, planned=planned, study=study,
           recovery_s=again.seconds, note="named on stderr; that trial alone ran again")


@needs_fashion
@pytest.mark.slow
def test_killed_while_rewriting_a_table_leaves_the_older_table_whole(finished_study, tmp_path):
    """A finished study re-run with the failpoint: killed mid-rewrite, the old table stays."""
    spec, results, study = _copy_study(finished_study, tmp_path)
    planned = planned_ids(spec)
    complete = (study / "trials.parquet").read_bytes()
    killed = sweep(spec, "--results", results, log=tmp_path / "killed",
                   env={"MIXERLAB_FAILPOINTS": "trials.parquet:before-rename"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert stale_temporaries(study), "the failpoint did not fire"
    assert (study / "trials.parquet").read_bytes() == complete  # never torn, never half-new
    assert sorted(pd.read_parquet(study / "trials.parquet")["trial_id"]) == sorted(planned)
    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert "removed 1 temporary file(s)" in again.stderr and "nothing to run" in again.stderr
    assert_complete(study, planned)
    figure("driver SIGKILL: rewriting a finished table", faults=1, planned=planned, study=study,
           recovery_s=again.seconds, note="old table stayed whole; temporary file removed")


# == 6. two sweeps on one study at once ===================================================
@needs_fashion
@pytest.mark.slow
def test_second_concurrent_sweep_is_refused(tmp_path):
    spec = write_spec(tmp_path, "twice", **LONG)
    planned = planned_ids(spec)
    results, study = tmp_path / "results", tmp_path / "results" / "twice"
    first = Sweep(spec, "--results", results, log=tmp_path / "first")
    wait_for(lambda: (study / "ray").exists(), 120, "the first sweep started Ray", first)
    second = sweep(spec, "--results", results, log=tmp_path / "second", timeout=120)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip() == (
        f"mixerlab sweep: error: {study}: another mixerlab sweep (pid {first.pid}) is running this "
        "study; wait for it to finish or stop it first")
    assert first.returncode is None, "the first sweep finished before the second was refused"
    first.wait()
    assert first.returncode == 0, first.stderr
    assert_complete(study, planned)
    figure("second sweep on a running study", faults=1, planned=planned, study=study,
           recovery_s=None, note="second exited 2 naming the first's pid; first completed")


# == 7. disk full, read-only, not a folder ================================================
def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a fresh tmpfs; yields a function (size, read_only) -> mount point."""
    mounted = []

    def mount(size: str, read_only=False) -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", point],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root with "
                        "CAP_SYS_ADMIN")
        mounted.append(point)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", point], check=True, timeout=30)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


def test_full_disk_is_refused_before_training(tmp_path, tmpfs, run_cli):
    import ray

    spec = write_spec(tmp_path, "full", synthetic=True)
    point = tmpfs("1m")
    code, out, err = run_cli("sweep", spec, "--results", point)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{point}: only 1 MiB free (need 200)" in err, err
    assert _snapshot(point) == {} and not ray.is_initialized()
    figure("disk full (1 MiB tmpfs)", faults=1, planned=[], study=None, recovery_s=None,
           note="exit 2 before training; nothing written")


def test_read_only_results_folder_is_refused(tmp_path, tmpfs, run_cli):
    spec = write_spec(tmp_path, "ro", synthetic=True)
    point = tmpfs("300m", read_only=True)
    assert not os.access(point, os.W_OK)  # EROFS, even for root
    code, out, err = run_cli("sweep", spec, "--results", point / "results")
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{point}: not writable" in err, err
    assert _snapshot(point) == {}
    figure("read-only file system (tmpfs remount,ro)", faults=1, planned=[], study=None,
           recovery_s=None, note="exit 2 before training; nothing written")


def test_results_under_a_regular_file_is_refused(tmp_path, run_cli):
    spec = write_spec(tmp_path, "nf", synthetic=True)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder\n")
    before = _snapshot(tmp_path)
    code, out, err = run_cli("sweep", spec, "--results", blocker / "results")
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{blocker}: is a file, not a folder" in err, err
    assert _snapshot(tmp_path) == before
    figure("--results below a regular file", faults=1, planned=[], study=None, recovery_s=None,
           note="exit 2; nothing written")


# == 8. a folder mixerlab did not create ==================================================
def test_foreign_non_empty_folder_is_left_untouched(tmp_path, run_cli):
    spec = write_spec(tmp_path, "mine", synthetic=True)
    foreign = tmp_path / "results" / "mine"
    (foreign / "ray").mkdir(parents=True)
    (foreign / "notes.txt").write_text("someone else's work\n")
    (foreign / "ray" / "tuner.pkl").write_bytes(b"\x80\x04not ours")
    before = _snapshot(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in foreign.rglob("*")}
    code, out, err = run_cli("sweep", spec, "--results", tmp_path / "results")
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "mixerlab only resumes folders it created itself" in err
    assert _snapshot(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in foreign.rglob("*")} == stamps
    figure("foreign non-empty results folder", faults=1, planned=[], study=None, recovery_s=None,
           note="exit 2; folder untouched")
