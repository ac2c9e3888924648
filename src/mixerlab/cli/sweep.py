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
    return 0 if "pending" not in counts and "running" not in counts else 1


def dry_run(spec, data, plan, spec_path) -> int:
    import pandas as pd

    from mixerlab.sweep.trials import describe_plan

    rows = pd.DataFrame(describe_plan(plan))
    seeds = len(spec.seed_list)
    t = spec.train_config()
    n_train = len(data.train_y)
    rows["train_GMACs"] = rows["macs"] * 3 * n_train * t.epochs / 1e9  # fwd + bwd ~ 3x fwd
    pd.set_option("display.width", 200)
    print(f"{spec.name}: {spec.question}")
    print(f"{len(plan.configs)} configuration(s) x {seeds} seed(s) = {len(plan.trials)} trials on "
          f"{data.name} ({n_train} training images, {t.epochs} epochs)")
    if plan.collapsed:
        print(f"{plan.collapsed} grid point(s) collapsed: they differed only in factors their "
              "mixer does not use (e.g. kernel_size for attention)")
    print(rows.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    total = rows["train_GMACs"].sum() * seeds
    secs = _estimate_seconds(plan, total)
    print(f"estimated training compute: {total:,.2f} GMACs in all, about {secs / 60:,.1f} "
          "CPU-core-minutes on this machine (from a short benchmark of the first configuration; "
          "evaluation and start-up not included)")
    return 0


def _estimate_seconds(plan, total_gmacs: float) -> float:
    """Calibrate GMAC/s with a short training-step benchmark of the first configuration."""
    import torch

    from mixerlab.measure import benchmark_training, count_flops
    from mixerlab.models import create_model

    cfg = plan.configs[0]
    model = create_model(cfg)
    shape = (cfg.in_chans, cfg.image_size, cfg.image_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rate = benchmark_training(model, shape, num_classes=cfg.num_classes, batch_size=64,
                                  warmup=1, repeats=3, iters=1)["train_step_images_per_s"]
    finally:
        torch.set_num_threads(threads)
    gmacs_per_s = rate * 3 * count_flops(model, shape)["macs"] / 1e9
    return total_gmacs / max(gmacs_per_s, 1e-9)
