"""Aggregate over seeds: mean, spread, n and a 95% confidence interval per configuration.

Only ``status == "ok"`` trials enter the means; every other status is counted in its own
column, so a failed or diverged trial is shown, never silently dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from mixerlab.factors import analysis_factors

# Every factor a grid may vary, and the columns that tell trials apart, from the one
# definition the sweep validates specs against (mixerlab/factors.py). Order matters: the report
# lists factors in it, and ``design_factors`` keeps the earlier of two confounded factors.
FACTORS = analysis_factors()
# Model fields capacity matching solves per variant (sweep/trials.py): they vary in the table,
# but as a consequence of the variant, not as a factor the study chose.
SOLVED = ("width", "channel_mlp_ratio")
METRICS = ("test_acc", "best_val_acc", "params", "macs", "infer_images_per_s",
           "train_images_per_s", "train_time_s")


def factors_varied(df: pd.DataFrame) -> list[str]:
    """The factors that take more than one value among the trials, in a fixed order."""
    return [f for f in FACTORS if f in df.columns and df[f].dropna().nunique() > 1]


def is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def level_text(v) -> str:
    """A level as a label: floats without trailing zeros (0.002, 4 for 4.0), the rest as is."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def levels(values) -> list:
    """The distinct values of a factor in their natural order: numbers first, by value (0.002
    before 0.01, 40 before 109), then anything else by its text."""
    return sorted(pd.Series(list(values)).dropna().unique(),
                  key=lambda v: (not is_number(v), float(v) if is_number(v) else 0.0, str(v)))


def design_factors(df: pd.DataFrame, factors) -> list[str]:
    """``factors`` without those fully determined by the ones before them.

    Capacity matching solves ``width`` per variant, so width is a consequence of the variant,
    not a second factor: an ANOVA with both is rank-deficient and splits one effect between
    two names. A factor that takes a single value within every combination of the earlier
    ones is therefore left out of the model (it stays in the tables, where it is informative).
    Where capacity was matched, the solved fields come last, so a real factor listed after
    them (``downsample``) is not taken for a consequence of the width it caused.
    """
    if "match_by" in df.columns:
        factors = [f for f in factors if f not in SOLVED] + [f for f in factors if f in SOLVED]
    out: list[str] = []
    for f in factors:
        if f not in df.columns:
            continue
        if out and df.groupby(out, dropna=False)[f].nunique(dropna=False).max() <= 1:
            continue
        out.append(f)
    return out


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; NaN for fewer than two values."""
    x = np.asarray(pd.Series(values).dropna(), dtype=float)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return x.mean() - half, x.mean() + half


def bootstrap_interval(values, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    x = np.asarray(pd.Series(values).dropna(), dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return (float(x[0]), float(x[0])) if len(x) and np.ptp(x) == 0 else (float("nan"),) * 2
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def aggregate(df: pd.DataFrame, by=None, metrics=METRICS, method: str = "t") -> pd.DataFrame:
    """One row per configuration: ``<metric>_mean/_std/_n/_lo/_hi`` and ``n_<status>`` counts."""
    by = list(by) if by is not None else (factors_varied(df) or ["variant"])
    interval = t_interval if method == "t" else bootstrap_interval
    ok = df[df["status"] == "ok"]
    rows = []
    for key, group in df.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        good = ok.loc[ok.index.intersection(group.index)]
        for m in metrics:
            if m not in df.columns:
                continue
            v = pd.to_numeric(good[m], errors="coerce").dropna()
            lo, hi = interval(v)
            row.update({f"{m}_mean": v.mean() if len(v) else np.nan,
                        f"{m}_std": v.std(ddof=1) if len(v) > 1 else np.nan,
                        f"{m}_n": len(v), f"{m}_lo": lo, f"{m}_hi": hi})
        counts = group["status"].value_counts()
        row["n_trials"] = len(group)
        for status in ("ok", "diverged", "oom", "error", "stopped"):
            row[f"n_{status}"] = int(counts.get(status, 0))
        row["n_failed"] = row["n_trials"] - row["n_ok"]
        rows.append(row)
    return pd.DataFrame(rows)


def training_compute(df: pd.DataFrame) -> pd.Series:
    """Each row's training compute: forward MACs per image x images seen, where images seen is
    ``epochs`` x the training images of one epoch (the record's training images/s x its
    training seconds, over its epochs run). Forward MACs only: a training step's backward
    pass costs about twice its forward (Kaplan et al. 2020, arXiv:2001.08361, Sec. 2.1), a
    constant factor that moves no arm against another. NaN where a column is missing."""
    need = ("macs", "epochs", "train_images_per_s", "train_time_s", "epochs_run")
    if any(c not in df.columns for c in need):
        return pd.Series(np.nan, index=df.index)
    num = {c: pd.to_numeric(df[c], errors="coerce") for c in need}
    per_epoch = num["train_images_per_s"] * num["train_time_s"] / num["epochs_run"].where(num["epochs_run"] > 0)
    return num["macs"] * num["epochs"] * per_epoch.round()
