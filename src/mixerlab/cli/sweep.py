"""``mixerlab sweep SPEC``: run (or resume, or preview) an ablation study on Ray Tune."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run an ablation spec on Ray Tune (re-run to resume)")
    p.add_argument("spec", help="the spec file, e.g. ablations/quick.yaml")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                   help="an existing Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    p.add_argument("--dry-run", action="store_true", help="print the trials and their cost; run nothing")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at a time (default: as resources allow)")
    p.add_argument("--results", default="results", help="parent folder of the study (default: results)")
    p.add_argument("--new-study", action="store_true",
                   help="the spec changed: move the old study folder aside and start again")
    p.add_argument("--extend", action="store_true",
                   help="the spec only adds values (grid, nuisance, seeds): keep the finished trials "
                        "and run the new ones")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the trials that ended in 'error' or 'oom'")
    from mixerlab.trackers import list_trackers

    p.add_argument("--log", action="append", default=[], choices=list_trackers(), metavar="TRACKER",
                   help="also log every trial to an experiment tracker, one run per trial, seeds "
                        f"grouped by configuration; repeatable ({', '.join(list_trackers())})")
    p.add_argument("--log-dir", default=None, metavar="DIR",
                   help="trackers write under DIR/<tracker> (default: <study folder>/trackers)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mixerlab.sweep.options import SweepOptions

    command = " ".join(["mixerlab", *map(shlex.quote, sys.argv[1:])])
    # Checked here, before the spec is read: a bad option is one line, exit 2 (dry run too).
    options = SweepOptions(results_root=Path(args.results), address=args.address,
                           max_concurrent=args.max_concurrent, new_study=args.new_study,
                           extend=args.extend, retry_failed=args.retry_failed,
                           log=tuple(args.log), log_dir=args.log_dir, command=command)
    if args.dry_run:
        from mixerlab.sweep.dry_run import dry_run

        return dry_run(args.spec, results_root=Path(args.results))
    import signal

    from mixerlab.sweep.runner import run_sweep
    from mixerlab.sweep.status import summary

    # Ctrl-C, or the SIGINT a batch script forwards before its time limit, makes Tune save the
    # study; a driver started in the background of a script would otherwise ignore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path = run_sweep(args.spec, options)
    counts = summary(path)
    print(f"{path}: {counts}")
    if "pending" in counts:
        print(f"not finished: re-run `{command}` to resume where it stopped", file=sys.stderr)
        return 1
    return 0
