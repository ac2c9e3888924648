"""Expand a spec into its trials: the grid product (or list), capacity matching, nuisance
settings, seeds.

Factors that do not apply to a mixer (``kernel_size`` for attention) collapse: such
combinations become one trial instead of duplicated work, and :func:`expand` says how
many collapsed. A trial is one scientific configuration x one nuisance setting x one seed
(x one matching, when ``match.by`` lists several).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from functools import lru_cache

from mixerlab.checkpoint import config_hash
from mixerlab.config import ModelConfig, TrainConfig, TrialConfig, parse
from mixerlab.errors import ConfigError
from mixerlab.measure import count_flops, count_params
from mixerlab.models import canonical, check_model, create_model, relevant_factors
from mixerlab.sweep.spec import DATA_FACTORS, RECIPE_FACTORS, Spec


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
    configs: list[ModelConfig]  # unique scientific configurations (model part), matched
    recipes: list[dict]  # and their recipe overrides, in the same order
    collapsed: int  # grid points merged because a factor did not apply
    extras: list[dict] = field(default_factory=list)  # match_* labels, in the same order
    nuisance: list[dict] = field(default_factory=lambda: [{}])  # the nuisance settings
    notes: list[str] = field(default_factory=list)  # warnings on the plan (odd matched shapes)


@lru_cache(maxsize=4096)
def _cost_json(cfg_json: str, by: str) -> int:
    cfg = ModelConfig.model_validate_json(cfg_json)
    model = create_model(cfg)
    if by == "params":
        return count_params(model)["params"]
    return count_flops(model, (cfg.in_chans, cfg.image_size, cfg.image_size))["macs"]


def _cost(cfg: ModelConfig, by: str) -> int:
    return _cost_json(cfg.model_dump_json(), by)


def _closest(cost_at, lo: int, target: int) -> int:
    """The smallest k >= lo whose cost reaches ``target``, or its predecessor, whichever is closer
    (cost grows with k). Bracket by doubling, so a huge model is never built."""
    hi = max(lo, 1)
    while cost_at(hi) < target:
        lo, hi = hi + 1, hi * 2
        if hi > 1 << 16:
            return -1
    while lo < hi:
        mid = (lo + hi) // 2
        if cost_at(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    return min({max(1, lo - 1), lo}, key=lambda k: abs(cost_at(k) - target))


def solve_width(cfg: ModelConfig, target: int, by: str, tolerance: float) -> tuple[ModelConfig, int]:
    """Match ``cfg``'s cost to ``target`` within ``tolerance``: first the width (a multiple of
    ``heads`` for attention), then, only where the width's steps are too coarse to land within
    the tolerance, the channel MLP's hidden width (``channel_mlp_ratio`` = hidden / width, so
    every stage of a pyramid gets an integer hidden width)."""
    step = cfg.heads if (cfg.model == "isotropic" and cfg.mixer == "attention") else 1
    width_at = lambda k: _cost(cfg.model_copy(update={"width": k * step}), by)  # noqa: E731
    k = _closest(width_at, 1, target)
    if k < 0:
        raise ConfigError(f"match: {cfg.label} cannot reach {target:,} {by} below width 65536; "
                          "lower the reference or remove this variant")
    solved, cost = cfg.model_copy(update={"width": k * step}), width_at(k)
    if abs(cost - target) > tolerance * target:
        # The width alone misses: try the two widths around the target, each with the channel
        # MLP's hidden width solved, and keep whichever lands closer. (Preferring, among those
        # within the tolerance, the ratio nearest the usual one would give more ordinary blocks,
        # but it changes the committed studies' plans; odd shapes are warned of instead.)
        ratio = cfg.channel_mlp_ratio or cfg.mlp_ratio
        best = (abs(cost - target), solved, cost)
        for kk in {max(1, k - 1), k, k + 1}:
            w = kk * step
            base = cfg.model_copy(update={"width": w})
            hidden_at = lambda h: _cost(base.model_copy(update={"channel_mlp_ratio": h / w}), by)  # noqa: E731,B023
            h = _closest(hidden_at, 1, target)
            if h > 0 and h / w <= 8 * ratio:  # keep the block recognisable: at most 8x the ratio
                c = hidden_at(h)
                if abs(c - target) < best[0]:
                    best = (abs(c - target), base.model_copy(update={"channel_mlp_ratio": h / w}), c)
        _, solved, cost = best
    if abs(cost - target) > tolerance * target:
        raise ConfigError(
            f"match: no width brings {cfg.label} (patch {cfg.patch_size}, {cfg.layout}) within "
            f"{tolerance:.0%} of {target:,} {by} (closest: width {solved.width}"
            + (f", channel_mlp_ratio {solved.channel_mlp_ratio:.3g}" if solved.channel_mlp_ratio else "")
            + f", {cost:,}); loosen match.tolerance or change the reference"
        )
    return solved, cost


# How far a matched variant's shape may drift from a usual block before the plan says so: the
# channel MLP's ratio within 2x of the spec's mlp_ratio either way, and attention heads of at
# least 4 channels. Every committed spec stays inside (ratios 1.4-2.8, head dims >= 7).
RATIO_DRIFT = 2.0
MIN_HEAD_DIM = 4


def odd_shape(cfg: ModelConfig, by: str) -> str | None:
    """Why a matched configuration is a very different block from the reference, or None.

    Matching lands every variant within the tolerance, but where the width's steps are coarse
    (attention, the pyramid's 4x last stage) the second knob can end far from a usual block,
    e.g. attention at width 4 with a channel MLP 13.5x wide. Such a variant is matched in cost
    yet not a fair instance of its mixer; the plan warns instead of refusing, since a study of
    extremes may want it."""
    why = []
    ratio = cfg.channel_mlp_ratio
    if ratio is not None and not cfg.mlp_ratio / RATIO_DRIFT <= ratio <= cfg.mlp_ratio * RATIO_DRIFT:
        why.append(f"channel_mlp_ratio {ratio:.3g} (mlp_ratio {cfg.mlp_ratio:g})")
    if cfg.mixer == "attention" and cfg.width // cfg.heads < MIN_HEAD_DIM:
        why.append(f"{cfg.heads} heads of {cfg.width // cfg.heads} channel(s)")
    if not why:
        return None
    return (f"match by {by}: {cfg.label} ({cfg.layout}, {cfg.stem} stem, patch {cfg.patch_size}) is "
            f"solved to width {cfg.width} with {' and '.join(why)}: equal in cost, but far from a "
            "usual block; compare it with care, or choose a reference nearer its size")


def _points(spec: Spec) -> list[dict]:
    if spec.configs is not None:
        return spec.configs
    grid = spec.grid or {}
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def nuisance_settings(spec: Spec) -> list[dict]:
    """Every combination of the nuisance values ([{}] when there are none)."""
    nz = spec.nuisance or {}
    return [dict(zip(nz, combo)) for combo in itertools.product(*nz.values())]


def _trial_id(tc: TrialConfig, by: str | None) -> str:
    # One matching: the config alone names the trial (ids stay as before). Several: the same
    # configuration can be the solution of both (the reference itself), and each matching
    # must hold its own row, so the matching is part of the id.
    h = config_hash(tc)
    return h if by is None else hashlib.sha1(f"{h}:{by}".encode()).hexdigest()[:12]


def group_id(trial: Trial) -> str:
    """The id the seeds of one configuration share: its hash without the seed (and with the
    matching, like the trial id), so experiment trackers group a trial's seeds together."""
    h = config_hash(trial.config, with_seed=False)
    by = trial.extra.get("match_by")
    return h if by is None else hashlib.sha1(f"{h}:{by}".encode()).hexdigest()[:12]


def expand(spec: Spec, data_shape: tuple[int, int, int], where: str = "spec") -> Plan:
    """Every trial of ``spec`` for data of shape (image_size, in_chans, num_classes)."""
    image_size, in_chans, num_classes = data_shape
    shape = dict(image_size=image_size, in_chans=in_chans, num_classes=num_classes)
    base = parse(ModelConfig, {**spec.model, **shape}, f"{where}: model")
    points = _points(spec)
    data = spec.data_config()
    configs, recipes, seen = [], [], set()
    for point in points:
        recipe = {k: v for k, v in point.items() if k in RECIPE_FACTORS}
        # A data factor (the input's side) reaches the model as its shape, and the trial's data
        # config, which makes the trial resize its input.
        sized = {k: v for k, v in point.items() if k in DATA_FACTORS}
        factors = {k: v for k, v in point.items() if k not in RECIPE_FACTORS and k not in DATA_FACTORS}
        cfg = parse(ModelConfig, {**base.model_dump(), **factors, **shape, **sized},
                    f"{where}: grid point {point}")
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
    collapsed = len(points) - len(configs)
    extras = [{} for _ in configs]
    notes = []
    if spec.match is not None:
        ref = parse(ModelConfig, {**base.model_dump(), **spec.match.reference, **shape}, f"{where}: match.reference")
        try:
            check_model(ref)
        except ConfigError as err:
            raise ConfigError(f"{where}: match.reference: {err}") from None
        matched, m_recipes, m_extras = [], [], []
        for by in spec.match.by_list:
            target = _cost(ref, by)
            for cfg, recipe in zip(configs, recipes):
                if cfg.model != "isotropic":
                    raise ConfigError(f"{where}: match: reference architecture '{cfg.model}' has no width "
                                      "to solve; remove it from the grid or drop 'match'")
                try:
                    solved, cost = solve_width(cfg, target, by, spec.match.tolerance)
                except ConfigError as err:
                    raise ConfigError(f"{where}: {err}") from None
                matched.append(canonical(solved))
                if note := odd_shape(matched[-1], by):
                    notes.append(note)
                m_recipes.append(recipe)
                m_extras.append({"match_by": by, f"match_target_{by}": target, f"match_{by}": cost,
                                 "match_width": solved.width,
                                 "match_channel_mlp_ratio": solved.channel_mlp_ratio})
        configs, recipes, extras = matched, m_recipes, m_extras
    several = spec.match is not None and len(spec.match.by_list) > 1
    settings = nuisance_settings(spec)
    trials = []
    for cfg, recipe, extra in zip(configs, recipes, extras):
        for setting in settings:
            merged = {**recipe, **setting}
            train = parse(TrainConfig, {**spec.train, **merged}, f"{where}: train with {merged}")
            sized = data if cfg.image_size == image_size else data.model_copy(update={"image_size": cfg.image_size})
            for seed in spec.seed_list:
                tc = TrialConfig(model=cfg, data=sized, train=train, seed=seed)
                trials.append(Trial(_trial_id(tc, extra.get("match_by") if several else None), tc, extra))
    return Plan(trials, configs, recipes, collapsed=collapsed, extras=extras, nuisance=settings, notes=notes)


def describe_plan(plan: Plan) -> list[dict]:
    """One row per scientific configuration: its factors, parameters and MACs (for --dry-run)."""
    rows = []
    sizes = len({cfg.image_size for cfg in plan.configs}) > 1
    for cfg, recipe, extra in zip(plan.configs, plan.recipes, plan.extras or [{}] * len(plan.configs)):
        used = relevant_factors(cfg)
        row = {"variant": cfg.label}
        if extra.get("match_by"):
            row["match_by"] = extra["match_by"]
        if sizes:
            row["image_size"] = cfg.image_size
        row.update({k: getattr(cfg, k) if k in used else None for k in
                    ("layout", "stem", "patch_size", "kernel_size", "depth", "width", "heads",
                     "mlp_ratio", "channel_mlp_ratio") if k in ModelConfig.model_fields})
        row.update(recipe)
        row["params"] = _cost(cfg, "params")
        row["macs"] = _cost(cfg, "macs")
        rows.append(row)
    return rows
