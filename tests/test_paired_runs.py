"""analysis/paired_runs.py on hand-made trial tables and histories (synthetic numbers)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
paired_runs = importlib.import_module("paired_runs")


def _study(tag, arms, stage=None):
    """{(variant, seed, lr): (test_acc, [val per epoch], [train_loss per epoch])} as trials and history."""
    trials, hist = [], []
    for (v, s, lr), (test, vals, losses) in arms.items():
        tid = f"{tag}-{v}-{s}"
        trials.append({"trial_id": tid, "status": "ok", "variant": v, "seed": s, "lr": lr,
                       "test_acc": test, "val_acc": vals[-1], **({"stage": stage} if stage else {})})
        hist += [{"trial_id": tid, "epoch": e + 1, "val_acc": va, "train_loss": lo}
                 for e, (va, lo) in enumerate(zip(vals, losses))]
    return pd.DataFrame(trials), pd.DataFrame(hist)


def test_curve_measures_the_late_gain_and_the_largest_falls():
    c = paired_runs.curve(pd.DataFrame({"epoch": range(1, 11),
                                        "val_acc": [50, 60, 30, 70, 72, 74, 76, 80, 70, 85.0]}))
    # k80 = 8: late gain 85 - 80; falls 30 (epoch 2 -> 3) and, in the last 20%, 10 (8 -> 9)
    assert c == {"epochs": 10, "late_gain": 5.0, "largest_fall": 30.0, "largest_fall_last20": 10.0}


def test_pairs_by_variant_seed_and_lr_and_tells_whether_training_retraced():
    a, ha = _study("a", {("conv", 1, 0.03): (92.0, [80, 90, 91], [1.0, 0.8, 0.7]),
                         ("identity", 1, 0.01): (84.0, [70, 80, 83], [1.2, 1.0, 0.9])})
    b, hb = _study("b", {("conv", 1, 0.03): (91.5, [80, 70, 90], [1.0, 0.8, 0.7]),
                         ("identity", 1, 0.01): (83.0, [70, 40, 82], [1.2, 1.0, 0.95]),
                         ("conv", 2, 0.03): (90.0, [80, 85, 89], [1.0, 0.9, 0.8])})
    b = pd.concat([b, b.iloc[[0]].assign(trial_id="tune", stage="tune", lr=0.03)], ignore_index=True)
    b["stage"] = b.get("stage").fillna("measure")
    p = paired_runs.pair(a, b, ha, hb).set_index("variant")
    assert sorted(p.index) == ["conv", "identity"]  # seed 2 has no twin; the tuning trial is left out
    assert p.loc["conv", "training_retraced"] and not p.loc["identity", "training_retraced"]
    assert p.loc["conv", "test_a_minus_b"] == pytest.approx(0.5)
    assert p.loc["identity", "largest_fall_b"] == 30 and p.loc["identity", "largest_fall_a"] == 0
    g = paired_runs.arm_gaps(p.reset_index())
    assert g.to_dict("records") == [{"gap": "conv - identity", "seed": 1, "first study": 8.0,
                                     "second study": 8.5}]


def test_no_twins_is_a_clear_error():
    from mixerlab.errors import ConfigError

    a, ha = _study("a", {("conv", 1, 0.03): (92.0, [80, 90], [1.0, 0.8])})
    b, hb = _study("b", {("conv", 2, 0.03): (92.0, [80, 90], [1.0, 0.8])})
    with pytest.raises(ConfigError, match="no trial of the first study has a twin"):
        paired_runs.pair(a, b, ha, hb)
    assert np.isnan(paired_runs.curve(pd.DataFrame({"epoch": [1], "val_acc": [50.0]}))["late_gain"])
