"""A spec's claims against its grid: every arm a gap names must be one the study makes.

Checked by :func:`~mixerlab.spec.load_spec`, so ``--dry-run`` refuses a bad claim with
one line (exit 2) before anything is written.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from mixerlab.config import DataConfig, ModelConfig, TrainConfig
from mixerlab.errors import ConfigError


def _fixed(spec) -> dict:
    """Every factor's value where the spec does not vary it (its sections over the defaults)."""
    out: dict = {}
    for cls, given in ((DataConfig, spec.dataset), (TrainConfig, spec.train), (ModelConfig, spec.model)):
        out.update({k: f.default for k, f in cls.model_fields.items() if f.default is not None})
        out.update(given)
    return out


def points(spec) -> list[dict]:
    """Every configuration the spec makes, as factor levels over its fixed values; a budget
    ladder's configuration once per budget (each budget is a row with its ``epochs``)."""
    base = _fixed(spec)
    if spec.configs is not None:
        made = [{**base, **c} for c in spec.configs]
    else:
        grid = spec.grid or {}
        made = [{**base, **dict(zip(grid, combo))} for combo in itertools.product(*grid.values())]
    ladder = spec.train.get("budgets")
    return [{**p, "epochs": b} for p in made for b in ladder] if ladder else made


def _same(x, y) -> bool:
    return x == y or str(x) == str(y)


def _matches(point: dict, at: dict) -> bool:
    return all(k in point and _same(point[k], v) for k, v in at.items())


def budgets(spec) -> list[int]:
    """The epoch counts the study trains for (a ladder's budgets, or its grid's epochs)."""
    return sorted({int(p["epochs"]) for p in points(spec)})


def check_claims(spec, path: Path) -> None:
    """Refuse a claim the study cannot decide (names, arms, budgets, seeds), one line each."""
    made = points(spec)
    study_budgets = budgets(spec)
    names = [c.name for c in spec.claims]
    seen = sorted({n for n in names if names.count(n) > 1})
    if seen:
        raise ConfigError(f"{path}: claims: the name {seen[0]!r} is given twice; name each claim once")
    for i, claim in enumerate(spec.claims):
        where = f"{path}: claims[{i}] ({claim.name})"
        for j, gap in enumerate(claim.gaps):
            for side in ("a", "b"):
                at = getattr(gap, side)
                if not any(_matches(p, at) for p in made):
                    raise ConfigError(f"{where}.gaps[{j}].{side}: the study makes no arm with "
                                      f"{_describe(at)}; {_levels(made, at)}")
        missing = [b for b in (claim.budgets or []) if b not in study_budgets]
        if missing and not claim.with_studies:
            raise ConfigError(f"{where}.budgets: the study trains for {_join(study_budgets)} epochs, not "
                              f"{_join(missing)}; give budgets from its epochs (grid.epochs, "
                              "train.epochs or train.budgets), or name the study that has them in 'with_studies'")
        if claim.seeds and not claim.with_studies:
            extra = sorted(set(claim.seeds) - set(spec.max_seed_list))
            if extra:
                raise ConfigError(f"{where}.seeds: seed {extra[0]} is not one of the study's seeds "
                                  f"({_join(spec.max_seed_list)}); give seeds the study runs")


def claim_budgets(spec, claim) -> list[int]:
    """The budgets a claim is judged over: its own, else the study's largest."""
    return claim.budgets or budgets(spec)[-1:]


def _describe(at: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in at.items())


def _join(values) -> str:
    return ", ".join(str(v) for v in values)


def _levels(made: list[dict], at: dict) -> str:
    """What the study does make for the factors the arm names (the fix to suggest)."""
    said = []
    for k in at:
        levels = sorted({str(p[k]) for p in made if k in p})
        said.append(f"its levels of {k} are {', '.join(levels)}" if levels else f"it does not set {k}")
    return "; ".join(said) + "; name an arm of the grid"
