"""Fault scenarios: real faults injected into real sweeps, the recovery a user would make, and
what the study held afterwards.

One path through a trial: ``tests/test_reliability.py`` and ``tests/test_stream_reliability.py``
call these functions and assert on the evidence they return; ``benchmarks/reliability.py``
calls the same functions and prints their figures. Every fault is the real thing: SIGKILL of
the driver (alone, or with its whole process session like a power cut), SIGKILL of a trial's
worker process, a Ray worker node stopped mid-trial, torch's own ``OutOfMemoryError`` and an
unexpected exception raised inside a trial by a plugin mixer, results tables truncated or
overwritten on disk, two sweeps racing for one study, a full and a read-only file system (real
tmpfs mounts). Nothing of Ray or torch is mocked. Ground truth is ``records/<trial_id>.json``;
``trials.parquet`` is measured against the plan.

A scenario returns an :class:`Outcome`: ``figures`` (one row of the benchmark's table: faults
injected, trials planned, trials lost and duplicated in ``trials.parquet``, recovery time) and,
as further attributes, the evidence its test asserts on (the study, the plan, the records
before the fault, the processes and their output). A scenario raises ``AssertionError`` when
the fault could not be staged as described (the kill came after the study had finished, the
failpoint did not fire), since its figures would then describe another fault; whether the
recovery was right is its test's to assert. It raises :class:`NotStaged` where this machine
cannot stage the fault at all (no Fashion-MNIST, no tmpfs mount).

Every sweep and Ray node runs in a process session of its own (``fault_tools.py``); the
caller ends whatever is left with ``fault_tools.end_sessions`` (the tests' autouse fixture;
the benchmark after each scenario). Every wait is bounded.

Recovery time is the wall time of the re-run after a driver kill or a damaged file, the time
from the fault to the end of the study for a killed worker or node, and the time of
``--retry-failed`` for faults inside trials. It includes Ray's start-up.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from fault_tools import (  # a script beside this one: its folder is on sys.path
    SWEEP_TIMEOUT,
    Sweep,
    cmdline,
    kept,
    kill_session,
    mid_round,
    mid_trial,
    ray_known_checkpoints,
    record_bytes,
    resumed_from,
    run_cli,
    saved_rounds,
    session_pids,
    snapshot,
    stale_temporaries,
    sweep,
    trial_of_worker,
    trial_workers,
    unfinished_with_checkpoint,
    wait_for,
    watch_session,
)

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
RAY = Path(sys.executable).with_name("ray")

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
# follows trains the whole study again, so this is most of the scenario's time.
SHORT = dict(subset=1024, epochs=1, seeds=2, grid="grid: {mixer: [conv, identity], patch_size: [7]}")
ADAPTIVE = dict(subset=256, epochs=1, seeds="{min: 3, max: 4}",
                grid="grid: {mixer: [conv, identity], patch_size: [7]}",
                extra="nuisance: {lr: [0.003, 0.3]}\ntuning: {seeds: 1}\nmax_concurrent: 1\n")
KILL_POINTS = ["before-any-trial", "mid-trial-power-cut", "mid-trial-driver-only",
               "writing-results"]
DAMAGES = ["truncated", "garbage", "deleted"]  # what happens to trials.parquet on disk
WRITE_FAILPOINT = {"MIXERLAB_FAILPOINTS": "trials.parquet:before-rename"}
COMPARED = ("test_acc", "test_loss", "val_acc", "val_loss", "train_loss")  # killed worker vs undisturbed


# -- what a scenario gives back -------------------------------------------------------------
class NotStaged(Exception):
    """This machine cannot stage the fault (no Fashion-MNIST, no tmpfs): no figures, no failure."""


@dataclass(frozen=True)
class Figures:
    """One row of the benchmark's table."""

    kind: str
    faults: int  # faults injected
    planned: int  # trials the plan holds; 0 where the fault is refused before any plan runs
    lost: int  # planned trials missing from trials.parquet after the recovery
    duplicated: int  # rows of trials.parquet beyond one per trial
    recovery_s: float | None
    note: str = ""
    held: bool = True  # False where these figures themselves show the fault was not survived


class Outcome(SimpleNamespace):
    """What a scenario did: ``figures`` (None for a step that has none) and, as further
    attributes, the evidence its test asserts on."""


def require(ok, why: str) -> None:
    """The fault was staged as described; otherwise the scenario's figures would mislead."""
    if not ok:
        raise AssertionError(why)


def table(study: Path) -> pd.DataFrame | None:
    """trials.parquet, or None where it is missing or unreadable (a failed recovery)."""
    try:
        return pd.read_parquet(study / "trials.parquet")
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return None


def measure(kind: str, *, faults: int, planned: list[str], study: Path, recovery_s: float | None,
            note: str = "") -> Figures:
    """The plan against trials.parquet as it is now: a missing table has lost every trial."""
    found = table(study)
    ids = [] if found is None else list(found["trial_id"])
    lost, duplicated = len(set(planned) - set(ids)), len(ids) - len(set(ids))
    return Figures(kind, faults, len(planned), lost, duplicated,
                   None if recovery_s is None else round(recovery_s, 1), note,
                   held=not lost and not duplicated)


def refusal(kind: str, code: int, err: str, untouched: bool, note: str) -> Figures:
    """A fault refused before any plan runs: it held if mixerlab exited 2 with one line on
    stderr and left everything as it was."""
    held = code == 2 and len(err.strip().splitlines()) == 1 and untouched
    return Figures(kind, 1, 0, 0, 0, None, note if held else
                   f"NOT held: exit {code}; {'nothing' if untouched else 'something'} written",
                   held=held)


# -- specs --------------------------------------------------------------------------------
def write_spec(folder: Path, name="t", *, subset=256, epochs=1, seeds=1, extra="",
               grid="grid: {mixer: [conv, identity], patch_size: [7]}", synthetic=False) -> Path:
    if not synthetic and not FASHION.exists():
        raise NotStaged("real Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
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


# == 1. the driver killed at four points, then the same command again =====================
def _first_run_killed_at(point: str, spec: Path, study: Path, folder: Path) -> Sweep:
    """Start the study and SIGKILL its driver at ``point`` (one of KILL_POINTS)."""
    first = Sweep(spec, "--results", study.parent, log=folder / "first",
                  env=WRITE_FAILPOINT if point == "writing-results" else None)
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
        require(first.returncode == -signal.SIGKILL, first.stderr)
        require(stale_temporaries(study), "the failpoint did not fire")
    return first


def killed_driver(folder: Path, point: str) -> Outcome:
    """The driver SIGKILLed at ``point``, then the same command again (what a user would do)."""
    spec = write_spec(folder, "kill", **(LONG if point.startswith("mid-trial") else SHORT))
    planned = planned_ids(spec)
    results, study = folder / "results", folder / "results" / "kill"
    first = _first_run_killed_at(point, spec, study, folder)
    before = record_bytes(study)
    require(len(before) < len(planned), "the kill came after the study had finished")
    resumable = {t: e for t, e in ray_known_checkpoints(study).items() if t not in before}
    # The table a reader saw between the kill and the re-run (its bytes: torn would show)
    old_table = (study / "trials.parquet").read_bytes() if (study / "trials.parquet").exists() else None

    again = sweep(spec, "--results", results, log=folder / "again")
    resumed = sum(resumed_from(study, t) > 0 for t in resumable)
    note = (f"{kept(before, study)} record(s) kept byte-identical; {resumed} trial(s) resumed "
            "from a checkpoint")
    return Outcome(figures=measure(f"driver SIGKILL: {point}", faults=1, planned=planned,
                                   study=study, recovery_s=again.seconds, note=note),
                   spec=spec, planned=planned, study=study, first=first, again=again,
                   before=before, resumable=resumable, old_table=old_table)


# == 1b. a two-stage adaptive study: the driver killed in the middle of a later round =======
def killed_mid_round(folder: Path) -> Outcome:
    """Stage 1 (tuning), then rounds the driver plans from the records and writes to
    rounds.json before they run; a power cut in the middle of a round, then the same command."""
    spec = write_spec(folder, "rounds", **ADAPTIVE)
    stage_one = planned_ids(spec)
    results, study = folder / "results", folder / "results" / "rounds"
    first = Sweep(spec, "--results", results, log=folder / "first")
    wait_for(lambda: mid_round(study), 240, "a round of rounds.json part-finished", first)
    first.kill_session()
    before, rounds_before = record_bytes(study), saved_rounds(study)
    require(rounds_before, "rounds.json vanished after the kill")
    cut = {t["trial_id"] for t in rounds_before[-1]["trials"]} - set(before)
    require(cut, "the kill came after the round had finished")

    again = sweep(spec, "--results", results, log=folder / "again")
    rounds_after = saved_rounds(study)
    planned = stage_one + [t["trial_id"] for r in rounds_after for t in r["trials"]]
    as_planned = rounds_after[:len(rounds_before)] == rounds_before
    note = (f"killed in round {rounds_before[-1]['round']} of {len(rounds_after)} with {len(cut)} "
            f"of its trial(s) unfinished; {kept(before, study)} record(s) kept byte-identical; "
            + ("the round finished as planned" if as_planned else "the round was planned again"))
    return Outcome(figures=measure("driver killed mid-round (adaptive seeds)", faults=1,
                                   planned=planned, study=study, recovery_s=again.seconds, note=note),
                   spec=spec, stage_one=stage_one, planned=planned, study=study, again=again,
                   before=before, rounds_before=rounds_before, rounds_after=rounds_after, cut=cut)


# == 2. a trial's worker process killed mid-training =======================================
def killed_worker(folder: Path) -> Outcome:
    """One trial's worker SIGKILLed mid-training (max_failures: 2) while the driver lives; the
    same trial trained undisturbed, without Ray, is the reference for its metrics."""
    spec = write_spec(folder, "worker", subset=8192, epochs=4,
                      grid="configs: [{mixer: conv, patch_size: 7}]", extra="max_failures: 2\n")
    results, study = folder / "results", folder / "results" / "worker"
    run = Sweep(spec, "--results", results, log=folder / "sweep")
    # Wait until the driver has registered a checkpoint (it is in Ray's saved state), not
    # merely until the worker has written one: killed in between, the retry rightly starts
    # over, since Ray never learnt of that checkpoint.
    wait_for(lambda: set(ray_known_checkpoints(study)) - set(record_bytes(study)), 120,
             "Ray registered a checkpoint of the trial", run)
    workers = wait_for(lambda: trial_workers(run.pid), 30, "the trial's worker process", run)
    require(len(workers) == 1, str([cmdline(p) for p in workers]))
    os.kill(workers[0], signal.SIGKILL)
    t_fault = time.monotonic()
    run.wait()
    recovery = time.monotonic() - t_fault

    from mixerlab.sweep.runner import prepare
    from mixerlab.train import train

    _, data, plan = prepare(spec)
    (trial,) = plan.trials
    cfg = trial.config.model_copy(deep=True)
    cfg.train.threads = 1  # as the trainable runs it (resources: {cpu: 1})
    undisturbed = train(cfg, data=data)
    try:
        rec = json.loads((study / "records" / f"{trial.trial_id}.json").read_text())
    except (OSError, ValueError):
        rec = {}
    same = all(rec.get(k) == undisturbed[k] for k in COMPARED)
    note = (f"resumed from epoch {rec.get('resumed_from_epoch', '?')}; test_acc/test_loss/val_acc "
            + ("bit-identical to" if same else "NOT identical to") + " an undisturbed run")
    return Outcome(figures=measure("trial worker SIGKILL (max_failures: 2)", faults=1,
                                   planned=[trial.trial_id], study=study, recovery_s=recovery,
                                   note=note),
                   spec=spec, study=study, run=run, trial=trial, undisturbed=undisturbed)


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


@contextmanager
def _two_node_cluster():
    """A head and one worker node of one CPU each, every process in a session of ours."""
    from conftest import alive_nodes

    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    watch_session(head.pid)  # `ray start` exits; the head's daemons keep its session
    require(head.wait(120) == 0, "ray start --head failed")
    try:
        node = subprocess.Popen([RAY, "start", "--block", f"--address={address}", "--num-cpus=1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        watch_session(node.pid)
        wait_for(lambda: alive_nodes(address, env) == 2, 90, "the worker node joined", every=1)
        raylet = [p for p in session_pids(node.pid) if "/raylet " in cmdline(p)]
        node_id = re.search(r"--node_id=([0-9a-f]+)", cmdline(raylet[0])).group(1)
        yield SimpleNamespace(address=address, env=env, node=node, node_id=node_id)
    finally:
        _forget_cluster(address)


def worker_node_stopped(folder: Path) -> Outcome:
    """The worker node (raylet, agents, its trial's worker) killed like a power cut while a
    trial on it has a checkpoint Ray knows; the driver reschedules it on the head node."""
    spec = write_spec(folder, "node", subset=8192, epochs=8, seeds=1,
                      grid="grid: {mixer: [conv, identity], patch_size: [7]}", extra="max_failures: 3\n")
    planned = planned_ids(spec)
    results, study = folder / "results", folder / "results" / "node"
    with _two_node_cluster() as cluster:
        run = Sweep(spec, "--results", results, "--address", cluster.address, log=folder / "sweep",
                    env=cluster.env)

        def victims() -> dict[str, int]:  # unfinished trials on the node whose checkpoint Ray knows
            known, done = ray_known_checkpoints(study), record_bytes(study)
            on_node = {trial_of_worker(p) for p in trial_workers(cluster.node.pid)}
            return {t: known[t] for t in on_node if t in known and t not in done}

        cut = wait_for(victims, 150, "a trial on the worker node checkpointed", run)
        before = record_bytes(study)
        kill_session(cluster.node.pid)
        cluster.node.wait(30)
        t_fault = time.monotonic()
        run.wait(SWEEP_TIMEOUT)
        recovery = time.monotonic() - t_fault
    found = table(study)
    nodes = {} if found is None else dict(zip(found["trial_id"], found["ray_node_id"]))
    moved = all(nodes.get(t) and nodes[t] != cluster.node_id for t in cut)
    note = ("interrupted trial resumed on the head node" if moved else
            "interrupted trial NOT moved off the stopped node") + " from epoch " + \
        ", ".join(str(resumed_from(study, t)) for t in cut)
    return Outcome(figures=measure("Ray worker node stopped (2-node cluster)", faults=1,
                                   planned=planned, study=study, recovery_s=recovery, note=note),
                   spec=spec, planned=planned, study=study, run=run, before=before, cut=cut,
                   node_id=cluster.node_id)


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


def failing_trials(folder: Path) -> Outcome:
    """Five trials, while a flag file exists: two fine, one raising torch's OutOfMemoryError,
    one raising an unexpected exception (plugin mixers), one diverging. Then ``mixerlab status``.
    No figures yet: the fault's recovery is :func:`retry_failed`."""
    flag = folder / "fail-now"
    flag.touch()
    (folder / "faulty_mixers.py").write_text(PLUGIN.format(flag=str(flag)))
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])),
           "MIXERLAB_PLUGINS": "faulty_mixers"}
    grid = ("configs: [{mixer: conv, patch_size: 7}, {mixer: identity, patch_size: 7}, "
            "{mixer: oom_on_train, patch_size: 7}, {mixer: raise_on_train, patch_size: 7}, "
            "{mixer: conv, patch_size: 7, lr: 1.0e+9, grad_clip: null}]")
    spec = write_spec(folder, "faults", grid=grid)
    planned = planned_ids(spec, env)
    results, study = folder / "results", folder / "results" / "faults"
    first = sweep(spec, "--results", results, log=folder / "first", env=env)
    shown = subprocess.run([sys.executable, "-m", "mixerlab", "status", study], capture_output=True,
                           text=True, timeout=120, env={**os.environ, **env})
    return Outcome(figures=None, folder=folder, flag=flag, env=env, spec=spec, planned=planned,
                   results=results, study=study, first=first, shown=shown)


def _statuses(study: Path) -> dict[str, str]:
    found = table(study)
    return {} if found is None else dict(zip(found["trial_id"], found["status"]))


def retry_failed(failed: Outcome) -> Outcome:
    """The cause fixed (the flag file removed), ``--retry-failed``: only the failed trials run
    again, the ok and diverged records stay as they were."""
    study, status = failed.study, _statuses(failed.study)
    finished = {tid: c for tid, c in record_bytes(study).items() if status.get(tid) in ("ok", "diverged")}
    failed.flag.unlink()  # the cause is fixed: the failed trials now succeed
    retry = sweep(failed.spec, "--results", failed.results, "--retry-failed",
                  log=failed.folder / "retry", env=failed.env)
    recorded = [s for s in ("oom", "error", "diverged") if s in status.values()]
    n_failed = sum(s in ("oom", "error") for s in status.values())
    note = (f"recorded as {'/'.join(recorded)}; --retry-failed re-ran "
            + (f"only the {n_failed} failed" if kept(finished, study) == len(finished) else
               "finished trials too"))
    return Outcome(**{**vars(failed), "retry": retry, "kept": finished, "figures": measure(
        "faults inside trials (OOM, exception, divergence)", faults=3, planned=failed.planned,
        study=study, recovery_s=retry.seconds, note=note)})


def lose_record_of_older_run(retried: Outcome) -> Outcome:
    """The diverged trial's record lost: that trial ran in Ray's first run and the latest run
    (the retry) has ended, so the same command must bring it back, not leave it pending."""
    study = retried.study
    (victim,) = [t for t, s in _statuses(study).items() if s == "diverged"]
    before = record_bytes(study)
    (study / "records" / f"{victim}.json").write_text("{")
    again = sweep(retried.spec, "--results", retried.results, log=retried.folder / "again",
                  env=retried.env)
    named = f"records/{victim}.json is unreadable" in again.stderr
    others = {t: c for t, c in before.items() if t != victim}
    note = ("named on stderr" if named else "NOT named on stderr") + "; " + (
        "that trial alone ran again" if kept(others, study) == len(others) else "others ran again")
    return Outcome(**{**vars(retried), "victim": victim, "again": again, "figures": measure(
        "record lost, trial from an older Ray run", faults=1, planned=retried.planned,
        study=study, recovery_s=again.seconds, note=note)})


# == 5. results tables and records corrupted on disk ======================================
def finished_study(root: Path) -> tuple[Path, Path]:
    """(spec, study folder) of a small finished study, for the scenarios that damage a copy."""
    spec = write_spec(root, "done")
    run = sweep(spec, "--results", root / "results", log=root / "sweep")
    require(run.returncode == 0, run.stderr)
    return spec, root / "results" / "done"


def copy_study(finished: tuple[Path, Path], folder: Path) -> tuple[Path, Path, Path]:
    """(spec, results, study) of a copy of the finished study under ``folder``."""
    spec, src = finished
    results = folder / "results"
    shutil.copytree(src, results / src.name, symlinks=True)
    return spec, results, results / src.name


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
    else:
        path.unlink()


def damaged_table(folder: Path, how: str, finished: tuple[Path, Path]) -> Outcome:
    """trials.parquet of a finished study truncated, overwritten or deleted; the same command."""
    spec, results, study = copy_study(finished, folder)
    planned = planned_ids(spec)
    before = record_bytes(study)
    damage(study / "trials.parquet", how)
    again = sweep(spec, "--results", results, log=folder / "again")
    said = "rebuilt the tables from" in again.stderr
    note = ("rebuilt from records, " + ("said so" if said else "NOT said") + "; "
            + ("nothing re-trained" if kept(before, study) == len(before) else "records re-written"))
    return Outcome(figures=measure(f"trials.parquet {how}", faults=1, planned=planned, study=study,
                                   recovery_s=again.seconds, note=note),
                   spec=spec, planned=planned, study=study, before=before, again=again)


def corrupt_record(folder: Path, finished: tuple[Path, Path]) -> Outcome:
    """One record of a finished study overwritten with garbage; the same command."""
    spec, results, study = copy_study(finished, folder)
    planned = planned_ids(spec)
    before = record_bytes(study)
    victim = planned[0]
    (study / "records" / f"{victim}.json").write_bytes(b'{"trial_id": "' + os.urandom(64))
    again = sweep(spec, "--results", results, log=folder / "again")
    named = f"records/{victim}.json is unreadable" in again.stderr
    others = {t: c for t, c in before.items() if t != victim}
    note = ("named on stderr" if named else "NOT named on stderr") + "; " + (
        "that trial alone ran again" if kept(others, study) == len(others) else "others ran again")
    return Outcome(figures=measure("record file corrupted", faults=1, planned=planned, study=study,
                                   recovery_s=again.seconds, note=note),
                   spec=spec, planned=planned, study=study, before=before, victim=victim,
                   again=again)


def killed_while_rewriting(folder: Path, finished: tuple[Path, Path]) -> Outcome:
    """A finished study re-run with the failpoint: the driver is SIGKILLed while it rewrites
    trials.parquet (written, not yet renamed into place); then the same command."""
    spec, results, study = copy_study(finished, folder)
    planned = planned_ids(spec)
    complete = (study / "trials.parquet").read_bytes()
    killed = sweep(spec, "--results", results, log=folder / "killed", env=WRITE_FAILPOINT)
    require(killed.returncode == -signal.SIGKILL, killed.stderr)
    require(stale_temporaries(study), "the failpoint did not fire")
    after_kill = (study / "trials.parquet").read_bytes()  # what a reader saw before the re-run
    again = sweep(spec, "--results", results, log=folder / "again")
    note = ("old table stayed whole" if after_kill == complete else "old table CHANGED") + "; " + (
        "temporary file removed" if not stale_temporaries(study) else "temporary file LEFT")
    return Outcome(figures=measure("driver SIGKILL: rewriting a finished table", faults=1,
                                   planned=planned, study=study, recovery_s=again.seconds, note=note),
                   spec=spec, planned=planned, study=study, complete=complete,
                   after_kill=after_kill, killed=killed, again=again)


# == 6. two sweeps on one study at once ===================================================
def second_sweep(folder: Path) -> Outcome:
    """A second ``mixerlab sweep`` of the same study while the first is running."""
    spec = write_spec(folder, "twice", **LONG)
    planned = planned_ids(spec)
    results, study = folder / "results", folder / "results" / "twice"
    first = Sweep(spec, "--results", results, log=folder / "first")
    wait_for(lambda: (study / "ray").exists(), 120, "the first sweep started Ray", first)
    second = sweep(spec, "--results", results, log=folder / "second", timeout=120)
    first_running = first.returncode is None  # at once: did the second meet a running first?
    first.wait()
    refused = second.returncode == 2 and f"(pid {first.pid})" in second.stderr
    note = ("second exited 2 naming the first's pid" if refused else
            f"second exited {second.returncode}") + "; " + (
        "first completed" if first.returncode == 0 else f"first exited {first.returncode}")
    return Outcome(figures=measure("second sweep on a running study", faults=1, planned=planned,
                                   study=study, recovery_s=None, note=note),
                   spec=spec, planned=planned, study=study, first=first, second=second,
                   first_running=first_running)


# == 7. disk full, read-only, not a folder; 8. a folder mixerlab did not create ===========
@contextmanager
def tmpfs(folder: Path):
    """Fresh tmpfs mounts under ``folder``: yields mount(size, read_only) -> mount point, and
    unmounts them all after."""
    mounted = []

    def mount(size: str, read_only=False) -> Path:
        point = folder / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", point],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise NotStaged(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root with "
                            "CAP_SYS_ADMIN")
        mounted.append(point)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", point], check=True, timeout=30)
        return point

    try:
        yield mount
    finally:
        for point in mounted:
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


def full_disk(folder: Path, mount) -> Outcome:
    """``--results`` on a 1 MiB tmpfs: refused before training (and before Ray)."""
    import ray

    spec = write_spec(folder, "full", synthetic=True)
    point = mount("1m")
    code, out, err = run_cli("sweep", spec, "--results", point)
    untouched = snapshot(point) == {} and not ray.is_initialized()
    return Outcome(figures=refusal("disk full (1 MiB tmpfs)", code, err, untouched,
                                   "exit 2 before training; nothing written"),
                   point=point, code=code, out=out, err=err)


def read_only(folder: Path, mount) -> Outcome:
    """``--results`` below a tmpfs remounted read-only: refused before training."""
    spec = write_spec(folder, "ro", synthetic=True)
    point = mount("300m", read_only=True)
    require(not os.access(point, os.W_OK), f"{point} is writable after remount,ro")
    code, out, err = run_cli("sweep", spec, "--results", point / "results")
    return Outcome(figures=refusal("read-only file system (tmpfs remount,ro)", code, err,
                                   snapshot(point) == {}, "exit 2 before training; nothing written"),
                   point=point, code=code, out=out, err=err)


def results_under_a_file(folder: Path) -> Outcome:
    """``--results`` below a regular file."""
    spec = write_spec(folder, "nf", synthetic=True)
    blocker = folder / "notes.txt"
    blocker.write_text("not a folder\n")
    before = snapshot(folder)
    code, out, err = run_cli("sweep", spec, "--results", blocker / "results")
    return Outcome(figures=refusal("--results below a regular file", code, err,
                                   snapshot(folder) == before, "exit 2; nothing written"),
                   blocker=blocker, before=before, code=code, out=out, err=err)


def foreign_folder(folder: Path) -> Outcome:
    """The study's folder exists, is not empty, and was not made by mixerlab (it holds a
    ``ray/tuner.pkl`` that resuming would unpickle)."""
    spec = write_spec(folder, "mine", synthetic=True)
    foreign = folder / "results" / "mine"
    (foreign / "ray").mkdir(parents=True)
    (foreign / "notes.txt").write_text("someone else's work\n")
    (foreign / "ray" / "tuner.pkl").write_bytes(b"\x80\x04not ours")
    before = snapshot(folder)
    stamps = {p: p.stat().st_mtime_ns for p in foreign.rglob("*")}
    code, out, err = run_cli("sweep", spec, "--results", folder / "results")
    untouched = snapshot(folder) == before and \
        {p: p.stat().st_mtime_ns for p in foreign.rglob("*")} == stamps
    return Outcome(figures=refusal("foreign non-empty results folder", code, err, untouched,
                                   "exit 2; folder untouched"),
                   foreign=foreign, before=before, stamps=stamps, code=code, out=out, err=err)


# == 9. the streamed data path: the driver killed mid-trial ===============================
# 3 classes x (20 train + 4 test) JPEGs of 16 px; 8 epochs of 1 batch-step per 16 images:
# each trial reports and checkpoints 7 times, so the kill lands between two of them.
STREAM_SPEC = """\
name: streamkill
question: Does a streamed study survive a killed driver?
dataset: {{name: imagefolder, data_dir: {data}, memory_budget_gb: 0.00001, val_fraction: 0.25}}
train: {{epochs: 8, batch_size: 16, measure_throughput: false}}
model: {{depth: 1, width: 16}}
grid: {{mixer: [conv, identity], patch_size: [4]}}
seeds: 2
resources: {{cpu: 1}}
execution: {{precision: fp32, memory_format: channels_last, attention_kernel: fused}}
"""


def streamed_driver_killed(folder: Path) -> Outcome:
    """A study over an ImageFolder tree of real JPEG files (synthetic images), streamed because
    its memory budget is below its size, killed mid-trial like a power cut; the same command."""
    from test_stream import write_tree

    from mixerlab.sweep.runner import prepare

    data = write_tree(folder / "tree", {"train": 20, "test": 4}, fmt="jpg")
    spec = folder / "streamkill.yaml"
    spec.write_text(STREAM_SPEC.format(data=data))
    planned = [t.trial_id for t in prepare(spec)[2].trials]  # ids depend on the data's shape
    results, study = folder / "results", folder / "results" / "streamkill"
    first = Sweep(spec, "--results", results, log=folder / "first")
    wait_for(lambda: unfinished_with_checkpoint(study), 120, "Ray's snapshot named a checkpoint "
             "of an unfinished trial", first)
    first.kill_session()
    before, resumable = record_bytes(study), unfinished_with_checkpoint(study)
    require(resumable and len(before) < len(planned), "the kill came after the study had finished")

    again = sweep(spec, "--results", results, log=folder / "again")
    found = table(study)
    streamed = found is not None and set(found["data_path"]) == {"stream"}
    note = ("ImageFolder JPEGs streamed by the memory budget" if streamed else
            "ImageFolder JPEGs, NOT all streamed") + (
        f"; {kept(before, study)} record(s) kept byte-identical; "
        f"{sum(resumed_from(study, t) > 0 for t in resumable)} trial(s) resumed from a checkpoint")
    return Outcome(figures=measure("driver killed (streamed data)", faults=1, planned=planned,
                                   study=study, recovery_s=again.seconds, note=note),
                   spec=spec, planned=planned, study=study, first=first, again=again,
                   before=before, resumable=resumable)


# == 10. a budget ladder: the driver killed inside a cool-down branch ======================
# One trial of budgets 4 and 6 (cool-down half of each: the branch to 4 runs epochs 3-4 from
# the main branch's state after epoch 2), on 12,000 synthetic images so an epoch lasts long
# enough for the kill to land inside the branch.
LADDER_SPEC = """\
name: {name}
question: Does a budget ladder survive its driver killed inside a branch?
dataset: {{name: synthetic, synthetic_size: 12000}}
train: {{schedule: wsd, budgets: [4, 6], cooldown_fraction: 0.5, batch_size: 32, measure_throughput: false}}
model: {{depth: 1, width: 16, patch_size: 7}}
grid: {{mixer: [conv]}}
seeds: 1
resources: {{cpu: 1}}
execution: {{precision: fp32, memory_format: channels_last, attention_kernel: fused}}
"""
LADDER_COMPARED = ("test_acc", "test_loss", "val_acc", "val_loss", "train_loss", "epochs_run")


def branch_checkpoint(study: Path) -> int | None:
    """The epoch of the trial's only checkpoint on disk if it was taken inside the branch to 4
    before its last epoch (Tune keeps one: the older is deleted once this one is registered)."""
    import torch

    found = list((study / "ray").glob("run-*/*/checkpoint_*/state.pt"))
    if len(found) != 1:
        return None
    try:
        state = torch.load(found[0], map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - being written: look again
        return None
    return state["epoch"] if "branch" in state and state["epoch"] < state["branch"]["budget"] else None


def ladder_killed_in_branch(folder: Path) -> Outcome:
    """The ladder run whole; then the same trial in another study, its driver and every Ray
    process SIGKILLed (a power cut) while the branch to 4 is under way, and the same command
    again. Planned: the trial's row per budget (``<id>/e4`` and ``<id>``). The note says whether
    every row's metrics equal the uninterrupted run's."""
    results, rows = folder / "results", {}
    snapshot_every_step = {"TUNE_GLOBAL_CHECKPOINT_S": "0"}  # so the restored run knows the last checkpoint
    for name in ("whole", "cut"):
        spec = folder / f"{name}.yaml"
        spec.write_text(LADDER_SPEC.format(name=name))
        study = results / name
        if name == "whole":
            sweep(spec, "--results", results, log=folder / "whole", env=snapshot_every_step)
        else:
            first = Sweep(spec, "--results", results, log=folder / "first", env=snapshot_every_step)
            wait_for(lambda s=study: branch_checkpoint(s), 240, "a checkpoint inside the branch", first)
            time.sleep(0.3)  # the snapshot that names it
            first.kill_session()
            before = record_bytes(study)
            require(not before, "the kill came after the trial had finished")
            again = sweep(spec, "--results", results, log=folder / "again")
        rows[name] = table(study)
    whole, cut = (None if rows[n] is None else rows[n].set_index("epochs") for n in ("whole", "cut"))
    from mixerlab.sweep.runner import prepare

    ids = [t.trial_id for t in prepare(folder / "cut.yaml")[2].trials]  # ids depend on the data's shape
    planned = [*(f"{i}/e4" for i in ids), *ids]
    same = cut is not None and whole is not None and all(
        cut[c].tolist() == whole[c].tolist() for c in LADDER_COMPARED)
    resumed = None if cut is None or 4 not in cut.index else int(cut.loc[4, "resumed_from_epoch"])
    note = (f"1 trial, a row per budget; the branch to 4 resumed from epoch {resumed}; metrics "
            + ("equal to" if same else "NOT equal to") + " an undisturbed run's")
    return Outcome(figures=measure("driver SIGKILL inside a ladder's cool-down branch", faults=1,
                                   planned=planned, study=study, recovery_s=again.seconds, note=note),
                   planned=planned, study=study, first=first, again=again, whole=whole, cut=cut)
