"""``mixerlab slurm SPEC``: a SLURM batch script that runs the study on Ray across the allocation."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("slurm", help="write (or submit) a SLURM batch script that starts Ray in "
                       "the allocation and runs a spec")
    p.add_argument("spec", help="the spec file, e.g. ablations/quick.yaml")
    p.add_argument("--nodes", type=int, required=True, help="SLURM nodes, one Ray node each")
    p.add_argument("--gpus-per-node", type=int, required=True, help="GPUs Ray may use on each node")
    p.add_argument("--cpus-per-node", type=int, default=None,
                   help="CPUs Ray may use on each node (default: a trial's resources.cpu for each "
                        "trial the node's GPUs hold, or one trial's without GPUs)")
    p.add_argument("--partition", help="sbatch --partition (default: the cluster's default)")
    p.add_argument("--account", help="sbatch --account")
    p.add_argument("--time", help="time limit, SLURM's format (e.g. 04:00:00, 1-12); default: "
                   "the partition's. Past it the sweep saves its state; submit again to resume")
    p.add_argument("--results", default="results",
                   help="parent folder of the study, on a file system every node mounts "
                        "(default: results)")
    p.add_argument("--job-name", help="sbatch --job-name (default: mixerlab-<spec name>)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the script; write nothing")
    mode.add_argument("--submit", action="store_true",
                      help="write the script and submit it with sbatch; print the job id")
    mode.add_argument("-o", "--output", metavar="FILE",
                      help="write the script here (default: <results>/<spec name>.slurm.sh)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mixerlab import slurm

    job = slurm.plan_job(args.spec, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                         cpus_per_node=args.cpus_per_node, results=args.results,
                         partition=args.partition, time=args.time, account=args.account,
                         job_name=args.job_name)
    if job.gpus_per_node and not job.trial_gpu:
        print(f"note: {args.spec} asks for no GPU per trial (resources.gpu), so the "
              f"{job.gpus_per_node} GPU(s) per node will sit idle", file=sys.stderr)
    if args.dry_run:
        print(slurm.render(job), end="")
        return 0
    if args.submit:
        slurm.check_sbatch()  # before anything is written
    path = slurm.write(job, args.output)
    if args.submit:
        job_id = slurm.submit(path)
        print(job_id)
        print(f"submitted {path} as job {job_id}; log: {job.results}/{job.name}.slurm-{job_id}.out; "
              f"progress: mixerlab status {job.results / job.name}", file=sys.stderr)
        return 0
    print(f"wrote {path}; submit it with: sbatch {path}")
    return 0

