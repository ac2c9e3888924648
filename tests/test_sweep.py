"""Sweeps on real Ray (an embedded local instance) with small real Fashion-MNIST subsets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import alive_nodes

from mixerlab.sweep import expand, load_spec

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fashion = pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")

SPEC = """\
name: {name}
question: Does the mixer matter on a tiny subset?
dataset: {{name: fashion-mnist, train_subset: {subset}, val_fraction: 0.02}}
train: {{epochs: {epochs}, batch_size: 64, measure_throughput: false}}
model: {{depth: 1, width: 16}}
{grid}
seeds: {seeds}
resources: {{cpu: 1}}
{execution}"""
# Most tests here are not about the way each configuration runs: pinned, nothing is timed.
PINNED = "execution: {precision: fp32, memory_format: channels_last, attention_kernel: fused}\n"


def write_spec(tmp_path: Path, name="t", subset=256, epochs=1, seeds=1,
               grid="grid: {mixer: [conv, attention], patch_size: [4, 7]}", execution=PINNED) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, subset=subset, epochs=epochs, seeds=seeds, grid=grid,
                                execution=execution))
    return path


def sweep(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "mixerlab", "sweep", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@needs_fashion
@pytest.mark.slow
def test_grid_completes_with_one_row_per_trial(tmp_path):
    spec = write_spec(tmp_path, execution="")  # each configuration's way measured
    proc = sweep(spec, "--results", tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    study = tmp_path / "results" / "t"
    trials = pd.read_parquet(study / "trials.parquet")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"ok"}
    assert set(trials["mixer"]) == {"conv", "attention"} and set(trials["patch_size"]) == {4, 7}
    for col in ("seed", "test_acc", "params", "macs", "train_images_per_s", "device_name",
                "git_commit", "torch_version", "trial_time_s"):
        assert trials[col].notna().all(), col
    history = pd.read_parquet(study / "history.parquet")
    assert len(history) == 4 and set(history["trial_id"]) == set(trials["trial_id"])
    assert (study / "trials.csv").exists() and (study / "spec.yaml").read_text() == spec.read_text()
    prov = json.loads((study / "provenance.json").read_text())
    assert prov["n_trials"] == 4 and prov["versions"]["ray_version"] and prov["command"]
    # Each configuration's way, measured once before the trials, recorded with every trial.
    ways = json.loads((study / "execution.json").read_text())
    assert not ways["legacy"] and len(ways["ways"]) == 4
    assert all(w["rates"] and w["label"] in w["rates"] for w in ways["ways"].values())
    assert set(trials["execution"]) == {"measured"} and trials["precision"].notna().all()
    assert len(prov["execution"]["ways"]) == 4
    assert "trials 4/4 done" in proc.stderr  # the progress line
    # a finished study is a no-op that says so
    again = sweep(spec, "--results", tmp_path / "results")
    assert again.returncode == 0 and "nothing to run" in again.stderr
    # a changed spec is refused...
    spec.write_text(spec.read_text().replace("epochs: 1", "epochs: 2"))
    changed = sweep(spec, "--results", tmp_path / "results")
    assert changed.returncode == 2 and "different spec" in changed.stderr
    assert len(pd.read_parquet(study / "trials.parquet")) == 4


@needs_fashion
@pytest.mark.slow
def test_diverging_trial_is_recorded_while_others_finish(tmp_path):
    grid = "configs: [{mixer: conv, patch_size: 7}, {mixer: conv, patch_size: 7, lr: 1.0e+9, grad_clip: null}]"
    proc = sweep(write_spec(tmp_path, name="div", grid=grid), "--results", tmp_path)
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_parquet(tmp_path / "div" / "trials.parquet").set_index("lr")
    assert trials.loc[1e9, "status"] == "diverged" and "loss became" in trials.loc[1e9, "error"]
    assert trials.drop(1e9)["status"].tolist() == ["ok"]
    status = subprocess.run([sys.executable, "-m", "mixerlab", "status", tmp_path / "div"],
                            capture_output=True, text=True)
    assert "1 diverged, 1 ok" in status.stdout and "loss became" in status.stdout


# A driver killed like a power cut mid-trial, re-run: tests/test_reliability.py
# (test_killed_driver_rerun_keeps_every_trial_once[mid-trial-power-cut]) covers it, with the
# records of finished trials checked byte for byte.


@needs_fashion
def test_match_params_solves_widths_within_tolerance(tmp_path):
    from mixerlab.config import ModelConfig
    from mixerlab.measure import count_params
    from mixerlab.models import create_model

    spec = load_spec(write_spec(tmp_path, grid="""grid: {mixer: [conv, attention, mlp, identity], patch_size: [4]}
match: {by: params, reference: {mixer: conv, width: 96, depth: 2}, tolerance: 0.03}"""))
    plan = expand(spec, (28, 1, 10))
    reference = ModelConfig(mixer="conv", width=96, depth=2)  # the spec's base model + overrides
    target = count_params(create_model(reference))["params"]
    widths = {}
    for trial in plan.trials:
        params = count_params(create_model(trial.config.model))["params"]
        assert abs(params - target) <= 0.03 * target
        assert trial.extra["match_target_params"] == target
        widths[trial.config.model.mixer] = trial.config.model.width
    assert widths["identity"] > widths["conv"] > widths["attention"]  # cheaper mixers get wider


def test_irrelevant_factors_collapse_in_the_plan(tmp_path):
    spec = load_spec(write_spec(tmp_path, grid="grid: {mixer: [conv, attention], kernel_size: [3, 5, 7]}"))
    spec.dataset = {"name": "synthetic"}
    plan = expand(spec, (28, 1, 10))
    assert len(plan.arms) == 4 and plan.collapsed == 2  # 3 conv + 1 attention


def _register_grouped(registry, name: str, uses: tuple[str, ...]) -> None:
    """A throwaway mixer: a 3x3 conv in ``heads`` groups when it uses heads, else depthwise."""
    from torch import nn

    @registry.register_mixer(name, uses=uses)
    class Grouped(nn.Module):
        """Grouped 3x3 convolution (test only)."""

        def __init__(self, dim: int, grid: tuple[int, int], heads: int = 0):
            super().__init__()
            self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=heads or dim)

        def forward(self, x):
            return self.conv(x)


def test_a_new_mixer_with_heads_is_matched_in_steps_of_heads(monkeypatch):
    """Whether the width steps by heads is the mixer registry's word (``uses``), not the
    sweep's: a mixer registered here with heads is solved, and warned of, like attention."""
    from mixerlab.config import ModelConfig
    from mixerlab.models.mixers import registry
    from mixerlab.sweep import capacity

    monkeypatch.setattr(registry, "_MIXERS", dict(registry._MIXERS))  # forgotten after the test
    _register_grouped(registry, "grouped_heads", uses=("heads",))
    _register_grouped(registry, "grouped_plain", uses=())
    assert registry.get_mixer("grouped_heads").has_heads
    assert not registry.get_mixer("grouped_plain").has_heads
    tried = []

    def spy(cfg, by):
        tried.append(cfg.width)
        return capacity._cost_json(cfg.model_dump_json(), by)

    monkeypatch.setattr(capacity, "cost", spy)
    target = spy(ModelConfig(mixer="conv", depth=2, width=50), "params")
    for mixer in ("grouped_heads", "grouped_plain"):
        tried.clear()
        cfg = ModelConfig(mixer=mixer, depth=2, width=48, heads=6)
        solved, reached = capacity.solve_width(cfg, target, "params", tolerance=0.05)
        assert abs(reached - target) <= 0.05 * target
        steps_by_heads = all(w % 6 == 0 for w in tried)
        assert steps_by_heads == (mixer == "grouped_heads"), (mixer, sorted(set(tried)))
    narrow = ModelConfig(mixer="grouped_heads", depth=2, width=12, heads=6)
    assert "6 heads of 2 channel(s)" in capacity.odd_shape(narrow, "params")
    assert capacity.odd_shape(narrow.model_copy(update={"mixer": "grouped_plain"}), "params") is None


@needs_fashion
def test_dry_run_lists_trials_and_starts_nothing(tmp_path, run_cli):
    import ray

    spec = write_spec(tmp_path, grid="grid: {mixer: [conv, attention], kernel_size: [3, 5]}",
                      execution="")
    code, out, err = run_cli("sweep", spec, "--dry-run", "--results", tmp_path / "results")
    assert code == 0, err
    assert "3 configuration(s) x 1 seed(s) = 3 trials" in out
    assert "1 grid point(s) collapsed" in out and "estimated cost" in out
    assert not (tmp_path / "results").exists() and not ray.is_initialized()
    # Each arm's way to run, measured: attention's names the kernel only where it is not fused.
    assert "speedup" in out
    rows = [line for line in out.splitlines() if line.lstrip().startswith(("conv", "attention"))]
    assert len(rows) == 3 and all(("fp32" in r or "bf16" in r) for r in rows), out


@needs_fashion
def test_dry_run_of_a_gpu_spec_without_a_gpu_times_nothing(tmp_path, run_cli):
    """Timing this CPU would say nothing about the GPU node a GPU spec is meant for."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the dry run times it")
    spec = tmp_path / "g.yaml"
    spec.write_text(write_spec(tmp_path).read_text().replace("{cpu: 1}", "{cpu: 1, gpu: 0.25}"))
    code, out, err = run_cli("sweep", spec, "--dry-run")
    assert code == 0, err
    assert "estimated cost: none here: this spec asks for 0.25 GPU per trial" in out
    assert "trial-minutes" not in out


@needs_fashion
@pytest.mark.slow
def test_two_node_cluster_with_address(tmp_path):
    """A real two-node Ray cluster on this machine: `ray start --head` + a worker node."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = 6390 + os.getpid() % 500
    import secrets

    # Token authentication, as a real cluster would have it: every process shares the token.
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    sessions = []  # each `ray start` in its own session: its daemons stay in it

    def ray_start(*args):
        proc = subprocess.Popen([ray_bin, "start", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        sessions.append(proc.pid)
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, out

    try:
        ray_start("--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false")
        ray_start(f"--address=127.0.0.1:{port}", "--num-cpus=1")
        deadline = time.monotonic() + 90
        while alive_nodes(f"127.0.0.1:{port}", env) < 2:
            assert time.monotonic() < deadline, "the worker node did not join within 90 s"
            time.sleep(1)
        # Unpinned: on a cluster the ways are timed by a Ray task with a trial's resources.
        spec = write_spec(tmp_path, name="cluster", subset=8192, epochs=4, execution="")
        proc = sweep(spec, "--results", tmp_path / "results", "--address", f"127.0.0.1:{port}",
                     env=env)
        assert proc.returncode == 0, proc.stderr
        trials = pd.read_parquet(tmp_path / "results" / "cluster" / "trials.parquet")
        assert len(trials) == 4 and set(trials["status"]) == {"ok"}
        assert "2 at a time" in proc.stderr, proc.stderr  # sized from both nodes' CPUs
        # Each trial outlasts a worker's start on the second node (process, torch, the data
        # from the object store); shorter ones can all run on the first actor, which Tune
        # reuses before the second has started.
        assert trials["ray_node_id"].nunique() == 2, trials[["ray_node_id", "trial_time_s"]]
        ways = json.loads((tmp_path / "results" / "cluster" / "execution.json").read_text())
        assert len(ways["ways"]) == 4 and set(trials["execution"]) == {"measured"}
    finally:
        # This test's nodes only: `ray stop --force` would stop every Ray on the machine.
        from processes import kill_session

        for sid in sessions:
            kill_session(sid)


def test_a_saved_experiment_is_resumed_only_if_it_holds_every_pending_trial():
    """Tune restores the trials it had saved and creates the rest from its saved search
    state; without that state such a trial comes back with an empty config."""
    from types import SimpleNamespace as Saved  # the two attributes read of Tune's Trial

    from mixerlab.sweep.resume import why_not_resume

    pending = [SimpleTrial("a"), SimpleTrial("b")]
    running = [Saved(status="RUNNING", config={"trial": {"trial_id": t}}) for t in ("a", "b", "c")]
    assert why_not_resume(running, pending, search_state_saved=False) == ""
    # Trials Tune had not created yet come from its saved search state, if it has one.
    assert why_not_resume(running[:1], pending, search_state_saved=True) == ""
    assert "lacks 1 of them (e.g. b)" in why_not_resume(running[:1], pending, False)
    assert "lacks 2" in why_not_resume([Saved(status="PENDING", config={})], pending, False)
    ended = [Saved(status=s, config={"trial": {"trial_id": t}}) for s, t in (("TERMINATED", "a"),
                                                                               ("ERROR", "b"))]
    assert why_not_resume(ended, pending, True) == "all its trials had ended"


class SimpleTrial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def test_resume_falls_back_when_rays_checkpoint_is_gone(tmp_path):
    """Ray's snapshot may name a checkpoint Tune already deleted (num_to_keep): use another."""
    from mixerlab.checkpoint import save_state
    from mixerlab.sweep.trainable import STATE_FILE, load_trial_state

    def ckpt(name, epoch):
        (tmp_path / name).mkdir()
        save_state({"epoch": epoch}, tmp_path / name / STATE_FILE)

    ckpt("checkpoint_000000", 1)
    ckpt("checkpoint_000002", 3)
    assert load_trial_state(tmp_path / "checkpoint_000000") == ({"epoch": 1}, "")
    state, note = load_trial_state(tmp_path / "checkpoint_000001")  # named, but deleted
    assert state == {"epoch": 3} and "resumed from checkpoint_000002" in note
    (tmp_path / "checkpoint_000002" / STATE_FILE).write_bytes(b"torn")  # damaged: skipped
    state, note = load_trial_state(tmp_path / "checkpoint_000001")
    assert state == {"epoch": 1} and "resumed from checkpoint_000000" in note
    (tmp_path / "checkpoint_000000" / STATE_FILE).unlink()
    state, note = load_trial_state(tmp_path / "checkpoint_000001")
    assert state is None and "trained from epoch 0" in note


@needs_fashion
@pytest.mark.slow
def test_asha_stops_a_poor_trial_early_and_the_report_says_how_early_ranks_final(tmp_path, run_cli):
    # The last trial cannot learn (lr 1e-7): by the time it reaches ASHA's first rung, two
    # trials that do learn have recorded theirs, so it falls below the cut and is stopped.
    grid = ("configs: [{mixer: conv, patch_size: 7}, {mixer: mlp, patch_size: 7}, "
            "{mixer: identity, patch_size: 7}, {mixer: conv, patch_size: 7, lr: 1.0e-7}]\n"
            "scheduler: {type: asha, grace_period: 1, reduction_factor: 2}")
    spec = write_spec(tmp_path, name="asha", subset=1024, epochs=3, grid=grid)
    proc = sweep(spec, "--results", tmp_path)
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_parquet(tmp_path / "asha" / "trials.parquet")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"ok", "stopped"} and "ok" in set(trials["status"])
    done = trials[trials["status"] == "ok"]  # trained to the end: the record carries the test
    assert (done["epochs_run"] == 3).all() and done["test_acc"].notna().all()
    poor = trials[trials["lr"] == 1e-7].iloc[0]
    assert poor["status"] == "stopped" and poor["epochs_run"] < 3 and pd.isna(poor["test_acc"])
    assert "ASHA" in poor["error"] and poor["params"] > 0 and poor["macs"] > 0
    history = pd.read_parquet(tmp_path / "asha" / "history.parquet")
    assert set(history["trial_id"]) == set(trials["trial_id"])  # stopped ones: up to the stop
    assert len(history[history["trial_id"] == poor["trial_id"]]) == poor["epochs_run"]
    code, out, err = run_cli("analyze", tmp_path / "asha")
    assert code == 0, err
    report = (tmp_path / "asha" / "report" / "report.md").read_text()
    assert "## Early vs final accuracy (ASHA)" in report and "stopped" in report


def test_time_left_scales_each_trials_estimate_by_how_the_finished_ones_compared():
    """The progress line's time left (sweep/progress.eta_seconds) on a study whose trials
    differ twentyfold: the long trial finished at twice its estimate, so what is left counts
    twice its estimate too, not the mean of the finished trials."""
    from mixerlab.sweep.progress import eta_seconds

    costs = {"long1": 100.0, "long2": 100.0, "short1": 5.0, "short2": 5.0}
    left = eta_seconds(costs, durations={"long1": 200.0}, running={"long2": 50.0},
                       pending=["short1", "short2"], slots=2)
    assert left == pytest.approx((2 * 10 + (200 - 50)) / 2)
    # Before any trial finished: the estimates as they are; a running trial past its estimate
    # counts nothing more.
    assert eta_seconds(costs, {}, {"long1": 300.0}, ["short1"], 1) == pytest.approx(5.0)
    # A trial without a usable estimate: no figure (the line falls back to the mean duration).
    assert eta_seconds({**costs, "short2": float("nan")}, {}, {}, ["short2"], 1) is None
    assert eta_seconds({}, {}, {}, ["x"], 1) is None
