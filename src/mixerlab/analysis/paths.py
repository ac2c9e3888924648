"""The same trials on two data paths: does streaming change what a study measures?

Two studies of one spec that differ only in how the data reach the model (in memory, or
streamed from files by DataLoader workers: ``ablations/stream.yaml`` and
``ablations/stream_memory.yaml``) hold the same trials: configuration and seed alike. Each
trial is paired with its twin, and the differences (streamed minus in memory) are summarised
per variant and over all of them, with a paired t interval and a verdict against a region of
practical equivalence. Sample order and the normalisation statistics differ between the paths
(data/stream_loader.py), so the twins are not bit-identical: the question is whether the
difference is within the noise of a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixerlab.analysis.stats import paired
from mixerlab.analysis.verdict import verdict
from mixerlab.errors import ConfigError

# Columns of a record that say how the data were read, not what was computed (record.trained);
# the streamed path adds the first ones, and the time columns differ by design.
PATH_COLUMNS = ("data_path", "loader_workers", "randaugment", "random_erasing", "crop_pct")
_NOT_CONFIG = ("trial_id", "study", "status", "error")


def config_columns(df: pd.DataFrame) -> list[str]:
    """A record's configuration: its columns up to ``seed`` (a record lists what defines the
    trial first, in record.trained's order), less identity and path columns."""
    cols = list(df.columns)
    if "seed" not in cols:
        raise ConfigError("the trial table has no 'seed' column: not a study's trials table")
    return [c for c in cols[: cols.index("seed") + 1] if c not in _NOT_CONFIG + PATH_COLUMNS]


def pair_paths(memory: pd.DataFrame, stream: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """One row per trial both studies ran to the end: its configuration, ``metric`` and time on
    each path (suffixes ``_memory``, ``_stream``). Refuses tables whose trials do not pair."""
    keys = config_columns(memory)
    missing = [k for k in keys if k not in stream.columns]
    if missing:
        raise ConfigError(f"the two studies differ in their columns ({', '.join(missing)}): they "
                          "are not one spec on two paths")
    ok = [t[t["status"] == "ok"] for t in (memory, stream)]
    values = [metric, "trial_time_s", "train_images_per_s", "trial_id"]
    both = ok[0][keys + values].merge(ok[1][keys + values], on=keys, how="outer",
                                      suffixes=("_memory", "_stream"), indicator=True)
    alone = both[both["_merge"] != "both"]
    if len(alone):
        first = alone.iloc[0]
        side = "in memory" if first["_merge"] == "left_only" else "streamed"
        raise ConfigError(f"{len(alone)} trial(s) have no twin on the other path, e.g. "
                          f"{first['variant']} seed {first['seed']} ran only {side}: run both "
                          "studies to the end (the same command resumes them)")
    return both.drop(columns="_merge").reset_index(drop=True)


def path_effects(pairs: pd.DataFrame, metric: str = "test_acc", rope: float = 0.5,
                 confidence: float = 0.95) -> pd.DataFrame:
    """Per variant and, where there are several, over all pairs ("all"): the means on each path, streamed minus in
    memory with its paired t interval and p, and a verdict: *equivalent* (the interval inside
    ``[-rope, rope]``), *different* (it excludes 0), else *within noise, undecided*; also the
    median ratio of trial time and of training images/s (streamed / in memory). The spread
    over seeds of each path is given too: a path that changed the noise, not the mean, shows
    there."""
    groups = [(v, g) for v, g in pairs.groupby("variant", sort=True)]
    groups += [("all", pairs)] if len(groups) > 1 else []  # one variant: "all" would repeat it
    rows = []
    for variant, g in groups:
        a, b = g[f"{metric}_stream"].to_numpy(float), g[f"{metric}_memory"].to_numpy(float)
        t = paired(a, b, confidence)
        said = verdict(t["lo"], t["hi"], "differs", rope)
        rows.append({"variant": variant, "n_pairs": len(g), "memory": b.mean(), "stream": a.mean(),
                     "diff": t["diff"], "lo": t["lo"], "hi": t["hi"], "p": t["p"],
                     "sd_memory": _sd(b), "sd_stream": _sd(a), "sd_diff": _sd(a - b),
                     "verdict": "within noise, undecided" if said == "undecided" else said,
                     "time_ratio": float((g["trial_time_s_stream"] / g["trial_time_s_memory"]).median()),
                     "images_per_s_ratio": float((g["train_images_per_s_stream"]
                                                  / g["train_images_per_s_memory"]).median())})
    return pd.DataFrame(rows)


def _sd(x: np.ndarray) -> float:
    """Sample standard deviation over seeds (NaN for one)."""
    return float(np.std(x, ddof=1)) if len(x) > 1 else np.nan
