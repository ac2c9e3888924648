"""Claims' building blocks on synthetic trial tables (no training): paired differences, the
late-gain diagnostic, and the answer script's descriptive parts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixerlab.analysis.claims import paired_diffs
from mixerlab.analysis.late_gains import convergence_table, trial_gains


def _analysis_module(name: str):
    """A script of analysis/ as a module (loaded from its file: analysis/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "analysis" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _trials(arms: dict) -> pd.DataFrame:
    """{variant: [test_acc per seed]} as a synthetic trial table."""
    return pd.DataFrame([{"trial_id": f"{v}{s}", "status": "ok", "variant": v, "seed": s, "test_acc": acc}
                         for v, accs in arms.items() for s, acc in enumerate(accs)])


def test_paired_diffs_match_seeds_and_skip_failed_trials():
    df = _trials({"a": [80.0, 81.0, 82.0], "b": [79.0, 79.5, 90.0]})
    df.loc[df.trial_id == "b2", "status"] = "diverged"
    d = paired_diffs(df, {"variant": "a"}, {"variant": "b"})
    assert d.to_dict() == {0: 1.0, 1: 1.5}  # seed 2 has no ok partner


def test_late_gains_come_from_records_or_history():
    trials = pd.DataFrame({"trial_id": ["a", "b", "c"], "status": ["ok", "ok", "ok"], "variant": ["x", "x", "y"],
                           "seed": [0, 1, 0], "val_gain_last20": [0.2, np.nan, np.nan]})
    history = pd.DataFrame({"trial_id": ["b"] * 5 + ["c"] * 5, "epoch": list(range(1, 6)) * 2,
                            "val_acc": [50, 60, 70, 80, 81.0, 70, 70, 70, 70, 70.1]})
    g = trial_gains(trials, history)
    assert g.tolist() == pytest.approx([0.2, 1.0, 0.1])  # epochs 5 vs 4 (80% of 5)
    table = convergence_table(trials, history, ["variant"]).set_index("variant")
    assert table.loc["x", "gain_mean"] == pytest.approx(0.6) and bool(table.loc["x", "climbing"])
    assert not table.loc["y", "climbing"]


def test_limits_text_counts_what_the_compared_trials_hold():
    """analysis/patches_answer.limits_text on two synthetic comparison frames: data sets, sides,
    parameters, images, epochs and seeds per arm are computed, not typed."""
    limits_text = _analysis_module("patches_answer").limits_text

    def frame(study, seeds, subset, epochs, params):
        return pd.DataFrame([{"study": study, "variant": v, "seed": s, "dataset": "synthetic",
                              "image_size": 28, "params": params, "epochs": epochs,
                              "train_subset": subset, "val_fraction": 0.1, "test_acc": 80.0 + s}
                             for v in ("conv", "identity") for s in range(seeds)])

    text = limits_text([frame("a", 3, 5000, 10, 76_000), frame("b", 6, 2000, 30, 282_000)])
    assert text.startswith("Data: synthetic (28 px). Models of 76k to 282k parameters")
    assert "2,000 to 5,000 training images, 10 to 30 epochs; 3 to 6 seeds per compared arm" in text
    assert "(18 compared trials in 2 comparisons)" in text


def test_paired_diffs_can_read_only_the_seeds_fixed_in_advance():
    df = _trials({"a": [80.0, 81.0, 82.0, 95.0], "b": [79.0, 79.5, 80.0, 70.0]})
    assert paired_diffs(df, {"variant": "a"}, {"variant": "b"}, seeds=(0, 1, 2)).to_dict() == {0: 1.0, 1: 1.5, 2: 2.0}


def _pixels_rf_frames(gap20: float, gap10: float, rng) -> dict:
    """Synthetic study 11 frames: the measured stage (20 epochs, seeds 1-8; seeds 7 and 8, as
    if added by the adaptive rule, carry a wild gap that must not count) and the tuning stage
    (10 epochs, seed 0, the chosen lr), both arms still climbing."""
    rows = []
    for s in range(1, 9):
        p4 = 88.0 + rng.normal(0, 0.4)
        for p, acc in ((1, p4 + (gap20 if s <= 6 else -9.0) + rng.normal(0, 0.2)), (2, p4 + gap20 / 5), (4, p4)):
            rows.append({"stage": "measure", "patch_size": p, "seed": s, "epochs": 20, "test_acc": acc,
                         "late_gain": 1.2})
    measured = pd.DataFrame(rows).assign(status="ok", study="pixels_rf")
    tuning = pd.DataFrame([{"stage": "tune", "patch_size": p, "seed": 0, "epochs": 10, "lr": 0.01,
                            "test_acc": 86.0 + {1: gap10, 2: gap10 / 5, 4: 0.0}[p], "late_gain": 1.8}
                           for p in (1, 2, 4)]).assign(status="ok", study="pixels_rf")
    return {"pixels_rf": measured, "pixels_rf (tuning stage)": tuning}


def test_the_pixels_rf_finding_reads_only_the_seeds_fixed_in_advance():
    """analysis/patches_answer's study 11 finding on the synthetic frames: the gap over seeds 1-6
    (the later seeds carry a gap of -9 that would turn it around), MACs relative to patch 4."""
    mod = _analysis_module("patches_answer")
    measured = _pixels_rf_frames(gap20=2.5, gap10=2.2, rng=np.random.default_rng(3))["pixels_rf"]
    measured = measured.assign(macs=measured["patch_size"].map({1: 16e6, 2: 4e6, 4: 1e6}))
    fixed = measured[measured["seed"] <= 6]
    want = (fixed[fixed.patch_size == 1].set_index("seed").test_acc
            - fixed[fixed.patch_size == 4].set_index("seed").test_acc).mean()
    text = mod.pixels_rf({"pixels_rf": {"pixels_rf": measured}})["evidence"]
    assert f"p1 - p4 {want:+.1f} (" in text and want > 2
    assert "seeds 1-6" in text and "p1 " in text and "(16x p4's MACs" in text
