"""``mixerlab plan SPEC --pilot RESULTS...``: the seeds a study's claims need, and its cost.

Each claim's gaps are read from pilot studies (their compared trials: each arm at its chosen
setting); the seed-paired mean and sd give the seeds for 80% and 90% power of the verdict the
pilot's gap points to, at the claim's alpha per gap, by the exact noncentral t
(:mod:`mixerlab.analysis.power`), also at 1.5 x the pilot's sd (a 3-6 seed pilot estimates it
loosely), and the stability check's where a pilot has two budgets. The cost is the dry run's
estimate (:mod:`mixerlab.sweep.dry_run`), for the spec's seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

from mixerlab.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("plan", help="the seeds a spec's claims need, from pilot studies, and its cost")
    p.add_argument("spec", help="a spec with claims, e.g. ablations/pixels_rf_short.yaml")
    p.add_argument("--pilot", nargs="+", required=True, metavar="RESULTS",
                   help="pilot study folders whose trials give each gap's sd, e.g. results/pixels_rf")
    p.add_argument("--no-cost", action="store_true",
                   help="skip the cost (the dry run's timing of every arm, about 30 s on a CPU)")
    p.add_argument("--results", default="results", metavar="DIR",
                   help="parent folder of the study, for the ways its trials run (default: results)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mixerlab.analysis.power import pilot_trials, plan_claims
    from mixerlab.spec import load_spec

    spec = load_spec(args.spec)
    if not spec.claims:
        raise ConfigError(f"{args.spec}: states no claims, so there is nothing to size; add a "
                          "'claims:' section (see mixerlab/claims/claim.py) or give a spec that has one")
    gaps, stable, notes = plan_claims(spec, pilot_trials(args.pilot))
    print(render(args.spec, args.pilot, spec, gaps, stable, notes))
    if not args.no_cost:
        print(cost_line(args.spec, Path(args.results)))
    return 0


def _n(v: float) -> str:
    return ">100" if math.isinf(v) else "-" if math.isnan(v) else str(int(v))


def _table(df) -> str:
    import pandas as pd

    shown = df.copy()
    for c in shown.columns:
        if c.startswith("n "):
            shown[c] = shown[c].map(_n)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        return shown.to_string(index=False, float_format=lambda v: f"{v:.3g}")


def render(spec_path, pilots, spec, gaps, stable, notes) -> str:
    """The plan's text: what each claim asks, the gap and stability tables, the notes."""
    lines = [f"plan for {spec_path} ({spec.name}) from pilot(s) {', '.join(map(str, pilots))}"]
    for c in spec.claims:
        lines.append(f"  {c.name} ({c.kind}): ROPE +-{c.rope:g}, alpha {c.alpha:g} over {len(c.gaps)} "
                     f"gap(s) = {c.alpha / len(c.gaps):.4g} each (paired t at "
                     f"{100 * (1 - c.alpha / len(c.gaps)):.4g}%), stability band +-{c.stability_band:g}")
    lines += ["", "gaps (pilot mean and seed-paired sd; n: seeds for 80% / 90% power of the verdict "
              "the pilot's gap points to; '>100': more than 100):", _table(gaps)]
    if len(stable):
        lines += ["", "stability (the gap's change between budgets; 90% interval inside +-band):",
                  _table(stable)]
    for name, rows in gaps.groupby("claim", sort=False):
        need = [rows[c].max() for c in ("n 80%", "n 90%")]
        lines.append(f"claim {name}: every gap must reach its verdict, so it needs at least "
                     f"{_n(need[0])} seeds for 80% and {_n(need[1])} for 90% (its weakest gap's)")
    if notes:
        lines += ["", "notes:", *(f"- {n}" for n in notes)]
    return "\n".join(lines)


def cost_line(spec_path, results_root: Path) -> str:
    """The study's cost for the spec's seeds: the estimate ``mixerlab sweep SPEC --dry-run``
    prints, by the dry run's own steps (each arm timed the way it would run)."""
    from mixerlab.sweep.dry_run import cost_range, estimate
    from mixerlab.sweep.runner import prepare

    spec, data, plan = prepare(spec_path)
    per_arm, per_later, _, _ = estimate(spec, data, plan, results_root)
    if per_arm is None:
        return (f"cost: not timed here: the spec asks for {spec.resources.gpu:g} GPU per trial and this "
                "machine has none; run `mixerlab plan` on the GPU node for it")
    seeds = len(spec.tuning_seed_list or spec.seed_list)
    least, most = cost_range(spec, per_arm, seeds, per_later)
    per_seed = sum(per_later or per_arm) / 60
    span = f"{least / 60:,.1f}" + (f" to {most / 60:,.1f}" if most > least else "")
    return (f"cost (the dry run's estimate on this machine): {span} trial-minutes for the spec's "
            f"{len(spec.max_seed_list)} seed(s); each seed of every arm: {per_seed:,.1f} trial-minutes")
