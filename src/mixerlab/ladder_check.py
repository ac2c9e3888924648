"""A spec's budget ladder (``train.budgets``) against the rest of the spec.

Checked by :func:`~mixerlab.spec.load_spec` before any recipe is parsed, so ``--dry-run``
refuses a bad ladder with one line naming the fix (exit 2) before anything is written. The
ladder's own rule (schedule ``wsd``, budgets strictly increasing, each at least its warm-up
plus its cool-down) is :func:`mixerlab.config.ladder_problem`, read here at the spec's recipe
and at every recipe its grid, configurations and nuisance settings make; what this module
adds is what the rest of a spec must not do beside a ladder: vary ``epochs`` (the budgets are
the epochs), give the tuning stage a budget of its own, or let a scheduler stop trials by
epoch.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from mixerlab.config import TrainConfig, ladder_problem, parse
from mixerlab.errors import ConfigError
from mixerlab.factors import RECIPE_FACTORS


def check_ladder(spec, path: Path) -> None:
    """Refuse a ladder the study cannot run, one line each (nothing to check without one)."""
    budgets = spec.train.get("budgets")
    if budgets is None:
        return
    if not isinstance(budgets, list) or not budgets or not all(
            isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in budgets):
        raise ConfigError(f"{path}: train.budgets: give a list of epochs, smallest first, e.g. "
                          f"[3, 10, 30] (got {budgets!r})")
    varied = _varying_epochs(spec)
    if varied:
        raise ConfigError(f"{path}: {varied}: the ladder's budgets (train.budgets) are its epochs; "
                          f"remove {varied}, or remove train.budgets to run each budget separately")
    if spec.tuning and spec.tuning.epochs:
        raise ConfigError(f"{path}: tuning.epochs: a ladder's tuning trials run its budgets too; "
                          "remove tuning.epochs")
    if spec.scheduler.type != "none":
        raise ConfigError(f"{path}: scheduler: the '{spec.scheduler.type}' scheduler stops trials by "
                          "epoch, which a ladder's branches go back over; remove it or train.budgets")
    for recipe in _recipes(spec):
        base = parse(TrainConfig, {k: v for k, v in {**spec.train, **recipe}.items() if k != "budgets"},
                     f"{path}: train")
        problem = ladder_problem(base.schedule, budgets, base.warmup_epochs, base.cooldown_fraction,
                                 spec.train.get("epochs"))
        if problem:
            where = f" (at {', '.join(f'{k}={v}' for k, v in recipe.items())})" if recipe else ""
            raise ConfigError(f"{path}: {problem}{where}")


def _varying_epochs(spec) -> str | None:
    """Where the spec varies ``epochs`` besides the ladder (None where it does not)."""
    if "epochs" in (spec.grid or {}):
        return "grid.epochs"
    for i, c in enumerate(spec.configs or []):
        if "epochs" in c:
            return f"configs[{i}].epochs"
    return "nuisance.epochs" if "epochs" in (spec.nuisance or {}) else None


def _recipes(spec) -> list[dict]:
    """The spec's recipe ({}), and every recipe its grid, configurations and nuisance make."""
    grid = spec.grid or {}
    keys = [k for k in grid if k in RECIPE_FACTORS]
    out = [{}] + [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys)) if keys]
    out += [{k: v for k, v in c.items() if k in RECIPE_FACTORS} for c in spec.configs or []]
    return out + [{k: v} for k, values in (spec.nuisance or {}).items() for v in values]
