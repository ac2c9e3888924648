"""analysis/ladder_vs_separate.py on hand-made trial tables and histories (synthetic numbers)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analysis"))
lvs = importlib.import_module("ladder_vs_separate")


def _ladder(diffs: dict, epoch_s: float = 10.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A ladder study of budgets 10 and 30 (cool-down 0.2: the branch to 10 starts at epoch 8):
    {(variant, seed): (test at 10, test at 30)}. Every epoch takes ``epoch_s`` seconds, so a
    rung's training time is its 10 epochs' and the main run's its 30's."""
    rows, hist = [], []
    for (v, s), (t10, t30) in diffs.items():
        run = f"{v}-{s}"
        base = {"status": "ok", "variant": v, "seed": s, "lr": 0.03, "ladder": run, "cooldown_fraction": 0.2,
                "val_acc": 0.0}
        rows.append({**base, "trial_id": f"{run}/e10", "epochs": 10, "test_acc": t10,
                     "train_time_s": 10 * epoch_s, "trial_time_s": 10 * epoch_s + 5})
        rows.append({**base, "trial_id": run, "epochs": 30, "test_acc": t30,
                     "train_time_s": 30 * epoch_s, "trial_time_s": 32 * epoch_s + 10})
        hist += [{"trial_id": run, "epoch": e, "epoch_time_s": epoch_s} for e in range(1, 31)]
    return pd.DataFrame(rows), pd.DataFrame(hist)


def _separate(accs: dict) -> pd.DataFrame:
    """{(variant, seed, epochs): test} as one-cycle trials, plus a tuning trial to be left out."""
    rows = [{"trial_id": f"s-{v}-{s}-{e}", "status": "ok", "stage": "measure", "variant": v, "seed": s,
             "lr": 0.03, "epochs": e, "test_acc": t, "val_acc": 0.0, "trial_time_s": e * 12.0}
            for (v, s, e), t in accs.items()]
    rows.append({**rows[0], "trial_id": "tune", "stage": "tune", "test_acc": 0.0})
    return pd.DataFrame(rows)


SEP = _separate({("conv", s, e): 90.0 + e / 10 for s in (4, 5, 6) for e in (10, 30)})


def test_pairs_each_budget_row_with_its_separate_run_and_decides_per_arm_and_budget():
    lad, _ = _ladder({("conv", 4): (91.1, 93.0), ("conv", 5): (90.9, 93.1), ("conv", 6): (91.0, 92.9)})
    pairs = lvs.pair(lad, SEP)
    assert len(pairs) == 6 and "tune" not in set(pairs["trial_id_separate"])
    table = lvs.decide(pairs, 3, 0.5, 0.9).set_index("epochs")
    assert table.loc[10, "test_diff"] == pytest.approx(0.0) and table.loc[10, "verdict"] == "equivalent"
    assert table.loc[30, "test_diff"] == pytest.approx(0.0) and table.loc[10, "seeds"] == "3 of 3"
    assert lvs.overall(table.reset_index()).startswith("equivalent")


def test_a_loss_anywhere_is_reported_and_missing_seeds_decide_nothing():
    lad, _ = _ladder({("conv", 4): (90.0, 93.0), ("conv", 5): (90.1, 92.9), ("conv", 6): (89.9, 93.1)})
    table = lvs.decide(lvs.pair(lad, SEP), 3, 0.5, 0.9).set_index("epochs")
    assert table.loc[10, "verdict"] == "loses" and table.loc[30, "verdict"] == "equivalent"
    assert lvs.overall(table.reset_index()).startswith("loses")
    part = lvs.decide(lvs.pair(lad[lad["seed"] != 6], SEP), 3, 0.5, 0.9)
    assert set(part["verdict"]) == {"incomplete"} and lvs.overall(part).startswith("not decided")


@pytest.mark.parametrize("lo, hi, expected", [(-0.4, 0.4, "equivalent"), (-1.0, -0.1, "loses"),
                                              (0.1, 1.0, "gains"), (-0.6, 0.2, "undecided"),
                                              (float("nan"), float("nan"), "undecided")])
def test_verdict(lo, hi, expected):
    assert lvs.verdict(lo, hi, 0.5) == expected


def test_cost_counts_each_branch_once_against_every_budget_in_full():
    lad, hist = _ladder({("conv", 4): (91.0, 93.0)}, epoch_s=10.0)
    c = lvs.cost(lad, hist, SEP).iloc[0]
    # ladder: 30 epochs + the 2-epoch branch (its 8-epoch prefix is shared) = 320 s;
    # separately: 30 + 10 epochs = 400 s
    assert c["train_min_ladder"] * 60 == pytest.approx(320) and c["train_min_separate"] * 60 == pytest.approx(400)
    assert c["train_ratio"] == pytest.approx(0.8)
    assert c["trial_min_separate"] * 60 == pytest.approx(330 + 80)
    assert c["twins_trial_min"] * 60 == pytest.approx(120 + 360)


def test_an_unfinished_ladder_run_has_no_cost_yet():
    lad, hist = _ladder({("conv", 4): (91.0, 93.0)})
    assert lvs.cost(lad[lad["epochs"] == 10], hist, SEP).empty


def test_errors_name_the_problem():
    from mixerlab.errors import ConfigError

    lad, _ = _ladder({("conv", 4): (91.0, 93.0)})
    with pytest.raises(ConfigError, match="no budget ladder"):
        lvs.pair(lad.drop(columns=["ladder"]), SEP)
    with pytest.raises(ConfigError, match="no ladder row has a twin"):
        lvs.pair(lad.assign(seed=99), SEP)


def test_the_command_exits_2_with_one_line_on_a_folder_that_is_not_a_study(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "analysis" / "ladder_vs_separate.py"), str(tmp_path),
                        str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("ladder_vs_separate: error:") and "not a study" in r.stderr
