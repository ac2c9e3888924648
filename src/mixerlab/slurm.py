"""A SLURM batch script that starts Ray inside the allocation and runs one study on it.

Follows Ray's SLURM guide (``doc/source/cluster/vms/user-guides/community/slurm.rst`` and its
``slurm-basic.sh``): one ``srun`` task per node, a Ray head on the first node and a worker on
each of the others, each told its CPUs and GPUs (``ray start`` otherwise claims the whole
node, not the allocation), then the driver on the head node. Two departures, both for shared
nodes:

- Not ``ray symmetric-run`` (Ray >= 2.49): it uses Ray's default ports, and the guide itself
  says it does not work when several jobs share a node. We run ``ray start`` per node, with
  the ports Ray would fix (GCS 6379, Ray Client 10001, dashboard agent 52365) derived from the
  job id and every other port left to the OS (the guide's "SLURM networking caveats").
- Not ``ray stop`` at the end: it stops every Ray of the user on the node, other jobs'
  included. Ending the job's own ``srun`` steps stops exactly this job's Ray.

Token authentication (Ray 2.60) uses a fresh token per job, passed in the environment
(``RAY_AUTH_TOKEN``, which ``srun`` hands on to every step), so jobs never share or
overwrite ``~/.ray/auth_token``.
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mixerlab import __version__
from mixerlab.errors import ConfigError

WARN_S = 120  # SLURM's warning before the time limit: time for Tune to save its state
JOIN_TIMEOUT_S = 300  # every Ray node must join within this, or the job fails and says so
# SLURM's --time formats (sbatch(1)): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_TIME = re.compile(r"(?:(\d+)-(\d+)(?::(\d+)(?::(\d+))?)?|(\d+)(?::(\d+)(?::(\d+))?)?)")
_WORD = re.compile(r"[A-Za-z0-9_.,+-]+")  # partition, account, job name: safe in #SBATCH lines
_PATH = re.compile(r"[A-Za-z0-9_./+=,@%~-]+")  # #SBATCH --output cannot quote a path


@dataclass(frozen=True)
class Job:
    spec: Path  # absolute
    name: str  # the spec's name: results/<name> is the study folder
    nodes: int
    gpus_per_node: int
    cpus_per_node: int
    results: Path  # absolute, on a file system every node mounts
    job_name: str
    workdir: Path  # where mixerlab slurm ran: the job runs there (relative data paths)
    bin_dir: Path  # the virtualenv (or prefix) whose mixerlab, ray and python the job uses
    trial_gpu: float = 0.0  # the spec's resources.gpu
    partition: str | None = None
    time: str | None = None
    account: str | None = None

    @property
    def default_path(self) -> Path:
        return self.results / f"{self.name}.slurm.sh"


def time_seconds(value: str) -> float:
    """Seconds in a SLURM time limit (``UNLIMITED`` is infinite); ConfigError if malformed."""
    if value.upper() in ("UNLIMITED", "INFINITE"):
        return math.inf
    m = _TIME.fullmatch(value)
    if not m:
        raise ConfigError(f"--time {value!r}: not a SLURM time; use minutes, MM:SS, HH:MM:SS or "
                          "D-HH[:MM[:SS]], e.g. 04:00:00 or 1-12")
    d, h, mi, s, m1, m2, m3 = (int(g) if g else 0 for g in m.groups())
    if m.group(1) is not None:  # D-H[:M[:S]]
        secs, small, hours = d * 86400 + h * 3600 + mi * 60 + s, (mi, s), h
    elif m.group(7) is not None:  # H:M:S
        secs, small, hours = m1 * 3600 + m2 * 60 + m3, (m2, m3), 0
    else:  # M[:S]
        secs, small, hours = m1 * 60 + m2, (m2,), 0
    if hours >= 24 or any(v >= 60 for v in small):
        raise ConfigError(f"--time {value!r}: hours after a day must be < 24, minutes and seconds "
                          "< 60; e.g. 04:00:00 or 1-12")
    return secs


def plan_job(spec_path, *, nodes: int, gpus_per_node: int, cpus_per_node: int | None = None,
             results="results", partition=None, time=None, account=None, job_name=None) -> Job:
    """Check every input (ConfigError, one line, naming the fix) and return the job to write."""
    from mixerlab.spec import load_spec

    spec = load_spec(spec_path)
    if nodes < 1:
        raise ConfigError(f"--nodes {nodes}: give at least 1 node")
    if gpus_per_node < 0:
        raise ConfigError(f"--gpus-per-node {gpus_per_node}: give 0 or more GPUs")
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    if cpus_per_node is None:
        # Enough CPUs for as many trials as the GPUs hold (one trial per node without GPUs).
        per_node = int(gpus_per_node // gpu) if gpu and gpus_per_node else 1
        cpus_per_node = max(1, math.ceil(cpu * max(per_node, 1)))
    if cpus_per_node < 1:
        raise ConfigError(f"--cpus-per-node {cpus_per_node}: give at least 1 CPU")
    if cpu > cpus_per_node:
        raise ConfigError(f"{spec_path}: resources.cpu: a trial asks for {cpu:g} CPU but a node "
                          f"gets {cpus_per_node} (--cpus-per-node); raise --cpus-per-node or lower "
                          "resources.cpu")
    if gpu > gpus_per_node:
        raise ConfigError(f"{spec_path}: resources.gpu: a trial asks for {gpu:g} GPU but a node "
                          f"gets {gpus_per_node} (--gpus-per-node); raise --gpus-per-node or lower "
                          "resources.gpu")
    if time is not None and time_seconds(time) <= WARN_S:
        raise ConfigError(f"--time {time}: no longer than the {WARN_S // 60}-minute warning the "
                          "script asks SLURM for before the limit; ask for more time")
    for flag, value in (("--partition", partition), ("--account", account), ("--job-name", job_name)):
        if value is not None and not _WORD.fullmatch(value):
            raise ConfigError(f"{flag} {value!r}: use letters, digits and '_.,+-' only")
    results = Path(results).expanduser().absolute()
    if not _PATH.fullmatch(str(results)):
        raise ConfigError(f"--results {results}: #SBATCH --output cannot hold this path (spaces or "
                          "special characters); choose a results folder with a plain path")
    if results.exists() and not results.is_dir():
        raise ConfigError(f"--results {results}: not a directory; give the parent folder of studies")
    bin_dir = Path(sys.executable).parent
    for exe in ("mixerlab", "ray"):
        if not (bin_dir / exe).is_file():
            raise ConfigError(f"{bin_dir / exe}: not found next to this Python; run mixerlab slurm "
                              "from the virtualenv the job should use (e.g. .venv/bin/mixerlab)")
    return Job(spec=Path(spec_path).absolute(), name=spec.name, nodes=nodes,
               gpus_per_node=gpus_per_node, cpus_per_node=cpus_per_node, results=results,
               job_name=job_name or f"mixerlab-{spec.name}", workdir=Path.cwd(), bin_dir=bin_dir,
               partition=partition, time=time, account=account, trial_gpu=gpu)


def command(job: Job) -> str:
    """The ``mixerlab slurm`` call that writes this job's script, every default spelled out."""
    args = ["mixerlab", "slurm", str(job.spec), "--nodes", job.nodes, "--gpus-per-node",
            job.gpus_per_node, "--cpus-per-node", job.cpus_per_node]
    for flag, value in (("--partition", job.partition), ("--account", job.account),
                        ("--time", job.time)):
        if value:
            args += [flag, value]
    args += ["--results", str(job.results), "--job-name", job.job_name]
    return " ".join(shlex.quote(str(a)) for a in args)


def render(job: Job, script_path: Path | None = None) -> str:
    """The batch script: readable top to bottom, commented for whoever runs the cluster."""
    q = shlex.quote
    script_path = script_path or job.default_path
    g = job.gpus_per_node
    sbatch = [
        (f"--job-name={job.job_name}", ""),
        (f"--nodes={job.nodes}", ""),
        ("--ntasks-per-node=1", "one Ray node per SLURM node (the srun steps below)"),
        (f"--cpus-per-task={job.cpus_per_node}", "CPUs Ray may use on each node (--num-cpus)"),
    ]
    if g:
        sbatch.append((f"--gres=gpu:{g}", "GPUs Ray may use on each node (--num-gpus); some "
                       f"sites want --gpus-per-task={g}"))
    if job.time:
        sbatch.append((f"--time={job.time}", ""))
    if job.partition:
        sbatch.append((f"--partition={job.partition}", ""))
    if job.account:
        sbatch.append((f"--account={job.account}", ""))
    sbatch += [
        (f"--signal=B:USR1@{WARN_S}", f"USR1 to this script {WARN_S} s before the time limit"),
        (f"--output={job.results}/{job.name}.slurm-%j.out", "this job's log"),
        (f"--chdir={job.workdir}", "where `mixerlab slurm` ran (relative data paths)"),
    ]
    width = max(len(s) for s, _ in sbatch if len(s) <= 28)  # a long path gets no column
    header = "\n".join(f"#SBATCH {s:<{width}} # {c}" if c else f"#SBATCH {s}" for s, c in sbatch)
    gres = f" --gres=gpu:{g}" if g else ""
    fields = {
        "NAME": job.name, "VERSION": __version__, "NODES": str(job.nodes),
        "CPUS": str(job.cpus_per_node), "GPUS": str(g), "HEADER": header,
        "BIN": q(str(job.bin_dir)), "SPEC": q(str(job.spec)), "RESULTS": q(str(job.results)),
        "SCRIPT": q(str(script_path)), "SCRIPT_RAW": str(script_path), "GRES": gres,
        "JOIN_TIMEOUT_S": str(JOIN_TIMEOUT_S),
        "CLIENT_PORT": ("client_port=$((23000 + slot))  # Ray Client server (head only; mixerlab "
                        "does not use it)" if _has_ray_client() else
                        "# (no Ray Client port: ray[client] is not installed in $BIN, so the head "
                        "starts no client server)"),
        "CLIENT_ARG": ' --ray-client-server-port="$client_port"' if _has_ray_client() else "",
        "COMMAND": command(job),
    }
    text = _TEMPLATE
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    return text


def _has_ray_client() -> bool:
    """Whether ``ray start --head`` would start a Ray Client server (it then needs a port)."""
    try:
        from ray._private.utils import get_ray_client_dependency_error

        return get_ray_client_dependency_error() is None
    except ImportError:  # another Ray version: ask for no port, Ray uses its default
        return False


def write(job: Job, path: Path | None = None) -> Path:
    path = Path(path) if path else job.default_path
    job.results.mkdir(parents=True, exist_ok=True)  # #SBATCH --output goes there
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(job, path.absolute()))
    path.chmod(0o755)
    return path


def check_sbatch() -> str:
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise ConfigError("--submit: sbatch is not on PATH; run this on the cluster's login node "
                          "(or `module load slurm`), or drop --submit and submit the written "
                          "script there with sbatch")
    return sbatch


def submit(path: Path) -> str:
    """``sbatch --parsable``: the job id, or ConfigError with sbatch's own complaint."""
    proc = subprocess.run([check_sbatch(), "--parsable", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise ConfigError(f"--submit: sbatch refused {path}: {why}")
    return proc.stdout.strip().split(";")[0]


_TEMPLATE = r"""#!/bin/bash
# mixerlab study '@NAME@' on SLURM: @NODES@ node(s), each @CPUS@ CPU(s) and @GPUS@ GPU(s) for Ray.
# Written by `@COMMAND@` (mixerlab @VERSION@).
#
#   submit:  sbatch @SCRIPT_RAW@
#   resume:  submit it again; finished trials are kept and every trial runs exactly once
#   stop:    scancel --signal=USR1 --batch JOBID   (saves the sweep's state, then ends the job)
#   watch:   squeue --me; mixerlab status @RESULTS@/@NAME@
#
# What it does: starts a Ray head on the first node of the allocation and a Ray worker on
# each other node (one srun step each), waits until all @NODES@ have joined, then runs
# `mixerlab sweep` on the head node against that cluster. The results folder must be on a
# file system every node mounts at the same path (the sweep checks this before it starts).
@HEADER@
set -euo pipefail
: "${SLURM_JOB_ID:?submit this script with sbatch; it runs inside a SLURM allocation}"

# The environment that wrote this script: the same mixerlab, Ray and torch on every node,
# so this folder must be visible from all of them (e.g. a virtualenv on the shared FS).
BIN=@BIN@
SPEC=@SPEC@
RESULTS=@RESULTS@
export PATH="$BIN:$PATH"
export PYTHONUNBUFFERED=1 # logs reach the .out file as they happen

# -- Nodes, and the head's address (Ray's SLURM guide) ----------------------------------------
nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head_node=${nodes[0]} # this script, and the sweep's driver, run here
# The first non-loopback IPv4 address (`hostname --ip-address` gives 127.0.1.1 where
# /etc/hosts maps the host name so; then `hostname -I`), else the first address found.
ips=($(srun --nodes=1 --ntasks=1 -w "$head_node" bash -c 'hostname --ip-address; hostname -I'))
head_ip=${ips[0]}
for ip in "${ips[@]}"; do
  if [[ $ip =~ ^[0-9.]+$ && $ip != 127.* ]]; then head_ip=$ip; break; fi
done

# -- Ports, derived from the job id so that two jobs sharing a node do not collide ---------
# Ray would otherwise take the same fixed ports in every job (GCS 6379, Ray Client 10001,
# dashboard agent 52365). All its other ports (node and object managers, workers, agents'
# gRPC, metrics) are 0 here: the OS picks a free one, so they never collide. If your nodes
# firewall each other, open these ranges between them or pin the others likewise.
slot=$((SLURM_JOB_ID % 1000))
port=$((6379 + slot))          # the head's GCS: the address the sweep connects to
@CLIENT_PORT@
agent_port=$((24000 + slot))   # dashboard agent's HTTP port, on every node
address="$head_ip:$port"

# -- Token authentication: one token per job, in the environment only ---------------------
# Ray 2.60 `ray start --head` enables token authentication when it finds a token; a token
# in ~/.ray/auth_token would be shared, and overwritten, by every job of this user. srun
# passes the environment on, so every Ray node and the driver get this one.
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$("$BIN/python" -c 'import secrets; print(secrets.token_hex(32))')
export RAY_AUTH_TOKEN

# -- Ray on every node of the allocation ------------------------------------------------------
# Explicit --num-cpus/--num-gpus: left alone, Ray claims the whole node, not the allocation.
# Session files and sockets go to node-local scratch, one folder per job (kept for its logs).
ray_tmp="${TMPDIR:-/tmp}/ray-$SLURM_JOB_ID"
ray_node=(--num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus=@GPUS@ --temp-dir="$ray_tmp"
          --min-worker-port=0 --max-worker-port=0 --dashboard-agent-listen-port="$agent_port"
          --disable-usage-stats --block)
step=(--nodes=1 --ntasks=1 --cpus-per-task="$SLURM_CPUS_PER_TASK"@GRES@)
steps=()

stop_ray() {
  # This job's Ray only: end its srun steps (`ray start --block` stops the Ray processes it
  # started, and SLURM reaps the rest of each step). Not `ray stop`: that stops every Ray of
  # this user on the node, other jobs' included. srun then logs "forcing job termination"
  # and "STEP ... CANCELLED": expected here, not an error.
  trap - EXIT
  if ((${#steps[@]})); then
    echo "$(date +%T) stopping Ray"
    kill -TERM "${steps[@]}" 2>/dev/null || true
    wait "${steps[@]}" 2>/dev/null || true
  fi
}
trap stop_ray EXIT

# SLURM sends USR1 (#SBATCH --signal) before the time limit, scancel sends TERM: either way
# the sweep's driver gets SIGINT, which makes Ray Tune save the study's state and return;
# then Ray is stopped. Submitting this script again resumes the study where it stopped.
driver=""
stopping=""
on_signal() {
  echo "$(date +%T) got SIG$1: asking the sweep to save its state and stop (SIGINT)"
  stopping=1
  if [[ -n $driver ]]; then kill -INT "$driver" 2>/dev/null || true; fi
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM

wait_for_nodes() { # $1: Ray nodes that must be alive, within @JOIN_TIMEOUT_S@ s; fails if a step dies
  "$BIN/python" - "$address" "$1" @JOIN_TIMEOUT_S@ "${steps[@]}" <<'PY'
import os, socket, sys, time
address, want, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, port = address.rsplit(":", 1)
deadline, alive = time.time() + limit, 0
while time.time() < deadline:
    for pid in map(int, sys.argv[4:]):  # the srun steps running `ray start`
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(f"a `ray start` step (srun pid {pid}) has ended: see its error above")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        import ray
        if not ray.is_initialized():
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        alive = sum(n["Alive"] for n in ray.nodes())
        if alive >= want:
            sys.exit(0)
    except Exception:  # noqa: BLE001 - the head is not up yet: try again until the deadline
        pass
    time.sleep(3)
sys.exit(f"only {alive} of {want} Ray node(s) joined {address} within {limit:g} s: see the "
         f"srun output above and the Ray logs in the job's --temp-dir on each node")
PY
}

echo "$(date +%T) Ray head on $head_node at $address (token auth, temp dir $ray_tmp)"
srun "${step[@]}" -w "$head_node" "$BIN/ray" start --head --node-ip-address="$head_ip" \
  --port="$port"@CLIENT_ARG@ --include-dashboard=false \
  "${ray_node[@]}" &
steps+=($!)
wait_for_nodes 1
for node in "${nodes[@]:1}"; do
  echo "$(date +%T) Ray worker on $node"
  srun "${step[@]}" -w "$node" "$BIN/ray" start --address="$address" "${ray_node[@]}" &
  steps+=($!)
done
wait_for_nodes "$SLURM_JOB_NUM_NODES"
echo "$(date +%T) all $SLURM_JOB_NUM_NODES Ray node(s) joined"

# -- The sweep ---------------------------------------------------------------------------------
if [[ -n $stopping ]]; then exit 143; fi # told to stop while Ray was starting
# Job control on, so the driver does not start with SIGINT ignored (bash's default for
# background commands of a script) and can be told to stop.
set -m
"$BIN/mixerlab" sweep "$SPEC" --address "$address" --results "$RESULTS" &
driver=$!
set +m
if [[ -n $stopping ]]; then kill -INT "$driver"; fi # the signal came as the driver started
rc=0
while true; do
  wait "$driver" && rc=0 || rc=$?
  kill -0 "$driver" 2>/dev/null || break # still running: a signal cut the wait short
done
if ((rc != 0)); then
  echo "$(date +%T) the sweep ended with exit code $rc; to resume: sbatch @SCRIPT@"
fi
exit "$rc"
"""
