#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the real test of `mixerlab slurm`
# (tests/test_slurm.py, marked slow; skipped where sbatch is missing).
#
#   sudo scripts/slurm-localhost.sh start    # install (Debian), configure, start munged/slurmctld/slurmd
#   sudo scripts/slurm-localhost.sh stop     # stop the three daemons it started, by pid
#
# Debian 12's SLURM 22.05 runs here (also inside a gVisor sandbox) with: ProctrackType=
# proctrack/linuxproc and TaskPlugin=task/none (no cgroups needed), SelectType=select/cons_tres,
# SlurmUser=root, state and spool folders under $STATE, and munged started first with
# --force. slurmd runs under `nice -n 19`, and job processes inherit its priority
# (PropagatePrioProcess=0), so a test job never slows other work on the machine.
set -euo pipefail
STATE=${SLURM_LOCALHOST_STATE:-/tmp/slurm-localhost}
CONF=/etc/slurm/slurm.conf
[ "$(id -u)" = 0 ] || { echo "slurm-localhost: run as root (it starts system daemons)" >&2; exit 2; }

stop() {
  for name in slurmd slurmctld munged; do
    pidfile="$STATE/$name.pid"
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" && echo "slurm-localhost: stopped $name (pid $pid)"
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
  done
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      slurmctld slurmd slurm-client munge
  fi
  mkdir -p "$STATE/ctld" "$STATE/d" /run/munge /var/log/munge /var/lib/munge
  # munge: a key shared by every node (one node here); Debian's package creates one.
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  if ! munge -n >/dev/null 2>&1; then
    # --force: start even though the sandbox's permissions are not what munged insists on
    runuser -u munge -- munged --force || munged --force
    sleep 1
    cp /run/munge/munged.pid "$STATE/munged.pid"
  fi
  node=$(hostname -s)
  cpus=$(nproc)
  cat > "$CONF" <<EOF
# Written by mixerlab's scripts/slurm-localhost.sh: a one-node cluster for tests.
ClusterName=localhost
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=30
NodeName=$node CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || nice -n 19 slurmd
  for _ in $(seq 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
      echo "slurm-localhost: node $node ($cpus CPUs) is idle; submit with sbatch"
      sinfo
      return 0
    fi
    sleep 1
  done
  echo "slurm-localhost: the node did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
