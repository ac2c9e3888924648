"""``mixerlab slurm``: the batch script it writes, its input checks, and a real SLURM run.

The script's own logic (signals, Ray start-up and stop) is run by bash with ``srun``,
``scontrol``, ``ray`` and ``mixerlab`` replaced by small fakes; the slow test submits it to
a real one-node SLURM (``scripts/slurm-localhost.sh start``) and is skipped where there is none.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixerlab.slurm import time_seconds

TINY = """\
name: tiny-slurm
question: Does the SLURM launcher run a study end to end?
dataset: {name: synthetic, synthetic_size: 64}
train: {epochs: 1}
model: {depth: 1, width: 8}
grid: {mixer: [identity, conv]}
seeds: 1
resources: {cpu: 1}
execution: {precision: fp32, memory_format: channels_last, attention_kernel: fused}
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def dry_run(run_cli, spec, *extra):
    code, out, err = run_cli("slurm", spec, "--nodes", 2, "--gpus-per-node", 4,
                             "--cpus-per-node", 32, "--results", spec.parent / "results",
                             "--dry-run", *extra)
    assert code == 0, err
    return out


def test_dry_run_prints_a_valid_script_and_writes_nothing(run_cli, spec, tmp_path):
    before = sorted(tmp_path.rglob("*"))
    out = dry_run(run_cli, spec, "--partition", "gpu", "--account", "lab", "--time", "1-12")
    assert sorted(tmp_path.rglob("*")) == before
    check = subprocess.run(["bash", "-n"], input=out, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=32",
                 "#SBATCH --gres=gpu:4", "#SBATCH --time=1-12", "#SBATCH --partition=gpu",
                 "#SBATCH --account=lab", "#SBATCH --signal=B:USR1@120",
                 f"#SBATCH --output={tmp_path}/results/tiny-slurm.slurm-%j.out"):
        assert re.search(rf"^{re.escape(line)}\b", out, re.M), line
    assert "set -euo pipefail" in out
    # Ray told the allocation's resources, ports from the job id, a per-job token and temp dir
    assert '--num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus=4' in out
    assert "slot=$((SLURM_JOB_ID % 1000))" in out and "port=$((6379 + slot))" in out
    assert '--port="$port"' in out and '--dashboard-agent-listen-port="$agent_port"' in out
    assert "export RAY_AUTH_MODE=token" in out and "export RAY_AUTH_TOKEN" in out
    assert '--temp-dir="$ray_tmp"' in out and 'ray_tmp="${TMPDIR:-/tmp}/ray-$SLURM_JOB_ID"' in out
    assert "trap 'on_signal USR1' USR1" in out and "trap 'on_signal TERM' TERM" in out
    assert 'kill -INT "$driver"' in out
    bin_dir = Path(sys.executable).parent
    assert f"BIN={bin_dir}" in out and f"SPEC={spec}" in out
    assert '"$BIN/mixerlab" sweep "$SPEC" --address "$address" --results "$RESULTS"' in out
    assert not re.search(r"^[^#]*\bray\"? stop", out, re.M)  # never `ray stop` (other jobs' Ray)


def test_no_gpus_no_gres(run_cli, spec):
    code, out, err = run_cli("slurm", spec, "--nodes", 1, "--gpus-per-node", 0, "--dry-run")
    assert code == 0, err
    assert "--gres" not in out and "--num-gpus=0" in out
    assert "#SBATCH --cpus-per-task=1" in out  # default: one trial's CPUs without GPUs
    assert "#SBATCH --time" not in out and "#SBATCH --partition" not in out


def test_writes_the_default_file_and_says_how_to_submit(run_cli, spec, tmp_path):
    code, out, err = run_cli("slurm", spec, "--nodes", 1, "--gpus-per-node", 0,
                             "--results", tmp_path / "results")
    assert code == 0, err
    path = tmp_path / "results" / "tiny-slurm.slurm.sh"
    assert path.is_file() and os.access(path, os.X_OK)
    assert f"sbatch {path}" in out
    assert "resume:  submit it again" in path.read_text()
    code, out, err = run_cli("slurm", spec, "--nodes", 1, "--gpus-per-node", 0,
                             "-o", tmp_path / "job.sh")
    assert code == 0, err
    assert (tmp_path / "job.sh").read_text().startswith("#!/bin/bash")


@pytest.mark.parametrize("value,seconds", [
    ("30", 1800), ("5:30", 330), ("04:00:00", 14400), ("1-12", 129600), ("2-03:04", 183840),
    ("1-00:00:01", 86401), ("UNLIMITED", float("inf")),
])
def test_slurm_time_formats(value, seconds):
    assert time_seconds(value) == seconds


BAD = [
    ("missing-spec", ["--nodes", "1", "--gpus-per-node", "0"], "no such file", "nope.yaml"),
    ("zero-nodes", ["--nodes", "0", "--gpus-per-node", "0"], "--nodes 0", None),
    ("negative-gpus", ["--nodes", "1", "--gpus-per-node", "-1"], "--gpus-per-node -1", None),
    ("nodes-not-int", ["--nodes", "two", "--gpus-per-node", "0"], "invalid int value", None),
    ("bad-time", ["--nodes", "1", "--gpus-per-node", "0", "--time", "4h"], "not a SLURM time", None),
    ("bad-minutes", ["--nodes", "1", "--gpus-per-node", "0", "--time", "1:75:00"], "< 60", None),
    ("too-short", ["--nodes", "1", "--gpus-per-node", "0", "--time", "2"], "2-minute warning", None),
    ("zero-cpus", ["--nodes", "1", "--gpus-per-node", "0", "--cpus-per-node", "0"],
     "at least 1 CPU", None),
    ("partition-space", ["--nodes", "1", "--gpus-per-node", "0", "--partition", "a b"],
     "--partition", None),
    ("dry-run-and-submit", ["--nodes", "1", "--gpus-per-node", "0", "--dry-run", "--submit"],
     "not allowed with", None),
]


@pytest.mark.parametrize("case,args,fragment,spec_name", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_cli, spec, tmp_path, case, args,
                                                        fragment, spec_name):
    results = tmp_path / "results"
    code, out, err = run_cli("slurm", tmp_path / (spec_name or spec.name), *args,
                             "--results", results)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert "Traceback" not in err and not results.exists()


@pytest.mark.parametrize("resources,flags,fragment", [
    ("{cpu: 4}", ["--cpus-per-node", "2", "--gpus-per-node", "0"], "resources.cpu"),
    ("{cpu: 1, gpu: 1}", ["--gpus-per-node", "0"], "resources.gpu"),
])
def test_a_trial_must_fit_a_node(run_cli, tmp_path, resources, flags, fragment):
    spec = tmp_path / "big.yaml"
    spec.write_text(TINY.replace("resources: {cpu: 1}", f"resources: {resources}"))
    code, out, err = run_cli("slurm", spec, "--nodes", "1", *flags, "--results", tmp_path / "r")
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_submit_without_sbatch_names_the_fix(run_cli, spec, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, out, err = run_cli("slurm", spec, "--nodes", 1, "--gpus-per-node", 0, "--submit",
                             "--results", tmp_path / "results")
    assert code == 2 and "sbatch is not on PATH" in err and "login node" in err
    assert not (tmp_path / "results").exists()


# -- The script's logic, run by bash with fakes for srun, scontrol, ray and mixerlab ----------

FAKES = {
    # srun: drop its options (-w NODE, --opt=value) and run the command here
    "srun": 'while [[ $# -gt 0 && $1 == -* ]]; do [[ $1 == -w ]] && shift; shift; done\nexec "$@"',
    "scontrol": "echo node1",
    # ray start --block: runs until TERM; FAKE_RAY_FAILS makes it die at once
    "ray": 'echo "ray $*" >> "$LOG"\n[[ -n ${FAKE_RAY_FAILS:-} ]] && exit 1\n'
           "trap 'echo ray-stopped >> \"$LOG\"; exit 0' TERM\nwhile :; do sleep 0.05; done",
    # the sweep: a script cannot trap a signal ignored on entry, so this also checks that the
    # driver does not start with SIGINT ignored
    "mixerlab": 'echo "mixerlab $*" >> "$LOG"\n'
                "trap 'echo sweep-got-INT >> \"$LOG\"; exit 1' INT\n"
                'touch "$LOG.started"\nwhile :; do sleep 0.05; done',
    # python: the token one-liner for real; the node-join wait for real only when a ray
    # step fails (it then ends at once), else "all joined"
    "python": f'if [[ $1 == -c || -n ${{FAKE_RAY_FAILS:-}} ]]; then exec {sys.executable} "$@"; fi\n'
              "cat > /dev/null",
}


def fake_job(tmp_path, spec, run_cli):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    code, out, err = run_cli("slurm", spec, "--nodes", 1, "--gpus-per-node", 0,
                             "--cpus-per-node", 2, "--results", tmp_path / "results", "--dry-run")
    script = tmp_path / "job.sh"
    script.write_text(re.sub(r"^BIN=.*$", f"BIN={bin_dir}", out, flags=re.M))
    env = {**os.environ, "LOG": str(tmp_path / "log"), "SLURM_JOB_ID": "1005",
           "SLURM_CPUS_PER_TASK": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "node1",
           "TMPDIR": str(tmp_path)}
    return script, env, tmp_path / "log"


def test_script_forwards_usr1_as_sigint_then_stops_ray(tmp_path, spec, run_cli):
    script, env, log = fake_job(tmp_path, spec, run_cli)
    # As sbatch starts it: with SIGINT at its default, even where this test itself was started
    # in the background with SIGINT ignored (a shell cannot trap a signal ignored on entry).
    job = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 30
        while not Path(f"{log}.started").exists():
            assert time.time() < deadline and job.poll() is None, job.stdout.read()
            time.sleep(0.1)
        job.send_signal(signal.SIGUSR1)  # what SLURM sends 120 s before the time limit
        output, _ = job.communicate(timeout=30)
    finally:
        job.kill()
    lines = log.read_text().splitlines()
    assert job.returncode == 1, output  # the sweep's "not finished" code: resubmit to resume
    assert "got SIGUSR1" in output and "to resume: sbatch" in output
    ray, sweep = lines[0], lines[1]
    assert ray.startswith("ray start --head") and "--port=6384" in ray  # 6379 + 1005 % 1000
    assert "--num-cpus=2 --num-gpus=0" in ray and f"--temp-dir={tmp_path}/ray-1005" in ray
    assert "--dashboard-agent-listen-port=24005" in ray and "--block" in ray
    address = re.search(r"--node-ip-address=(\S+)", ray).group(1) + ":6384"
    assert sweep == f"mixerlab sweep {spec} --address {address} --results {tmp_path}/results"
    assert lines[2:] == ["sweep-got-INT", "ray-stopped"]  # the driver first, then Ray


def test_script_fails_fast_when_ray_does_not_start(tmp_path, spec, run_cli):
    script, env, log = fake_job(tmp_path, spec, run_cli)
    job = subprocess.run(["bash", str(script)], env={**env, "FAKE_RAY_FAILS": "1"},
                         capture_output=True, text=True, timeout=60)
    assert job.returncode != 0
    assert "`ray start` step" in job.stderr and "has ended" in job.stderr
    assert "mixerlab sweep" not in log.read_text()


# -- A real SLURM ----------------------------------------------------------------------------

def _slurm_up() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool({"idle", "mixed"} & set(out.stdout.split()))


def _wait_for_job(job_id: str, timeout: float) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
        state = re.search(r"JobState=(\S+)", out.stdout)
        if state and state.group(1) not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return out.stdout
        time.sleep(2)
    subprocess.run(["scancel", job_id])
    pytest.fail(f"SLURM job {job_id} did not finish within {timeout:g} s")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sbatch") is None,
                    reason="no SLURM here (sbatch not on PATH): run scripts/slurm-localhost.sh start")
def test_real_slurm_runs_the_study_and_a_resubmission_keeps_each_trial_once(tmp_path, spec):
    if not _slurm_up():
        pytest.skip("sbatch is here but no SLURM node is up: run scripts/slurm-localhost.sh start")
    import pandas as pd

    results = tmp_path / "results"
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "mixerlab", "slurm", str(spec), "--nodes", "1",
                          "--cpus-per-node", "2", "--gpus-per-node", "0", "--results",
                          str(results), "--submit"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    info = _wait_for_job(job_id, 180)
    log = (results / f"tiny-slurm.slurm-{job_id}.out").read_text()
    assert "JobState=COMPLETED" in info and "ExitCode=0:0" in info, log
    assert "all 1 Ray node(s) joined" in log and "tiny-slurm: 2 ok" in log
    trials = pd.read_parquet(results / "tiny-slurm" / "trials.parquet")
    assert list(trials["status"]) == ["ok", "ok"] and trials["trial_id"].is_unique
    print(f"first job {job_id}: {time.time() - t0:.0f} s")

    # Submitting the same script again: nothing to run, each trial still once.
    script = results / "tiny-slurm.slurm.sh"
    again = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    job2 = again.stdout.strip().split(";")[0]
    info = _wait_for_job(job2, 180)
    log = (results / f"tiny-slurm.slurm-{job2}.out").read_text()
    assert "JobState=COMPLETED" in info, log
    assert "all 2 trials already finished; nothing to run" in log
    trials = pd.read_parquet(results / "tiny-slurm" / "trials.parquet")
    assert len(trials) == 2 and trials["trial_id"].is_unique and set(trials["status"]) == {"ok"}
    print(f"both jobs: {time.time() - t0:.0f} s")


LONGER = """\
name: cut-slurm
question: Does a study cancelled mid-sweep resume when its script is submitted again?
dataset: {name: fashion-mnist, train_subset: 4096, val_fraction: 0.02}
train: {epochs: 3, batch_size: 64, measure_throughput: false}
model: {depth: 1, width: 16}
grid: {mixer: [identity, conv], patch_size: [7, 4]}
seeds: 2
resources: {cpu: 1}
execution: {precision: fp32, memory_format: channels_last, attention_kernel: fused}
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sbatch") is None,
                    reason="no SLURM here (sbatch not on PATH): run scripts/slurm-localhost.sh start")
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
                    reason="real Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
def test_real_slurm_job_cancelled_mid_sweep_resumes_on_resubmission(tmp_path):
    """`scancel --signal=USR1 --batch` (what the time-limit warning sends) mid-sweep, then
    the same script again: the study completes, each trial once, finished ones kept."""
    if not _slurm_up():
        pytest.skip("sbatch is here but no SLURM node is up: run scripts/slurm-localhost.sh start")
    import pandas as pd

    spec = tmp_path / "cut.yaml"
    spec.write_text(LONGER)
    results = tmp_path / "results"
    study = results / "cut-slurm"
    out = subprocess.run([sys.executable, "-m", "mixerlab", "slurm", str(spec), "--nodes", "1",
                          "--cpus-per-node", "2", "--gpus-per-node", "0", "--results",
                          str(results), "--submit"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    deadline = time.time() + 180
    while time.time() < deadline and not list((study / "records").glob("*.json")):
        time.sleep(0.5)  # until one trial has finished: the rest are running or pending
    before = {p.name: p.read_bytes() for p in (study / "records").glob("*.json")}
    assert before, "no trial finished within 180 s"
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True)
    _wait_for_job(job_id, 120)
    log = (results / f"cut-slurm.slurm-{job_id}.out").read_text()
    assert "got SIGUSR1" in log and "to resume: sbatch" in log, log
    cut = {p.name for p in (study / "records").glob("*.json")}
    assert len(cut) < 8, "the study finished before the cancel landed"

    again = subprocess.run(["sbatch", "--parsable", str(results / "cut-slurm.slurm.sh")],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    job2 = again.stdout.strip().split(";")[0]
    info = _wait_for_job(job2, 240)
    log2 = (results / f"cut-slurm.slurm-{job2}.out").read_text()
    assert "JobState=COMPLETED" in info and "ExitCode=0:0" in info, log2
    trials = pd.read_parquet(study / "trials.parquet")
    assert len(trials) == 8 and trials["trial_id"].is_unique and set(trials["status"]) == {"ok"}
    for name, content in before.items():  # finished before the cancel: not trained again
        assert (study / "records" / name).read_bytes() == content
    print(f"cancelled job {job_id} with {len(cut)} of 8 trials done; job {job2} finished the rest")
