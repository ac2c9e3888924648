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
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the trials that ended in 'error' or 'oom'")
    p.set_defaults(func=run)


def run(args) -> int:
    from mixerlab.sweep.runner import prepare, run_sweep

    if args.max_concurrent is not None and args.max_concurrent <= 0:
        raise ConfigError(f"--max-concurrent: must be a positive integer (got {args.max_concurrent})")
    if args.dry_run:
        return dry_run(*prepare(args.spec), args.spec)
    path = run_sweep(args.spec, results_root=args.results, address=args.address,
                     max_concurrent=args.max_concurrent, new_study=args.new_study,
                     retry_failed=args.retry_failed,
                     command=" ".join(["mixerlab", *map(shlex.quote, sys.argv[1:])]))
    from mixerlab.sweep.status import summary

    counts = summary(path)
    print(f"{path}: {counts}")
    if "pending" in counts:
        print(f"not finished: re-run `mixerlab {' '.join(map(shlex.quote, sys.argv[1:]))}` to "
              "resume where it stopped", file=sys.stderr)
        return 1
    return 0


def dry_run(spec, data, plan, spec_path) -> int:
    import pandas as pd

    from mixerlab.sweep.trials import describe_plan

    rows = pd.DataFrame(describe_plan(plan))
    seeds = len(spec.seed_list)
    t = spec.train_config()
    n_train = len(data.train_y)
    rows["est_train_s"] = _estimate_seconds(plan, n_train, t, spec.resources.cpu)
    pd.set_option("display.width", 200)
    print(f"{spec.name}: {spec.question}")
    print(f"{len(plan.configs)} configuration(s) x {seeds} seed(s) = {len(plan.trials)} trials on "
          f"{data.name} ({n_train} training images, {t.epochs} epochs)")
    if plan.collapsed:
        print(f"{plan.collapsed} grid point(s) collapsed: they differed only in factors their "
              "mixer does not use (e.g. kernel_size for attention)")
    print(rows.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    total = rows["est_train_s"].sum() * seeds
    slots = max(1, int((os.cpu_count() or 1) // spec.resources.cpu))
    slots = min(slots, spec.max_concurrent or slots, len(plan.trials))
    print(f"estimated training time: {total / 60:,.1f} trial-minutes in all, about "
          f"{total / 60 / slots:,.1f} minutes with {slots} trial(s) at a time on this machine "
          "(timed training steps of each configuration; evaluation and start-up add ~10-30%)")
    return 0


def _estimate_seconds(plan, n_train: int, t, cpus: float) -> list[float]:
    """Seconds of training per trial, from a few timed training steps of each configuration."""
    import torch

    from mixerlab.measure import benchmark_training
    from mixerlab.models import create_model

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpus)))  # as a trial will run
    try:
        out = []
        for cfg, recipe in zip(plan.configs, plan.recipes):
            batch = recipe.get("batch_size", t.batch_size)
            epochs = recipe.get("epochs", t.epochs)
            rate = benchmark_training(create_model(cfg), (cfg.in_chans, cfg.image_size, cfg.image_size),
                                      num_classes=cfg.num_classes, batch_size=batch, warmup=1,
                                      repeats=2, iters=1)["train_step_images_per_s"]
            out.append(n_train * epochs / rate)
        return out
    finally:
        torch.set_num_threads(threads)
