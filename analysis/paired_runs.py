"""One study's trials against their twins in an earlier study: the same arm, seed and lr,
trained longer (study 14 against study 10) or evaluated another way (study 15 against 10).

    python analysis/paired_runs.py results/budget_probe results/budget_long
    python analysis/paired_runs.py results/precise_bn results/budget_long

Each ok trial of the first study is paired with the ok trial of the second that has its
variant, seed and lr (the second's tuning-stage trials left out). Per pair: epochs, test and
final validation accuracy, late gain (mixerlab.late_gain.late_gain, recomputed from each
history), the largest fall of validation accuracy from one epoch to the next (over the whole
run and over its last 20%), and, where both ran the same epochs, whether training retraced
the twin's (every epoch's training loss equal). Within each study, every pair of arms' gap
(test accuracy, seed by seed). One seed per arm here: this describes, it decides nothing.
Writes ``paired.md`` and ``paired.csv`` into the first study's folder.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mixerlab import provenance
from mixerlab.analysis import load_history, load_study, markdown_table
from mixerlab.errors import ConfigError
from mixerlab.late_gain import late_epoch, late_gain
from mixerlab.results import atomic_write_csv, atomic_write_text

KEYS = ["variant", "seed", "lr"]


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["status"] == "ok"]
    return out[out["stage"] != "tune"] if "stage" in out else out


def curve(history: pd.DataFrame) -> dict:
    """A trial's validation curve in four numbers: epochs, late gain, and the largest fall of
    validation accuracy from one epoch to the next, over the run and over its last 20%."""
    h = history.sort_values("epoch")
    val = h["val_acc"].to_numpy(float)
    k = late_epoch(len(val))  # 1-based; 0 for one epoch. The falls after epoch k are falls[k-1:]
    falls = -np.diff(val)
    return {"epochs": len(val), "late_gain": late_gain(h.to_dict("records")),
            "largest_fall": max(0.0, float(falls.max())) if k else np.nan,
            "largest_fall_last20": max(0.0, float(falls[k - 1:].max())) if k else np.nan}


def pair(a: pd.DataFrame, b: pd.DataFrame, ha: pd.DataFrame, hb: pd.DataFrame) -> pd.DataFrame:
    """One row per trial of ``a`` with its twin in ``b`` (same variant, seed and lr)."""
    joined = _ok(a).merge(_ok(b), on=KEYS, suffixes=("_a", "_b"))
    if not len(joined):
        raise ConfigError("no trial of the first study has a twin (same variant, seed and lr) "
                          "in the second; give two studies of the same arms and seeds")
    rows = []
    for r in joined.to_dict("records"):
        ta = ha[ha["trial_id"] == r["trial_id_a"]].sort_values("epoch")
        tb = hb[hb["trial_id"] == r["trial_id_b"]].sort_values("epoch")
        ca, cb = curve(ta), curve(tb)
        la, lb = ta["train_loss"].to_numpy(), tb["train_loss"].to_numpy()
        same = bool(np.array_equal(la, lb)) if ca["epochs"] == cb["epochs"] else None
        rows.append({**{k: r[k] for k in KEYS}, "trial_a": r["trial_id_a"], "trial_b": r["trial_id_b"],
                     "epochs_a": ca["epochs"], "epochs_b": cb["epochs"],
                     "test_a": r["test_acc_a"], "test_b": r["test_acc_b"],
                     "test_a_minus_b": r["test_acc_a"] - r["test_acc_b"],
                     "val_a": r["val_acc_a"], "val_b": r["val_acc_b"],
                     "late_gain_a": ca["late_gain"], "late_gain_b": cb["late_gain"],
                     "largest_fall_a": ca["largest_fall"], "largest_fall_b": cb["largest_fall"],
                     "largest_fall_last20_a": ca["largest_fall_last20"],
                     "largest_fall_last20_b": cb["largest_fall_last20"],
                     "training_retraced": same})
    return pd.DataFrame(rows)


def arm_gaps(pairs: pd.DataFrame) -> pd.DataFrame:
    """Every pair of arms' test-accuracy gap in each study, seed by seed."""
    rows = []
    for (seed,), g in pairs.groupby(["seed"]):
        by = g.set_index("variant")
        for x, y in itertools.combinations(sorted(by.index), 2):
            rows.append({"gap": f"{x} - {y}", "seed": seed,
                         "first study": by.loc[x, "test_a"] - by.loc[y, "test_a"],
                         "second study": by.loc[x, "test_b"] - by.loc[y, "test_b"]})
    return pd.DataFrame(rows, columns=["gap", "seed", "first study", "second study"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", help="the study whose trials are paired (results/<name>)")
    p.add_argument("twins", help="the earlier study holding their twins")
    args = p.parse_args()
    a, b = Path(args.study), Path(args.twins)
    pairs = pair(load_study(a), load_study(b), load_history([a]), load_history([b]))
    gaps = arm_gaps(pairs)
    shown = pairs.drop(columns=["trial_a", "trial_b"]).assign(
        training_retraced=pairs["training_retraced"].map({True: "yes", False: "no", None: "n/a"}))
    lines = [f"# {a.name} against its twins in {b.name}", "",
             f"Each trial of `{a}` beside the trial of `{b}` with its variant, seed and lr (suffix `_a`: "
             f"{a.name}; `_b`: {b.name}). Accuracies in %, differences in points. late_gain: validation "
             "accuracy after the last epoch minus after the epoch at 80% of training; largest_fall: the "
             "largest drop of validation accuracy from one epoch to the next (over the run; `_last20`: "
             "over its last 20%); training_retraced: both ran the same epochs and every epoch's training "
             "loss is equal. One seed per arm: descriptive.", "",
             markdown_table(shown.round(2)), ""]
    if len(gaps):
        lines += ["## Gaps between arms (test accuracy, points)", "",
                  markdown_table(gaps.rename(columns={"first study": a.name, "second study": b.name}).round(2)), ""]
    lines += ["## Provenance", "", f"- command: `python analysis/paired_runs.py {args.study} {args.twins}`",
              f"- made at {provenance.now()} (commit {provenance.versions()['git_commit']}); each study's "
              "command, seeds, device and versions are in its `provenance.json`", ""]
    atomic_write_csv(a / "paired.csv", pairs)
    atomic_write_text(a / "paired.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    except ConfigError as err:
        print(f"paired_runs: error: {err}", file=sys.stderr)
        sys.exit(2)
