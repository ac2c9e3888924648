"""Expand a spec into its trials: the grid product (or list), capacity matching, seeds.

Factors that do not apply to a mixer (``kernel_size`` for attention) collapse: such
combinations become one trial instead of duplicated work, and :func:`expand` says how
many collapsed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from mixerlab.checkpoint import config_hash
from mixerlab.config import ModelConfig, TrainConfig, TrialConfig, parse
from mixerlab.errors import ConfigError
from mixerlab.measure import count_flops, count_params
from mixerlab.models import canonical, check_model, create_model, relevant_factors
from mixerlab.sweep.spec import RECIPE_FACTORS, Spec


@dataclass
class Trial:
    trial_id: str
    config: TrialConfig
    extra: dict = field(default_factory=dict)  # match_* columns

    def to_dict(self) -> dict:
        return {"trial_id": self.trial_id, "config": self.config.model_dump(mode="json"),
                "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> Trial:
        return cls(d["trial_id"], TrialConfig.model_validate(d["config"]), d.get("extra", {}))


@dataclass
class Plan:
    trials: list[Trial]
    configs: list[ModelConfig]  # unique configurations (model part)
    recipes: list[dict]  # and their recipe overrides, in the same order
    collapsed: int  # grid points merged because a factor did not apply


def _cost(cfg: ModelConfig, by: str) -> int:
    model = create_model(cfg)
    if by == "params":
        return count_params(model)["params"]
    return count_flops(model, (cfg.in_chans, cfg.image_size, cfg.image_size))["macs"]


def solve_width(cfg: ModelConfig, target: int, by: str, tolerance: float) -> tuple[ModelConfig, int]:
    """Smallest-error width (a multiple of ``heads`` for attention) by bisection on cost."""
    step = cfg.heads if (cfg.model == "isotropic" and cfg.mixer == "attention") else 1
    at = lambda k: _cost(cfg.model_copy(update={"width": k * step}), by)  # noqa: E731
    lo, hi = 1, max(1, cfg.width // step)
    while at(hi) < target:  # grow the bracket by doubling: never builds a huge model
        lo, hi = hi + 1, hi * 2
        if hi * step > 16384:
            raise ConfigError(f"match: {cfg.label} cannot reach {target:,} {by} below width 16384; "
                              "lower the reference or remove this variant")
    while lo < hi:  # cost grows with width: find the first k with cost >= target
        mid = (lo + hi) // 2
        if at(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    best = min({max(1, lo - 1), lo}, key=lambda k: abs(at(k) - target))
    solved, cost = cfg.model_copy(update={"width": best * step}), at(best)
    if abs(cost - target) > tolerance * target:
        raise ConfigError(
            f"match: no width brings {cfg.label} (patch {cfg.patch_size}) within {tolerance:.0%} of "
            f"{target:,} {by} (closest: width {best * step}, {cost:,}); loosen match.tolerance or "
            "change the reference"
        )
    return solved, cost


def expand(spec: Spec, data_shape: tuple[int, int, int], where: str = "spec") -> Plan:
    """Every trial of ``spec`` for data of shape (image_size, in_chans, num_classes)."""
    image_size, in_chans, num_classes = data_shape
    shape = dict(image_size=image_size, in_chans=in_chans, num_classes=num_classes)
    base = parse(ModelConfig, {**spec.model, **shape}, f"{where}: model")
    if spec.configs is not None:
        points = spec.configs
    else:
        grid = spec.grid or {}
        points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    configs, recipes, seen = [], [], set()
    for point in points:
        recipe = {k: v for k, v in point.items() if k in RECIPE_FACTORS}
        factors = {k: v for k, v in point.items() if k not in RECIPE_FACTORS}
        cfg = parse(ModelConfig, {**base.model_dump(), **factors, **shape}, f"{where}: grid point {point}")
        try:
            check_model(cfg)
        except ConfigError as err:
            raise ConfigError(f"{where}: grid point {point}: {err}") from None
        cfg = canonical(cfg)
        key = (cfg.model_dump_json(), tuple(sorted(recipe.items())))
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
            recipes.append(recipe)
    extras = [{} for _ in configs]
    if spec.match is not None:
        ref = parse(ModelConfig, {**base.model_dump(), **spec.match.reference, **shape}, f"{where}: match.reference")
        check_model(ref)
        target = _cost(ref, spec.match.by)
        for i, cfg in enumerate(configs):
            if cfg.model != "isotropic":
                raise ConfigError(f"{where}: match: reference architecture '{cfg.model}' has no width "
                                  "to solve; remove it from the grid or drop 'match'")
            configs[i], cost = solve_width(cfg, target, spec.match.by, spec.match.tolerance)
            extras[i] = {"match_by": spec.match.by, f"match_target_{spec.match.by}": target,
                         f"match_{spec.match.by}": cost}
    data = spec.data_config()
    trials = []
    for cfg, recipe, extra in zip(configs, recipes, extras):
        train = parse(TrainConfig, {**spec.train, **recipe}, f"{where}: train with {recipe}")
        for seed in spec.seed_list:
            tc = TrialConfig(model=cfg, data=data, train=train, seed=seed)
            trials.append(Trial(config_hash(tc), tc, extra))
    return Plan(trials, configs, recipes, collapsed=len(points) - len(configs))


def describe_plan(plan: Plan) -> list[dict]:
    """One row per unique configuration: its factors, parameters and MACs (for --dry-run)."""
    rows = []
    for cfg, recipe in zip(plan.configs, plan.recipes):
        model = create_model(cfg)
        used = relevant_factors(cfg)
        rows.append({"variant": cfg.label, **{k: getattr(cfg, k) if k in used else None for k in
                     ("patch_size", "kernel_size", "depth", "width", "heads", "mlp_ratio")},
                     **recipe,
                     **count_params(model),
                     **count_flops(model, (cfg.in_chans, cfg.image_size, cfg.image_size))})
    return rows
