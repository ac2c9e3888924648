"""``mixerlab sweep SPEC --dry-run``: the plan, one row per arm, and what it will cost.

Nothing is written and no Ray is started: the spec is parsed, the data set loaded and every
trial expanded and checked, as a real run would (:func:`~mixerlab.sweep.runner.prepare`),
and each arm's training is timed for a few batches (:mod:`mixerlab.sweep.estimate`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mixerlab.config import ModelConfig
from mixerlab.models import relevant_factors
from mixerlab.spec import Spec
from mixerlab.sweep.capacity import cost
from mixerlab.sweep.execution_plan import assign
from mixerlab.sweep.resources import concurrent_slots, machine_resources
from mixerlab.sweep.trials import Plan

# The model factors the table shows (those an arm's mixer does not use are left empty).
SHOWN = ("layout", "stem", "patch_size", "kernel_size", "depth", "width", "heads", "mlp_ratio",
         "channel_mlp_ratio")


def describe_plan(plan: Plan) -> list[dict]:
    """One row per arm: its factors, parameters and MACs."""
    rows = []
    sizes = len({arm.model.image_size for arm in plan.arms}) > 1
    for arm in plan.arms:
        cfg = arm.model
        used = relevant_factors(cfg)
        row = {"variant": cfg.label}
        if arm.extra.get("match_by"):
            row["match_by"] = arm.extra["match_by"]
        if sizes:
            row["image_size"] = cfg.image_size
        row.update({k: getattr(cfg, k) if k in used else None for k in SHOWN
                    if k in ModelConfig.model_fields})
        row.update(arm.recipe)
        row["params"] = cost(cfg, "params")
        row["macs"] = cost(cfg, "macs")
        rows.append(row)
    return rows


def dry_run(spec_path, results_root: Path | None = None) -> int:
    """Print the plan of ``spec_path`` and its estimated cost on this machine, each
    configuration timed the way it would run (its study's ``execution.json`` under
    ``results_root`` where one exists, else measured now)."""
    from mixerlab.sweep.runner import prepare

    spec, data, plan = prepare(spec_path)
    res = spec.resources
    per_arm, per_later, ways, kw = estimate(spec, data, plan, results_root)
    slots = (concurrent_slots(machine_resources(res.gpu), res, spec.max_concurrent, len(plan.trials))
             if per_arm is not None else 0)
    bounds = _bounds(plan, kw) if kw else None
    print(render(spec, data, plan, per_arm, slots, per_later, bounds, _way_rows(plan, ways)))
    return 0


def estimate(spec: Spec, data, plan: Plan, results_root: Path | None):
    """(seconds per arm for one seed of the first round, of a later round, the ways, the
    loader timing): what the dry run and ``mixerlab plan`` print. All None where the spec asks
    for GPUs this machine lacks: timing this CPU says nothing about the GPU node."""
    import torch

    from mixerlab.sweep.estimate import estimate_trials

    res = spec.resources
    if res.gpu and not torch.cuda.is_available():
        return None, None, None, None
    later = _later_trials(spec, plan)
    ways = _ways(spec, plan, later, results_root)
    first = spec.max_seed_list[0]
    trials, later = assign(plan.trials, ways, first), assign(later, ways, first)
    kw = _loader_timing(plan, data, res.cpu, later)
    per_arm, per_later = estimate_trials(plan, data, res.cpu, res.gpu, extra=later,
                                         trials=trials, ways=ways, **kw)
    return per_arm, per_later, ways, kw


def _ways(spec: Spec, plan: Plan, later: list, results_root: Path | None) -> dict:
    """The ways the study's trials would run: those its folder recorded (a legacy folder's
    trials keep running as before), else each configuration's fastest, measured now."""
    from mixerlab.sweep import execution_plan
    from mixerlab.sweep.study import Study

    study = Study(results_root / spec.name) if results_root is not None else None
    if study is not None and study.path.is_dir():
        saved = execution_plan.load(study)
        if saved is None and study.records():
            return {"legacy": True, "ways": {}}
        if saved is not None and (saved["legacy"] or all(
                execution_plan.key(t) in saved["ways"] for t in [*plan.trials, *later])):
            return saved
    return {"legacy": False, "ways": execution_plan.measure(
        [*plan.trials, *later], spec.pins, execution_plan.trial_device(spec), spec.resources.cpu)}


def _way_rows(plan: Plan, ways: dict | None) -> list[dict] | None:
    """Per arm: the way it runs and its training speed over fp32 channels_last (the way every
    trial ran before ways were chosen); None when not timed here."""
    from mixerlab.sweep.execution_plan import key

    if ways is None:
        return None
    if ways["legacy"]:
        return [{"way": "legacy (fp32)", "speedup": 1.0} for _ in plan.arms]
    per = len(plan.trials) // max(1, len(plan.arms))
    rows = []
    for i in range(len(plan.arms)):
        w = ways["ways"][key(plan.trials[i * per])]
        base = w["rates"].get("fp32 channels_last")
        rows.append({"way": w["label"], "speedup": w["rates"][w["label"]] / base
                     if base and w["label"] in w["rates"] else float("nan")})
    return rows


def _loader_timing(plan: Plan, data, cpus: float, later) -> dict:
    """The streamed path's loader images/s by trial (``estimate_trials``'s keywords); {} in memory."""
    from mixerlab.data.path import is_streamed
    from mixerlab.sweep.loader_estimate import loader_rates

    if not is_streamed(data):
        return {}
    return {"loader": loader_rates([*plan.trials, *later], data, cpus), "rates_out": {}}


def _bounds(plan: Plan, kw: dict) -> list[dict]:
    """Per arm (its first trial): loader and model training images/s, and which bounds."""
    from mixerlab.sweep.loader_estimate import bound

    per = len(plan.trials) // max(1, len(plan.arms))
    rows = []
    for i in range(len(plan.arms)):
        tid = plan.trials[i * per].trial_id
        model, loader = kw["rates_out"][tid][0], kw["loader"][tid]
        rows.append({"loader_img_s": loader, "model_img_s": model, "bound": bound(model, loader)})
    return rows


def _later_trials(spec: Spec, plan: Plan) -> list:
    """One trial per arm of the rounds a driver plans later (stage 2, adaptive seeds), for
    timing: at the study's budget; the nuisance setting does not change the time."""
    from mixerlab.sweep.rounds import has_rounds

    if not has_rounds(spec) or not spec.tuning:
        return []  # adaptive without tuning: later seeds cost what the first ones did
    seed = spec.max_seed_list[0]
    return [plan.make(i, 0, seed, stage="measure") for i in range(len(plan.arms))]


def render(spec: Spec, data, plan: Plan, per_arm: list[float] | None, slots: int,
           per_later: list[float] | None = None, bounds: list[dict] | None = None,
           ways: list[dict] | None = None) -> str:
    """The dry run's text: what the study asks, its trials, one row per arm, its cost.
    ``per_arm``: estimated seconds of each arm for one seed of the first round (None: not
    timed here); ``per_later``: of one seed of each arm in a later round (stage 2);
    ``bounds``: the streamed path's loader and model images/s per arm, and which bounds;
    ``ways``: each arm's way to run and its speed-up (``_way_rows``)."""
    seeds = len(spec.tuning_seed_list or spec.seed_list)
    n_set = len(plan.nuisance)
    tuned = (f" x {n_set} nuisance setting(s) ({' x '.join(f'{k} {v}' for k, v in spec.nuisance.items())})"
             if spec.nuisance else "")
    from mixerlab.claims.check import budgets

    # The grid (or the list of configurations) may vary the budget: name every one of them.
    epochs = spec.tuning.epochs if spec.tuning and spec.tuning.epochs else ", ".join(map(str, budgets(spec)))
    first = "stage 1 (tuning): " if spec.tuning else "round 0: " if spec.adaptive else ""
    lines = [f"{spec.name}: {spec.question}",
             f"{first}{len(plan.arms)} configuration(s){tuned} x {seeds} seed(s) = {len(plan.trials)} "
             f"trials on {data.name} ({len(data.train_y)} training images, {epochs} epochs)"]
    lines += _ladder_lines(spec) + _round_lines(spec, plan) + _claim_lines(spec)
    if spec.match is not None:
        lines.append(f"capacity matched by {' and by '.join(spec.match.by_list)} within "
                     f"{spec.match.tolerance:.0%} of the reference {spec.match.reference or '(base model)'}")
    if plan.collapsed:
        lines.append(f"{plan.collapsed} grid point(s) collapsed: they differed only in factors their "
                     "mixer does not use (e.g. kernel_size for attention)")
    rows = pd.DataFrame(describe_plan(plan))
    if ways:
        rows = pd.concat([rows, pd.DataFrame(ways)], axis=1)
    if bounds:  # streamed only: in-memory tables keep their columns
        rows = pd.concat([rows, pd.DataFrame(bounds)], axis=1)
    rows[f"est_trial_s (x{n_set} settings)" if spec.nuisance else "est_trial_s"] = (
        float("nan") if per_arm is None else per_arm)
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        lines.append(rows.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    lines.append(_cost_line(spec, per_arm, seeds, slots, per_later))
    return "\n".join(lines)


def _ladder_lines(spec: Spec) -> list[str]:
    """A budget ladder: its budgets, where each branches off, and the epochs a trial trains."""
    t = spec.train_config()
    if not t.budgets:
        return []
    branches = ", ".join(f"{b} (from epoch {t.cooldown_start(b)})" for b in t.ladder[:-1])
    return [f"budget ladder: budgets {', '.join(map(str, t.ladder))} epochs; one trial per configuration "
            f"and seed trains to {t.epochs} epochs (its cool-down from epoch {t.cooldown_start(t.epochs)}, "
            f"{t.cooldown_shape})" + (f" and branches off a cool-down to {branches}" if branches else "")
            + f"; {t.epochs_trained} epochs trained, {len(t.ladder)} row(s) per trial"]


def _claim_lines(spec: Spec) -> list[str]:
    """The claims the study decides (registered in its folder when the sweep starts)."""
    from mixerlab.claims.check import claim_budgets

    out = []
    for c in spec.claims or []:
        budgets = claim_budgets(spec, c)
        out.append(f"claim {c.name} ({c.kind}{', primary' if c.primary else ''}): {len(c.gaps)} gap(s) "
                   f"({'; '.join(g.name for g in c.gaps)}), alpha {c.alpha:g}, ROPE +-{c.rope:g}, decided at "
                   f"{budgets[-1]} epochs" + (f", stable from {budgets[-2]} within +-{c.stability_band:g}"
                                              if len(budgets) > 1 else "")
                   + (f", also reading {', '.join(c.with_studies)}" if c.with_studies else ""))
    if out:
        out.append("the claims are registered in the study folder (claims.json) when the sweep starts; "
                   "size the seeds with `mixerlab plan SPEC --pilot RESULTS...`")
    return out


def _round_lines(spec: Spec, plan: Plan) -> list[str]:
    """What the driver adds later: stage 2, adaptive seeds."""
    out, a, n = [], spec.adaptive, len(plan.arms)
    if spec.tuning:
        seeds = f"{a.min} to {a.max} (adaptive)" if a else str(len(spec.seed_list))
        out.append(f"stage 2 (measured): {n} configuration(s) at the setting stage 1 chose x {seeds} "
                   f"seed(s) {spec.max_seed_list[0]}.., {spec.train_config().epochs} epochs; the tuning "
                   "trials' test accuracy enters no comparison")
    if a:
        out.append(f"adaptive seeds: {a.min} per configuration, then {a.step} more at a time for the "
                   f"comparisons still undecided, up to {a.max}; decided when the anytime-valid "
                   f"interval (alpha {a.alpha:g} across all comparisons) excludes 0 or lies within "
                   f"+-{a.rope:g} points")
    return out


def cost_range(spec: Spec, per_arm: list[float], seeds: int,
               per_later: list[float] | None = None) -> tuple[float, float]:
    """(least, most) trial-seconds of the study: equal unless later rounds are adaptive."""
    first = sum(per_arm) * seeds
    if not spec.tuning and not spec.adaptive:
        return first, first
    a = spec.adaptive
    if spec.tuning:  # stage 1 as planned, then stage 2's seeds at one setting per arm
        lo, hi = (a.min, a.max) if a else (len(spec.seed_list),) * 2
        return first + sum(per_later) * lo, first + sum(per_later) * hi
    # adaptive, no nuisance: round 0 is min seeds; at most every arm reaches max
    return first, sum(per_arm) * a.max


def _cost_line(spec: Spec, per_arm: list[float] | None, seeds: int, slots: int,
               per_later: list[float] | None = None) -> str:
    if per_arm is None:
        return (f"estimated cost: none here: this spec asks for {spec.resources.gpu:g} GPU per trial "
                "and this machine has none; run this dry run on the GPU node to time it there")
    least, most = cost_range(spec, per_arm, seeds, per_later)
    if most > least:
        return (f"estimated cost: {least / 60:,.1f} trial-minutes at least (every comparison decided at "
                f"{spec.adaptive.min} seeds), {most / 60:,.1f} at most (every configuration at "
                f"{spec.adaptive.max}); about {least / max(1, slots) / 60:,.1f} to "
                f"{most / max(1, slots) / 60:,.1f} minutes of wall time with {slots} trial(s) at a "
                "time on this machine (timed training and evaluation of each configuration; see "
                "mixerlab/sweep/estimate.py)")
    total = least
    return (f"estimated cost: {total / 60:,.1f} trial-minutes in all, about "
            f"{total / max(1, slots) / 60:,.1f} minutes of wall time with {slots} "
            "trial(s) at a time on this machine (timed training and evaluation of each "
            "configuration; see mixerlab/sweep/estimate.py)")
