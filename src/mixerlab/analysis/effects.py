"""Factor effects: the mean of a metric per level of one factor, and two-factor tables."""

from __future__ import annotations

import pandas as pd

from mixerlab.analysis.aggregate import aggregate


def factor_effects(df: pd.DataFrame, factor: str, metric: str = "test_acc") -> pd.DataFrame:
    """Mean, CI and n of ``metric`` per level of ``factor``, over every other factor and seed."""
    agg = aggregate(df, by=[factor], metrics=(metric,))
    return agg[[factor, f"{metric}_mean", f"{metric}_lo", f"{metric}_hi", f"{metric}_n", "n_failed"]]


def interaction_table(df: pd.DataFrame, rows: str = "variant", cols: str = "patch_size",
                      metric: str = "test_acc") -> pd.DataFrame:
    """Mean ``metric`` per (rows, cols) cell, as a wide table (the heat map's data)."""
    agg = aggregate(df, by=[rows, cols], metrics=(metric,))
    return agg.pivot(index=rows, columns=cols, values=f"{metric}_mean")
