"""The Pareto front: configurations no other configuration beats on both axes."""

from __future__ import annotations

import pandas as pd


def pareto_front(df: pd.DataFrame, x: str, y: str, x_better: str = "lower",
                 y_better: str = "higher") -> pd.DataFrame:
    """Rows not dominated on (x, y), sorted by x. A row is dominated if another is at least
    as good on both axes and strictly better on one."""
    d = df.dropna(subset=[x, y])
    sx = 1 if x_better == "lower" else -1  # minimise sx * x and sy * y
    sy = 1 if y_better == "lower" else -1
    xs, ys = (sx * d[x]).to_numpy(), (sy * d[y]).to_numpy()
    keep = []
    for i in range(len(d)):
        dominated = ((xs <= xs[i]) & (ys <= ys[i]) & ((xs < xs[i]) | (ys < ys[i]))).any()
        keep.append(not dominated)
    return d[keep].sort_values(x).reset_index(drop=True)
