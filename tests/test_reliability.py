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

The scenarios (spec, sweep, fault, recovery) are ``benchmarks/fault_scenarios.py``, which
``benchmarks/reliability.py`` runs for its table of figures: one path through a trial. A
scenario raises when it could not stage its fault as described; what it returns is the
evidence asserted on here. Process hygiene is the scenarios' (each sweep and Ray node in a
session of its own); the autouse fixture below ends whatever is left of those sessions
after each test -- never ``ray stop --force``, which would also stop other people's Ray on a
shared machine. Every wait is bounded.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the scenarios' home

import fault_scenarios as fs  # noqa: E402
from fault_scenarios import FASHION, LONG, copy_study, damage, planned_ids  # noqa: E402
from fault_tools import (  # noqa: E402
    Sweep,
    end_sessions,
    ray_named_checkpoints,
    record_bytes,
    snapshot,
    stale_temporaries,
    sweep,
    wait_for,
)

needs_fashion = pytest.mark.skipif(
    not FASHION.exists(), reason="real Fashion-MNIST missing: apt-get install dataset-fashion-mnist")


@pytest.fixture(autouse=True)
def _end_started_sessions():
    yield
    end_sessions()


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


def assert_untouched(before: dict[str, bytes], after: dict[str, bytes]) -> None:
    for tid, content in before.items():  # finished trials were not trained again
        assert after[tid] == content, f"trial {tid} finished before the kill but was re-run"


# == 1. the driver killed at four points, then the same command again =====================
@needs_fashion
@pytest.mark.slow
@pytest.mark.parametrize("point", fs.KILL_POINTS)
def test_killed_driver_rerun_keeps_every_trial_once(point, tmp_path):
    o = fs.killed_driver(tmp_path, point)  # raises if the kill came after the study finished
    study, planned, before, again = o.study, o.planned, o.before, o.again
    if o.old_table is not None:  # a reader saw a complete older table between kill and re-run
        old = pd.read_parquet(io.BytesIO(o.old_table))
        assert set(old["trial_id"]) <= set(before) and old["trial_id"].is_unique

    assert again.returncode == 0, again.stderr
    counts = re.findall(r"trials (\d+)/(\d+) done", again.stderr)
    # The live line counts the trials finished before the kill (a restored run's callback
    # would otherwise count from the first start's zero).
    assert counts and int(counts[0][0]) >= len(before), (counts[:3], len(before))
    trials = assert_complete(study, planned)
    after = record_bytes(study)
    assert_untouched(before, after)
    for tid, epoch in o.resumable.items():  # interrupted trials continued from their checkpoint
        assert_resumed(after[tid], epoch, tid)
    if point == "mid-trial-driver-only":
        assert o.resumable, "no trial was cut mid-training"
    if point == "writing-results":
        assert "removed 1 temporary file(s) left by an interrupted write" in again.stderr
    assert len(trials) == len(planned)


@needs_fashion
@pytest.mark.slow
def test_snapshot_naming_a_deleted_checkpoint_still_resumes(tmp_path):
    """Tune deletes a trial's older checkpoint when it registers a newer one (num_to_keep),
    so a driver killed before its next snapshot leaves the snapshot naming a folder that is
    gone. Here the kill is real and the deletion is Tune's, done by hand at the same place:
    every trial must still finish, and its record must say how it resumed."""
    spec = fs.write_spec(tmp_path, "gone", **LONG)
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
@needs_fashion
@pytest.mark.slow
def test_killed_mid_round_of_an_adaptive_study_resumes_that_round(tmp_path):
    """Stage 1 (tuning), then rounds the driver plans from the records and writes to
    rounds.json before they run. A power cut in the middle of a round, then the same command:
    the round is finished as it was planned (not planned again from its partial records), the
    later rounds follow, and every trial of stage 1 and of every round is there exactly once."""
    o = fs.killed_mid_round(tmp_path)  # raises if the kill came after the round had finished
    study, before, again = o.study, o.before, o.again
    assert set(o.stage_one) <= set(before)  # a round is planned only once stage 1 has finished

    assert again.returncode == 0, again.stderr
    assert o.rounds_after[:len(o.rounds_before)] == o.rounds_before  # resumed as planned, not re-planned
    planned = o.stage_one + [t["trial_id"] for r in o.rounds_after for t in r["trials"]]
    assert len(planned) == len(set(planned))
    trials = assert_complete(study, planned, statuses=("ok", "diverged"))
    assert_untouched(before, record_bytes(study))
    assert set(trials.loc[trials["stage"] == "measure", "trial_id"]) == set(planned) - set(o.stage_one)
    assert re.search(r"\d+/\d+ comparisons decided", again.stderr), again.stderr[-3000:]


# == 2. a trial's worker process killed mid-training =======================================
@needs_fashion
@pytest.mark.slow
def test_killed_worker_resumes_from_checkpoint_with_identical_metrics(tmp_path):
    o = fs.killed_worker(tmp_path)
    study, trial, undisturbed = o.study, o.trial, o.undisturbed
    assert o.run.returncode == 0, o.run.stderr
    trials = assert_complete(study, [trial.trial_id])
    rec = json.loads((study / "records" / f"{trial.trial_id}.json").read_text())
    assert rec["resumed_from_epoch"] >= 1, "the retry started over instead of resuming"
    assert rec["epochs_run"] == 4 and [h["epoch"] for h in rec["history"]] == [1, 2, 3, 4]
    for key in fs.COMPARED:
        assert rec[key] == undisturbed[key], (key, rec[key], undisturbed[key])  # bit-for-bit
    assert len(trials) == 1


# == 3. a worker node of a two-node cluster stopped mid-trial ==============================
@needs_fashion
@pytest.mark.slow
def test_worker_node_stopped_mid_trial_is_rescheduled_on_the_survivor(tmp_path):
    o = fs.worker_node_stopped(tmp_path)
    study = o.study
    assert o.run.returncode == 0, o.run.stderr
    trials = assert_complete(study, o.planned).set_index("trial_id")
    after = record_bytes(study)
    for tid, content in o.before.items():
        assert after[tid] == content
    for tid, epoch in o.cut.items():  # moved to the surviving node, resumed from its checkpoint
        assert tid not in o.before
        assert trials.loc[tid, "ray_node_id"] != o.node_id and trials.loc[tid, "ray_node_id"]
        assert_resumed(after[tid], epoch, tid, driver_alive=True)


# == 4. faults inside trials: real OOM, an unexpected exception, divergence ===============
@needs_fashion
@pytest.mark.slow
def test_failing_trials_are_recorded_and_only_they_are_retried(tmp_path):
    o = fs.failing_trials(tmp_path)
    study, planned, first, shown = o.study, o.planned, o.first, o.shown
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

    assert shown.returncode == 0, shown.stderr
    assert "1 diverged, 1 error, 2 ok, 1 oom" in shown.stdout
    for line in ("oom", "out of memory"), ("error", "injected fault"), ("diverged", "loss became"):
        assert any(all(w in row for w in line) for row in shown.stdout.splitlines()), shown.stdout

    kept = {tid: c for tid, c in record_bytes(study).items() if status[tid] in ("ok", "diverged")}
    o = fs.retry_failed(o)  # the cause is fixed (flag removed): the failed trials now succeed
    assert o.kept == kept
    assert o.retry.returncode == 0, o.retry.stderr
    assert "re-running 2 failed trial(s)" in o.retry.stderr
    assert "2 trial(s) to run (3 already done)" in o.retry.stderr
    trials = assert_complete(study, planned, statuses=("ok", "diverged"))
    assert sorted(trials["status"]) == ["diverged", "ok", "ok", "ok", "ok"]
    after = record_bytes(study)
    for tid, content in kept.items():  # ok and diverged records untouched
        assert after[tid] == content

    # The diverged trial ran in Ray's first run; the latest run (the retry) has ended. Its
    # lost record must bring it back, not leave it pending on every re-run.
    (victim,) = [t for t, s in status.items() if s == "diverged"]
    o = fs.lose_record_of_older_run(o)
    assert o.victim == victim
    assert o.again.returncode == 0, o.again.stderr
    assert f"records/{victim}.json is unreadable; trial {victim} will run again" in o.again.stderr
    trials = assert_complete(study, planned, statuses=("ok", "diverged"))
    assert sorted(trials["status"]) == ["diverged", "ok", "ok", "ok", "ok"]
    assert {t: c for t, c in record_bytes(study).items() if t != victim} == \
        {t: c for t, c in after.items() if t != victim}


# == 5. results tables and records corrupted on disk ======================================
@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A small finished study, copied by each test that damages it."""
    if not FASHION.exists():
        pytest.skip("real Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
    yield fs.finished_study(tmp_path_factory.mktemp("finished"))  # raises if its sweep failed
    end_sessions()


def test_study_recorded_under_the_older_fingerprint_is_resumed_not_refused(finished_study, tmp_path):
    """Studies made before fingerprints left defaults out carry the full-dump fingerprint: the
    same spec must still be recognised (a no-op here), and the marker takes the new form."""
    import hashlib

    from mixerlab.sweep import load_spec

    spec, results, study = copy_study(finished_study, tmp_path)
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


@needs_fashion
@pytest.mark.slow
@pytest.mark.parametrize("how", fs.DAMAGES)
def test_damaged_table_is_rebuilt_from_records(how, finished_study, tmp_path):
    o = fs.damaged_table(tmp_path, how, finished_study)
    assert o.again.returncode == 0, o.again.stderr
    what = "missing" if how == "deleted" else "unreadable"
    assert f"trials.parquet was {what}; rebuilt the tables from {len(o.planned)} records" in o.again.stderr
    assert "nothing to run" in o.again.stderr  # rebuilt from records, nothing trained again
    assert_complete(o.study, o.planned)
    assert record_bytes(o.study) == o.before


@needs_fashion
@pytest.mark.parametrize("how", fs.DAMAGES)
def test_analyze_on_damaged_table_says_how_to_recover(how, finished_study, tmp_path, run_cli):
    _, _, study = copy_study(finished_study, tmp_path)
    damage(study / "trials.parquet", how)
    code, out, err = run_cli("analyze", study)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "trials.parquet" in err and "mixerlab sweep" in err, err  # the fix: re-run to rebuild


@needs_fashion
@pytest.mark.slow
def test_corrupt_record_is_named_and_its_trial_runs_once(finished_study, tmp_path):
    o = fs.corrupt_record(tmp_path, finished_study)
    victim, again = o.victim, o.again
    assert again.returncode == 0, again.stderr
    assert f"records/{victim}.json is unreadable; trial {victim} will run again" in again.stderr
    assert_complete(o.study, o.planned)
    after = record_bytes(o.study)
    assert json.loads(after[victim])["status"] == "ok"
    for tid in set(o.planned) - {victim}:
        assert after[tid] == o.before[tid]


@needs_fashion
@pytest.mark.slow
def test_killed_while_rewriting_a_table_leaves_the_older_table_whole(finished_study, tmp_path):
    """A finished study re-run with the failpoint: killed mid-rewrite, the old table stays."""
    o = fs.killed_while_rewriting(tmp_path, finished_study)  # raises if the failpoint did not fire
    assert o.after_kill == o.complete  # never torn, never half-new
    assert sorted(pd.read_parquet(io.BytesIO(o.after_kill))["trial_id"]) == sorted(o.planned)
    assert o.again.returncode == 0, o.again.stderr
    assert "removed 1 temporary file(s)" in o.again.stderr and "nothing to run" in o.again.stderr
    assert_complete(o.study, o.planned)


# == 6. two sweeps on one study at once ===================================================
@needs_fashion
@pytest.mark.slow
def test_second_concurrent_sweep_is_refused(tmp_path):
    o = fs.second_sweep(tmp_path)
    assert o.second.returncode == 2, o.second.stderr
    assert o.second.stderr.strip() == (
        f"mixerlab sweep: error: {o.study}: another mixerlab sweep (pid {o.first.pid}) is running "
        "this study; wait for it to finish or stop it first")
    assert o.first_running, "the first sweep finished before the second was refused"
    assert o.first.returncode == 0, o.first.stderr
    assert_complete(o.study, o.planned)


# == 7. disk full, read-only, not a folder ================================================
@pytest.fixture
def tmpfs(tmp_path):
    """Mount a fresh tmpfs; yields a function (size, read_only) -> mount point."""
    with fs.tmpfs(tmp_path) as mount:
        def mount_or_skip(size: str, read_only=False) -> Path:
            try:
                return mount(size, read_only)
            except fs.NotStaged as exc:
                pytest.skip(str(exc))

        yield mount_or_skip


def test_full_disk_is_refused_before_training(tmp_path, tmpfs):
    import ray

    o = fs.full_disk(tmp_path, tmpfs)
    code, out, err = o.code, o.out, o.err
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{o.point}: only 1 MiB free (need 200)" in err, err
    assert snapshot(o.point) == {} and not ray.is_initialized()


def test_read_only_results_folder_is_refused(tmp_path, tmpfs):
    o = fs.read_only(tmp_path, tmpfs)  # raises if the remount left it writable
    code, out, err = o.code, o.out, o.err
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{o.point}: not writable" in err, err
    assert snapshot(o.point) == {}


def test_results_under_a_regular_file_is_refused(tmp_path):
    o = fs.results_under_a_file(tmp_path)
    code, out, err = o.code, o.out, o.err
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{o.blocker}: is a file, not a folder" in err, err
    assert snapshot(tmp_path) == o.before


# == 8. a folder mixerlab did not create ==================================================
def test_foreign_non_empty_folder_is_left_untouched(tmp_path):
    o = fs.foreign_folder(tmp_path)
    code, out, err = o.code, o.out, o.err
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "mixerlab only resumes folders it created itself" in err
    assert snapshot(tmp_path) == o.before
    assert {p: p.stat().st_mtime_ns for p in o.foreign.rglob("*")} == o.stamps


def test_figures_measure_lost_and_duplicated_trials_against_the_plan(tmp_path):
    """The benchmark's counting: a planned trial missing from trials.parquet is lost, a second
    row of one trial is a duplicate, and an unreadable table has lost every trial."""
    pd.DataFrame({"trial_id": ["a", "b", "b"]}).to_parquet(tmp_path / "trials.parquet")
    f = fs.measure("x", faults=1, planned=["a", "b", "c"], study=tmp_path, recovery_s=1.26)
    assert (f.planned, f.lost, f.duplicated, f.recovery_s, f.held) == (3, 1, 1, 1.3, False)
    (tmp_path / "trials.parquet").write_bytes(b"garbage")
    f = fs.measure("x", faults=1, planned=["a", "b"], study=tmp_path, recovery_s=None)
    assert (f.lost, f.duplicated, f.recovery_s, f.held) == (2, 0, None, False)
    pd.DataFrame({"trial_id": ["b", "a"]}).to_parquet(tmp_path / "trials.parquet")
    assert fs.measure("x", faults=1, planned=["a", "b"], study=tmp_path, recovery_s=None).held
