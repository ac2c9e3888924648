"""A study's comparison, computed once: which trials are compared, at which settings, within
which strata, by which tests. The report, the plots and the answer script all read it.

One owner for each decision in it:

- which trials are compared: every trial, or with ``nuisance:`` each arm at the setting
  :func:`~mixerlab.analysis.nuisance.choose_nuisance` chose for it on validation; with a
  tuning stage (``tuning:``), the choice is made on the stage-1 trials and only the stage-2
  trials (the study's seeds at the chosen settings) are compared: a tuning trial's test
  accuracy never enters a comparison;
- which comparisons are separate: each capacity matching (``match_by``) is its own stratum;
- within a matching, what is compared with what (:class:`Stratum`): mixers within a layout or
  patch size when nothing else varies, else every factor one at a time at fixed levels of the
  others, so no comparison pools arms over a factor it does not name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from mixerlab.analysis.aggregate import aggregate, design_factors, factors_varied
from mixerlab.analysis.nuisance import (
    choose_nuisance,
    edge_warnings,
    isolation_table,
    nuisance_grid,
    scientific_factors,
)
from mixerlab.analysis.stats import (
    anova,
    factor_pair_groups,
    factor_pairs,
    holm,
    pair_groups,
    pairwise,
)

# The structural factors a mixer is compared within, in order: where the layout varies, the
# patch size usually follows from it (a pyramid's stem against isotropic patches).
STRATA = ("layout", "patch_size")


def stratum_factor(factors) -> str | None:
    """The factor the mixers are compared within: the first of STRATA that is a design factor."""
    return next((f for f in STRATA if f in factors), None)


def table_keys(df: pd.DataFrame, exclude=()) -> list[str]:
    """The varied factors, variant and the strata first, without ``exclude`` (nuisance, strata)."""
    factors = [f for f in factors_varied(df) if f not in exclude]
    first = ("variant", *STRATA)
    keys = [f for f in first if f in factors] + [f for f in factors if f not in first]
    return keys or ["variant"]


@dataclass
class Stratum:
    """The comparable trials of one capacity matching (``by``; None when there is one), and
    every table the report draws from them."""

    by: str | None
    df: pd.DataFrame
    keys: list[str]
    shown: tuple[str, ...] = ()  # columns shown beside the keys (the nuisance settings)

    @cached_property
    def design(self) -> list[str]:
        return design_factors(self.df, self.keys)  # solved widths etc. are not factors of their own

    @property
    def one_at_a_time(self) -> bool:
        """Mixers within a stratum is the right comparison only when nothing else varies."""
        d = self.design
        return "variant" not in d or any(f not in ("variant", *STRATA) for f in d)

    @property
    def within(self) -> str | None:
        return stratum_factor(self.design)

    @cached_property
    def agg(self) -> pd.DataFrame:
        return aggregate(self.df, by=list(self.keys) + [c for c in self.shown if c in self.df])

    @cached_property
    def effects(self) -> pd.DataFrame:
        return anova(self.df, self.design)

    @cached_property
    def pairs(self) -> pd.DataFrame:
        if "variant" not in self.design or self.one_at_a_time:
            return pd.DataFrame()
        return pairwise(self.df, group="variant", within=self.within)

    @cached_property
    def factor_pairs(self) -> pd.DataFrame:
        return factor_pairs(self.df, self.design) if self.one_at_a_time else pd.DataFrame()

    @cached_property
    def _layout_arms(self) -> pd.DataFrame | None:
        """The trials labelled by layout, with the factors only a pyramid has (``downsample``)
        in the label ("pyramid (downsample merge2)"), so no layout comparison pools them;
        None where the layout does not vary."""
        if not {"variant", "layout"} <= set(self.design):
            return None
        d = self.df
        # A factor only some layouts read (the layout registry's ``uses``) and varied there.
        nested = [f for f in self.design if f not in ("variant", "layout")
                  and _nested_in_layout(d, f)]
        label = d["layout"].astype(str)
        for f in nested:
            label = label.where(d[f].isna(), label + f" ({f} " + d[f].astype(str) + ")")
        return d.assign(layout_arm=label.values)

    @staticmethod
    def _one_isotropic(a, b) -> bool:
        """A layout comparison: isotropic against one pyramid (pyramids against each other
        are the nested factor's own comparison, in ``factor_pairs``)."""
        return str(a).startswith("isotropic") != str(b).startswith("isotropic") or not (
            "(" in str(a) or "(" in str(b))

    @cached_property
    def layouts(self) -> pd.DataFrame:
        """Layout studies ask the other way round too: for each mixer, one layout vs the other."""
        d = self._layout_arms
        if d is None:
            return pd.DataFrame()
        out = pairwise(d, group="layout_arm", within="variant")
        if not len(out):
            return out
        out = out[[self._one_isotropic(a, b) for a, b in zip(out["a"], out["b"])]].reset_index(drop=True)
        out["p_holm"] = holm(out["p"])
        out["significant"] = out["p_holm"] < 0.05
        return out

    @property
    def n_seeds(self) -> int:
        return int(self.df.groupby(self.keys, dropna=False).size().max()) if len(self.df) else 0

    def pair_groups(self):
        """Every pair of arms the report tests (``pairs``, ``factor_pairs``, ``layouts``), as
        (what is compared, a, b, arm a's trials, arm b's trials): what adaptive seeding decides
        (analysis/decisions.py), so it adds seeds to the comparisons the report makes."""
        if "variant" in self.design and not self.one_at_a_time:
            w = self.within
            for level, a, b, ta, tb in pair_groups(self.df, "variant", w):
                yield ("mixer" if level is None else f"mixer at {w}={level}"), a, b, ta, tb
        if self.one_at_a_time:
            for f, at, a, b, ta, tb in factor_pair_groups(self.df, self.design):
                yield f"{f} at {at}", a, b, ta, tb
        if self._layout_arms is not None:
            for level, a, b, ta, tb in pair_groups(self._layout_arms, "layout_arm", "variant"):
                if self._one_isotropic(a, b):
                    yield f"layout of {level}", a, b, ta, tb


@dataclass
class Comparison:
    """What a study compares. ``trials``: every trial; ``chosen``: the compared ones (each arm
    at its chosen nuisance setting; all trials when nothing is tuned per arm)."""

    trials: pd.DataFrame
    nuisance: list[str] = field(default_factory=list)
    grid: dict = field(default_factory=dict)  # values tried per nuisance factor
    scientific: list[str] = field(default_factory=list)
    chosen: pd.DataFrame | None = None
    choices: pd.DataFrame | None = None  # one row per arm (choose_nuisance's ``choices``)
    tuning: pd.DataFrame | None = None  # the stage-1 trials that chose (two-stage tuning)

    @property
    def tuning_chosen(self) -> pd.DataFrame | None:
        """The tuning stage's trials at the setting each arm chose (a smaller training budget
        of the compared arms); None without a tuning stage, or before stage 2 has run."""
        if self.tuning is None:
            return None
        keys = self.scientific + self.nuisance
        return self.tuning.merge(self.choices[keys].drop_duplicates(), on=keys, how="inner")

    @property
    def tuned(self) -> pd.DataFrame:
        """The trials the choice was made on: the tuning stage's, else every trial."""
        return self.tuning if self.tuning is not None else self.trials

    @cached_property
    def isolation(self) -> pd.DataFrame | None:
        if not self.nuisance:
            return None
        return isolation_table(self.tuned, self.choices, self.nuisance, self.scientific, self.grid)

    @cached_property
    def edges(self) -> list[str]:
        return edge_warnings(self.choices, self.grid) if self.nuisance else []

    @cached_property
    def strata(self) -> list[Stratum]:
        """One per capacity matching, each with its own keys (the matching is not one of them)."""
        df = self.chosen
        if "match_by" in factors_varied(df):
            parts = [(by, df[df["match_by"] == by]) for by in sorted(df["match_by"].dropna().unique())]
        else:
            parts = [(None, df)]
        return [Stratum(by, sub, table_keys(sub, exclude=(*self.nuisance, "match_by")), tuple(self.nuisance))
                for by, sub in parts]

    @property
    def keys(self) -> list[str]:
        """The factors of the compared trials (matching included), nuisance excluded."""
        return table_keys(self.chosen, exclude=self.nuisance)

    @property
    def n_seeds(self) -> int:
        return max(s.n_seeds for s in self.strata)

    def frames(self, ok_only: bool = True) -> list[pd.DataFrame]:
        """The compared trials, one frame per matching, study named ``study (matched by X)``
        where there are several (what the answer script compares across studies)."""
        out = []
        for s in self.strata:
            sub = s.df[s.df["status"] == "ok"] if ok_only else s.df
            if s.by is not None:
                sub = sub.assign(study=f"{sub['study'].iloc[0]} (matched by {s.by})")
            out.append(sub)
        return out


def stages(df: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(tuning trials, measured trials) of a two-stage study; (None, df) for any other, and
    for one whose second stage has not run yet (its tuning trials are all there is)."""
    if "stage" not in df.columns or not (df["stage"] == "tune").any():
        return None, df
    tune, measured = df[df["stage"] == "tune"], df[df["stage"] != "tune"]
    return (tune, measured) if len(measured) else (None, df)


def compare(df: pd.DataFrame, nuisance=(), grid: dict | None = None) -> Comparison:
    """The comparison of one study's trial table. ``nuisance``: the recipe factors tuned per
    arm (the spec's ``nuisance:`` keys); ``grid``: the values the spec lists for them."""
    nuisance = list(nuisance)
    if not nuisance:
        return Comparison(trials=df, chosen=df)
    tuning, measured = stages(df)
    scientific = scientific_factors(measured, nuisance)
    chosen = choose_nuisance(tuning if tuning is not None else df, nuisance, scientific)
    choices = chosen.attrs["choices"]
    if tuning is not None:
        # Stage 2 ran at the settings stage 1 chose; a measured trial at any other setting
        # (the tuning stage extended after it ran) is not compared.
        keys = scientific + nuisance
        chosen = measured.merge(choices[keys].drop_duplicates(), on=keys, how="inner")
    chosen = chosen.copy()
    chosen.attrs = {}  # attrs holding DataFrames break pd.concat in the plotting code
    return Comparison(trials=df, nuisance=nuisance, grid=nuisance_grid(df, nuisance, grid),
                      scientific=scientific, chosen=chosen, choices=choices, tuning=tuning)


def _nested_in_layout(d: pd.DataFrame, factor: str) -> bool:
    """Whether ``factor`` is read only by some layouts (their registry entry's ``uses``) and
    varies among their trials: then a layout comparison must not pool its levels."""
    from mixerlab.models.layouts import layout_uses

    reads = d["layout"].map(lambda name: factor in layout_uses(str(name))).astype(bool)
    return bool(reads.any()) and d.loc[~reads, factor].isna().all() and d.loc[reads, factor].nunique() > 1
