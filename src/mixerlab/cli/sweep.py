"""``mixerlab sweep SPEC``: run (or resume, or preview) an ablation study on Ray Tune."""

from __future__ import annotations

import os
import shlex
import sys

from mixerlab.errors import ConfigError


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
    from mixerlab.sweep.runner import prepare, run_sweep

    if args.max_concurrent is not None and args.max_concurrent <= 0:
        raise ConfigError(f"--max-concurrent: must be a positive integer (got {args.max_concurrent})")
    if args.log:  # a missing package is said before the spec is even read
        from mixerlab.trackers import require

        require(args.log)
    if args.dry_run:
        return dry_run(*prepare(args.spec), args.spec)
    import signal

    # Ctrl-C, or the SIGINT a batch script forwards before its time limit, makes Tune save the
    # study; a driver started in the background of a script would otherwise ignore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path = run_sweep(args.spec, results_root=args.results, address=args.address,
                     max_concurrent=args.max_concurrent, new_study=args.new_study,
                     retry_failed=args.retry_failed, extend=args.extend,
                     log=args.log, log_dir=args.log_dir,
                     command=" ".join(["mixerlab", *map(shlex.quote, sys.argv[1:])]))
    from mixerlab.sweep.status import summary

    counts = summary(path)
    print(f"{path}: {counts}")
    if "pending" in counts:
        print(f"not finished: re-run `mixerlab {' '.join(map(shlex.quote, sys.argv[1:]))}` to "
              "resume where it stopped", file=sys.stderr)
        return 1
    return 0


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def dry_run(spec, data, plan, spec_path) -> int:
    import pandas as pd

    from mixerlab.sweep.estimate import estimate_trials, wall_seconds
    from mixerlab.sweep.trials import describe_plan

    rows = pd.DataFrame(describe_plan(plan))
    seeds = len(spec.seed_list)
    t = spec.train_config()
    n_train = len(data.train_y)
    # Timing this CPU says nothing about the GPU node a GPU spec is meant for: no estimate.
    gpu_elsewhere = bool(spec.resources.gpu) and not _has_cuda()
    rows["est_trial_s"] = (float("nan") if gpu_elsewhere else
                           estimate_trials(plan, data, spec.resources.cpu, spec.resources.gpu))
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 40)
    print(f"{spec.name}: {spec.question}")
    n_set = len(plan.nuisance)
    tuned = (f" x {n_set} nuisance setting(s) ({' x '.join(f'{k} {v}' for k, v in spec.nuisance.items())})"
             if spec.nuisance else "")
    print(f"{len(plan.configs)} configuration(s){tuned} x {seeds} seed(s) = {len(plan.trials)} trials on "
          f"{data.name} ({n_train} training images, {t.epochs} epochs)")
    if spec.match is not None:
        print(f"capacity matched by {' and by '.join(spec.match.by_list)} within "
              f"{spec.match.tolerance:.0%} of the reference {spec.match.reference or '(base model)'}")
    if plan.collapsed:
        print(f"{plan.collapsed} grid point(s) collapsed: they differed only in factors their "
              "mixer does not use (e.g. kernel_size for attention)")
    per_config = list(rows["est_trial_s"])
    if spec.nuisance:
        rows = rows.rename(columns={"est_trial_s": f"est_trial_s (x{n_set} settings)"})
    print(rows.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    if gpu_elsewhere:
        print(f"estimated cost: none here: this spec asks for {spec.resources.gpu:g} GPU per trial "
              "and this machine has none; run this dry run on the GPU node to time it there")
        return 0
    slots = max(1, int((os.cpu_count() or 1) // spec.resources.cpu))
    if spec.resources.gpu:
        import torch

        slots = min(slots, int(torch.cuda.device_count() // spec.resources.gpu))
    slots = max(1, min(slots, spec.max_concurrent or slots, len(plan.trials)))
    total = sum(per_config) * seeds
    print(f"estimated cost: {total / 60:,.1f} trial-minutes in all, about "
          f"{wall_seconds(per_config, seeds, slots) / 60:,.1f} minutes of wall time with {slots} "
          "trial(s) at a time on this machine (timed training and evaluation of each "
          "configuration; see mixerlab/sweep/estimate.py)")
    return 0
