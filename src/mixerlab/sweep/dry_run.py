"""``mixerlab sweep SPEC --dry-run``: the plan, one row per arm, and what it will cost.

Nothing is written and no Ray is started: the spec is parsed, the data set loaded and every
trial expanded and checked, as a real run would (:func:`~mixerlab.sweep.runner.prepare`),
and each arm's training is timed for a few batches (:mod:`mixerlab.sweep.estimate`).
"""

from __future__ import annotations

import pandas as pd

from mixerlab.config import ModelConfig
from mixerlab.models import relevant_factors
from mixerlab.sweep.capacity import cost
from mixerlab.sweep.resources import concurrent_slots, machine_resources
from mixerlab.sweep.spec import Spec
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


def dry_run(spec_path) -> int:
    """Print the plan of ``spec_path`` and its estimated cost on this machine."""
    import torch

    from mixerlab.sweep.estimate import estimate_trials
    from mixerlab.sweep.runner import prepare

    spec, data, plan = prepare(spec_path)
    res = spec.resources
    # Timing this CPU says nothing about the GPU node a GPU spec is meant for: no estimate.
    if res.gpu and not torch.cuda.is_available():
        per_arm, slots = None, 0
    else:
        per_arm = estimate_trials(plan, data, res.cpu, res.gpu)
        slots = concurrent_slots(machine_resources(res.gpu), res, spec.max_concurrent, len(plan.trials))
    print(render(spec, data, plan, per_arm, slots))
    return 0


def render(spec: Spec, data, plan: Plan, per_arm: list[float] | None, slots: int) -> str:
    """The dry run's text: what the study asks, its trials, one row per arm, its cost.
    ``per_arm``: estimated seconds of each arm for one seed (None: not timed here)."""
    seeds, t = len(spec.seed_list), spec.train_config()
    n_set = len(plan.nuisance)
    tuned = (f" x {n_set} nuisance setting(s) ({' x '.join(f'{k} {v}' for k, v in spec.nuisance.items())})"
             if spec.nuisance else "")
    lines = [f"{spec.name}: {spec.question}",
             f"{len(plan.arms)} configuration(s){tuned} x {seeds} seed(s) = {len(plan.trials)} trials on "
             f"{data.name} ({len(data.train_y)} training images, {t.epochs} epochs)"]
    if spec.match is not None:
        lines.append(f"capacity matched by {' and by '.join(spec.match.by_list)} within "
                     f"{spec.match.tolerance:.0%} of the reference {spec.match.reference or '(base model)'}")
    if plan.collapsed:
        lines.append(f"{plan.collapsed} grid point(s) collapsed: they differed only in factors their "
                     "mixer does not use (e.g. kernel_size for attention)")
    rows = pd.DataFrame(describe_plan(plan))
    rows[f"est_trial_s (x{n_set} settings)" if spec.nuisance else "est_trial_s"] = (
        float("nan") if per_arm is None else per_arm)
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        lines.append(rows.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    lines.append(_cost_line(spec, per_arm, seeds, slots))
    return "\n".join(lines)


def _cost_line(spec: Spec, per_arm: list[float] | None, seeds: int, slots: int) -> str:
    from mixerlab.sweep.estimate import wall_seconds

    if per_arm is None:
        return (f"estimated cost: none here: this spec asks for {spec.resources.gpu:g} GPU per trial "
                "and this machine has none; run this dry run on the GPU node to time it there")
    total = sum(per_arm) * seeds
    return (f"estimated cost: {total / 60:,.1f} trial-minutes in all, about "
            f"{wall_seconds(per_arm, seeds, slots) / 60:,.1f} minutes of wall time with {slots} "
            "trial(s) at a time on this machine (timed training and evaluation of each "
            "configuration; see mixerlab/sweep/estimate.py)")
