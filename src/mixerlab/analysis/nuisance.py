"""Nuisance factors: compare every arm at its own best recipe, chosen on validation accuracy.

A study may re-tune recipe values (``lr``, ``weight_decay``, ...) for every scientific
configuration ("arm"): the spec's ``nuisance:``. Comparing arms at one shared recipe would
favour the arm that recipe happens to suit; the Deep Learning Tuning Playbook (Godbole et al.,
2023, "scientific, nuisance and fixed hyperparameters") instead optimises the nuisance factors
separately for each arm and compares the arms at their best.

The choice uses the mean over seeds of the **final-epoch** ``val_acc``: the test accuracy is
measured on the final model, so the choice must rank the same model (``best_val_acc`` would
rank an earlier checkpoint that is never tested). The test set is never used to choose: the
choice is made on a copy with every ``test_*`` column dropped, and only then are the chosen
trials taken, with all their columns, from the original table.

ASHA: a setting is eligible only if every one of its trials finished ``ok``. A setting that
ASHA stopped on some seeds would be compared on fewer (and the luckier) seeds, which biases
it upward. When no setting of an arm is fully ok, the setting with the most ok seeds is taken
(``fallback``); an arm with no ok trial at all is ``all_stopped``: it has no test accuracy.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from mixerlab.analysis.aggregate import SOLVED, aggregate, factors_varied, levels

# Short names for the arm labels in tables and warnings ("conv (patch 4)").
SHORT = {"patch_size": "patch", "kernel_size": "kernel", "match_by": "matched by",
         "channel_mlp_ratio": "MLP ratio"}


def scientific_factors(df: pd.DataFrame, nuisance, scientific=None) -> list[str]:
    """The columns that define an arm: ``scientific`` as given, else the varied factors that
    are not nuisance ones (``match_by`` included: each matching is its own arm)."""
    missing = [n for n in nuisance if n not in df.columns]
    if missing:
        raise ValueError(f"nuisance factor(s) {', '.join(missing)} not in the trial table")
    if scientific is None:
        return [f for f in factors_varied(df) if f not in nuisance]
    both = set(scientific) & set(nuisance)
    if both:
        raise ValueError(f"{', '.join(sorted(both))}: both scientific and nuisance; a factor is "
                         "either compared or tuned per arm")
    return list(scientific)


def _value(v) -> str:
    if isinstance(v, float) and np.isnan(v):
        return "none"
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return f"{v:g}"
    return str(v)


def arm_label(row, scientific) -> str:
    """'conv (patch 4)': the variant, then the other scientific factors in brackets. A field
    capacity matching solves only for some arms (the channel MLP's ratio) is named only where
    it was solved: elsewhere it is missing, which says nothing about the arm."""
    first = [k for k in scientific if k == "variant"]
    rest = [f"{SHORT.get(k, k)} {_value(row[k])}" for k in scientific
            if k != "variant" and not (k in SOLVED and pd.isna(row[k]))]
    head = _value(row[first[0]]) if first else ""
    if not rest:
        return head or "all trials"
    return f"{head} ({', '.join(rest)})" if head else ", ".join(rest)


def setting_label(row, nuisance) -> str:
    """'lr=0.005, weight_decay=0.05'."""
    return ", ".join(f"{k}={_value(row[k])}" for k in nuisance)


def _settings(blind: pd.DataFrame, nuisance, scientific, metric) -> pd.DataFrame:
    """One row per arm x setting: n trials, n ok, mean ``metric`` over the ok seeds (and over
    every trial that has it, used only when no trial of the arm is ok)."""
    rows = []
    for key, g in blind.groupby(scientific + nuisance, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ok = g[g["status"] == "ok"]
        rows.append({**dict(zip(scientific + nuisance, key)), "n_trials": len(g), "n_ok": len(ok),
                     f"{metric}_mean": pd.to_numeric(ok[metric], errors="coerce").mean(),
                     f"{metric}_any_mean": pd.to_numeric(g[metric], errors="coerce").mean(),
                     "_index": list(g.index)})
    out = pd.DataFrame(rows)
    out["eligible"] = out["n_ok"] == out["n_trials"]
    return out


def choose_nuisance(df: pd.DataFrame, nuisance, scientific=None, metric: str = "val_acc") -> pd.DataFrame:
    """The trials of each arm's chosen nuisance setting (all columns, test accuracy included).

    ``nuisance``: the recipe factors tuned per arm (a list, or the spec's ``nuisance:`` dict).
    ``scientific``: the columns that define an arm; by default the varied factors minus the
    nuisance ones. The choice per arm is the eligible setting with the highest mean ``metric``
    over its seeds (ties: the first setting in sorted order).

    ``attrs``: ``nuisance``, ``scientific`` and ``choices``, one row per arm: ``arm``, its
    scientific and chosen nuisance values, ``setting``, ``<metric>_mean``, ``n_ok``/``n_trials``
    of the chosen setting, ``n_eligible``/``n_settings``, ``fallback`` and ``all_stopped``.
    pandas compares ``attrs`` when concatenating and cannot compare DataFrames: take
    ``choices`` out and clear ``attrs`` before ``pd.concat``.
    """
    nuisance = list(nuisance)
    if metric.startswith("test_"):
        raise ValueError(f"choose_nuisance: metric {metric!r} is a test metric; choose on validation")
    scientific = scientific_factors(df, nuisance, scientific)
    # Blind the choice: nothing below can read a test column.
    blind = df.drop(columns=[c for c in df.columns if c.startswith("test_")])
    table = _settings(blind, nuisance, scientific, metric)
    picks, chosen_index = [], []
    for _, arm in table.groupby(scientific, dropna=False, sort=True) if scientific else [(None, table)]:
        eligible = arm[arm["eligible"]]
        if len(eligible):
            best = eligible.sort_values(f"{metric}_mean", ascending=False, kind="stable").iloc[0]
        else:  # No fully ok setting: the most ok seeds, then the best mean over them.
            score = arm[f"{metric}_mean"].where(arm["n_ok"] > 0, arm[f"{metric}_any_mean"])
            order = arm.assign(_score=score).sort_values(["n_ok", "_score"], ascending=False, kind="stable")
            best = order.iloc[0]
        all_stopped = bool(arm["n_ok"].sum() == 0)
        picks.append({"arm": arm_label(best, scientific), **{k: best[k] for k in scientific + nuisance},
                      "setting": setting_label(best, nuisance),
                      f"{metric}_mean": best[f"{metric}_mean"] if not all_stopped else best[f"{metric}_any_mean"],
                      "n_ok": int(best["n_ok"]), "n_trials": int(best["n_trials"]),
                      "n_eligible": int(len(eligible)), "n_settings": int(len(arm)),
                      "fallback": not len(eligible), "all_stopped": all_stopped})
        chosen_index += best["_index"]
    out = df.loc[sorted(chosen_index)].copy()
    out.attrs = {**{k: v for k, v in df.attrs.items() if not isinstance(v, pd.DataFrame)},
                 "nuisance": nuisance, "scientific": scientific, "choices": pd.DataFrame(picks)}
    return out


def nuisance_grid(df: pd.DataFrame, nuisance, spec_values: dict | None = None) -> dict:
    """The values tried per nuisance factor: the spec's lists when given, else those present."""
    spec_values = spec_values or {}
    return {k: list(spec_values[k]) if k in spec_values else levels(df[k])
            for k in nuisance}


def edge_warnings(choices: pd.DataFrame, grid: dict) -> list[str]:
    """One line per arm and numeric nuisance factor whose chosen value is the smallest or the
    largest tried: the optimum may lie outside the range, so the range should be widened."""
    out = []
    for _, row in choices.iterrows():
        if row.get("all_stopped", False):
            continue  # nothing finished: no evidence of where the optimum is
        for k, values in grid.items():
            # YAML reads 1e-3 (no dot) as a string: coerce, and skip factors that are not numbers.
            nums = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
            v = pd.to_numeric(pd.Series([row.get(k)], dtype=object), errors="coerce").iloc[0]
            if len(nums) < 2 or nums.isna().any() or any(isinstance(x, bool) for x in values) or pd.isna(v):
                continue
            if np.isclose(v, nums.max()):
                out.append(f"{k}={_value(v)} is the largest value tried for {row['arm']}: widen {k} upward")
            elif np.isclose(v, nums.min()):
                out.append(f"{k}={_value(v)} is the smallest value tried for {row['arm']}: widen {k} downward")
    return out


def isolation_table(df: pd.DataFrame, choices: pd.DataFrame, nuisance, scientific,
                    grid: dict | None = None, metric: str = "val_acc") -> pd.DataFrame:
    """One row per arm x nuisance setting: mean validation accuracy (what chose), mean test
    accuracy with its 95% t-interval (what is reported), seeds ok / trials, ``chosen``, and for
    the chosen row an ``edge`` warning when a chosen value is at the end of the range tried
    (``grid``: the spec's ``nuisance:`` values; by default the values present).

    ``choices``: the arms' choices as :func:`choose_nuisance` made them (its ``attrs['choices']``);
    this table only marks them, it does not choose (analysis.comparison computes both once)."""
    nuisance, scientific = list(nuisance), list(scientific)
    grid = nuisance_grid(df, nuisance, grid)
    agg = aggregate(df, by=scientific + nuisance, metrics=(metric, "test_acc"))
    agg.insert(0, "arm", [arm_label(r, scientific) for _, r in agg.iterrows()])
    agg.insert(1, "setting", [setting_label(r, nuisance) for _, r in agg.iterrows()])
    marks = choices[["arm", "setting"]].assign(chosen=True)
    marks["edge"] = ["; ".join(edge_warnings(choices.iloc[[i]], grid)) for i in range(len(choices))]
    out = agg.merge(marks, on=["arm", "setting"], how="left")
    out["chosen"] = out["chosen"].fillna(False).astype(bool)
    out["edge"] = out["edge"].fillna("")
    cols = ["arm", *scientific, *nuisance, "setting", f"{metric}_mean", "test_acc_mean", "test_acc_lo",
            "test_acc_hi", "test_acc_n", "n_ok", "n_trials", "chosen", "edge"]
    return out[cols].reset_index(drop=True)
