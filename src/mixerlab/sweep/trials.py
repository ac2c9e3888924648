"""Expand a spec into its trials: the grid product (or list), capacity matching, nuisance
settings, seeds.

Factors that do not apply to a mixer (``kernel_size`` for attention) collapse: such
combinations become one trial instead of duplicated work, and :func:`expand` says how
many collapsed. A trial is one arm (scientific configuration) x one nuisance setting x one
seed; with several matchings (``match.by``) each matching has its own arms. The solver that
matches an arm's cost is :mod:`mixerlab.sweep.capacity`.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

from mixerlab.checkpoint import config_hash
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig, parse
from mixerlab.errors import ConfigError
from mixerlab.models import canonical, check_model
from mixerlab.spec import DATA_FACTORS, RECIPE_FACTORS, Spec
from mixerlab.sweep.capacity import cost, odd_shape, solve_width


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


@dataclass(frozen=True)
class Arm:
    """One scientific configuration of a plan: what its trials share but their nuisance
    setting and seed."""

    model: ModelConfig  # canonical, and solved when the spec matches capacity
    recipe: dict = field(default_factory=dict)  # the recipe factors of its grid point
    extra: dict = field(default_factory=dict)  # match_* columns, copied to each of its trials


@dataclass
class Plan:
    trials: list[Trial]  # ordered arm x nuisance setting x seed (stage 1's, with tuning)
    arms: list[Arm]  # unique scientific configurations, in the trials' order
    collapsed: int  # grid points merged because a factor did not apply
    nuisance: list[dict] = field(default_factory=lambda: [{}])  # the nuisance settings
    notes: list[str] = field(default_factory=list)  # warnings on the plan (odd matched shapes)
    # What later rounds need to make more trials of the same arms (sweep/rounds.py):
    # each trial's (arm, setting) indices, and the maker of a trial.
    origin: dict[str, tuple[int, int]] = field(default_factory=dict)
    maker: object = None  # (arm index, setting index, seed, epochs, extra) -> Trial

    def make(self, arm: int, setting: int, seed: int, epochs: int | None = None, **extra) -> Trial:
        """The trial of arm ``arm`` at nuisance setting ``setting`` and ``seed`` (``epochs``: a
        budget other than the study's, the tuning stage's), recorded in ``origin``; ``extra``
        columns (stage, round) are copied to its record."""
        trial = self.maker(arm, setting, seed, epochs, extra)
        self.origin[trial.trial_id] = (arm, setting)
        return trial

    def add(self, trials: list[Trial]) -> None:
        """Trials of a later round, made by :meth:`make`, joined to the plan."""
        known = {t.trial_id for t in self.trials}
        self.trials.extend(t for t in trials if t.trial_id not in known)


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


def _checked(values: dict, what: str) -> ModelConfig:
    """The ModelConfig of ``values``, checked to build; errors name ``what``."""
    cfg = parse(ModelConfig, values, what)
    try:
        check_model(cfg)
    except ConfigError as err:
        raise ConfigError(f"{what}: {err}") from None
    return cfg


def _arms(spec: Spec, base: ModelConfig, shape: dict, where: str) -> tuple[list[Arm], int]:
    """The unique arms of the grid (or list), and how many grid points collapsed into others."""
    points = _points(spec)
    arms, seen = [], set()
    for point in points:
        recipe = {k: v for k, v in point.items() if k in RECIPE_FACTORS}
        # A data factor (the input's side) reaches the model as its shape, and the trial's data
        # config, which makes the trial resize its input.
        sized = {k: v for k, v in point.items() if k in DATA_FACTORS}
        factors = {k: v for k, v in point.items() if k not in RECIPE_FACTORS and k not in DATA_FACTORS}
        cfg = canonical(_checked({**base.model_dump(), **factors, **shape, **sized},
                                 f"{where}: grid point {point}"))
        key = (cfg.model_dump_json(), tuple(sorted(recipe.items())))
        if key not in seen:
            seen.add(key)
            arms.append(Arm(cfg, recipe))
    return arms, len(points) - len(arms)


def _matched(spec: Spec, arms: list[Arm], ref: ModelConfig, where: str) -> tuple[list[Arm], list[str]]:
    """Every arm solved to the reference's cost, once per matching; and the odd shapes' notes."""
    out, notes = [], []
    for by in spec.match.by_list:
        target = cost(ref, by)
        for arm in arms:
            if not arm.model.is_skeleton:
                raise ConfigError(f"{where}: match: reference architecture '{arm.model.model}' has no "
                                  "width to solve; remove it from the grid or drop 'match'")
            try:
                solved, reached = solve_width(arm.model, target, by, spec.match.tolerance)
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
            model = canonical(solved)
            if note := odd_shape(model, by):
                notes.append(note)
            out.append(Arm(model, arm.recipe, {
                "match_by": by, f"match_target_{by}": target, f"match_{by}": reached,
                "match_width": solved.width, "match_channel_mlp_ratio": solved.channel_mlp_ratio}))
    return out, notes


def _maker(spec: Spec, arms: list[Arm], settings: list[dict], data: DataConfig, image_size: int,
           where: str):
    """The function that makes the trial of (arm, setting, seed), checked by :func:`_trials`."""
    several = spec.match is not None and len(spec.match.by_list) > 1

    def make(i: int, j: int, seed: int, epochs: int | None, extra: dict) -> Trial:
        arm, merged = arms[i], {**arms[i].recipe, **settings[j]}
        budget = {"epochs": epochs} if epochs else {}
        train = parse(TrainConfig, {**spec.train, **merged, **budget}, f"{where}: train with {merged}")
        cfg = arm.model
        sized = data if cfg.image_size == image_size else data.model_copy(update={"image_size": cfg.image_size})
        tc = TrialConfig(model=cfg, data=sized, train=train, seed=seed)
        return Trial(_trial_id(tc, arm.extra.get("match_by") if several else None), tc,
                     {**arm.extra, **extra})

    return make


def _trials(spec: Spec, plan: Plan) -> list[Trial]:
    """Every arm x nuisance setting x seed, in that order: the tuning stage's trials where the
    spec has one (its seeds, its budget), else the study's first seeds."""
    tuning = spec.tuning
    seeds = spec.tuning_seed_list if tuning else spec.seed_list
    epochs = tuning.epochs if tuning else None
    extra = {"stage": "tune"} if tuning else {"stage": "measure", "round": 0} if spec.adaptive else {}
    return [plan.make(i, j, seed, epochs, **extra)
            for i in range(len(plan.arms)) for j in range(len(plan.nuisance)) for seed in seeds]


def expand(spec: Spec, data_shape: tuple[int, int, int], where: str = "spec") -> Plan:
    """Every trial of ``spec`` for data of shape (image_size, in_chans, num_classes)."""
    image_size, in_chans, num_classes = data_shape
    shape = dict(image_size=image_size, in_chans=in_chans, num_classes=num_classes)
    base = parse(ModelConfig, {**spec.model, **shape}, f"{where}: model")
    data = spec.data_config()
    arms, collapsed = _arms(spec, base, shape, where)
    notes = []
    if spec.match is not None:
        ref = _checked({**base.model_dump(), **spec.match.reference, **shape}, f"{where}: match.reference")
        arms, notes = _matched(spec, arms, ref, where)
    settings = nuisance_settings(spec)
    plan = Plan([], arms, collapsed=collapsed, nuisance=settings, notes=notes,
                maker=_maker(spec, arms, settings, data, image_size, where))
    plan.trials = _trials(spec, plan)
    return plan
