"""Has each arm converged? Its validation gain over the last 20% of training, per arm.

A model stopped while it is still learning measures how fast a mixer learns, not what it can
do. Each trial's gain comes from its record (``val_gain_last20``, written by training since
it was measured) or, for records made before, from the same function applied to its
per-epoch history, so every committed study can be judged by one rule
(:mod:`mixerlab.late_gain`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixerlab.late_gain import LATE_GAIN_KEY as GAIN
from mixerlab.late_gain import late_gain, still_climbing


def trial_gains(trials: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
    """The late gain of every trial (points; NaN where it cannot be measured), by index."""
    recorded = trials[GAIN] if GAIN in trials else pd.Series(np.nan, index=trials.index)
    missing = recorded.isna() & (trials["status"] == "ok")
    if not missing.any() or not len(history) or "val_acc" not in history:
        return recorded.astype(float)
    by_trial = {tid: g.sort_values("epoch").to_dict("records")
                for tid, g in history[history["trial_id"].isin(trials.loc[missing, "trial_id"])].groupby("trial_id")}
    computed = trials["trial_id"].map(lambda t: late_gain(by_trial[t]) if t in by_trial else np.nan)
    return recorded.where(~missing, computed).astype(float)


def convergence_table(trials: pd.DataFrame, history: pd.DataFrame, keys) -> pd.DataFrame:
    """One row per arm (``keys``): mean, min and max late gain over its ok seeds, the number
    of seeds measured, and ``climbing`` when the mean gain exceeds the threshold
    (:data:`~mixerlab.late_gain.STILL_CLIMBING` points)."""
    ok = trials[trials["status"] == "ok"]
    gains = trial_gains(ok, history)
    keys = list(keys)
    rows = []
    for key, g in ok.assign(_gain=gains).groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        v = g["_gain"].dropna()
        rows.append({**dict(zip(keys, key)), "gain_mean": v.mean() if len(v) else np.nan,
                     "gain_min": v.min() if len(v) else np.nan, "gain_max": v.max() if len(v) else np.nan,
                     "n": len(v), "climbing": bool(len(v)) and still_climbing(v.mean())})
    return pd.DataFrame(rows)
