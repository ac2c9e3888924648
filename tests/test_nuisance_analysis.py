"""Nuisance factors, paired tests and matching strata, on synthetic trial tables with known
answers (hand-made DataFrames: no training is run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mixerlab.analysis import (
    choose_nuisance,
    edge_warnings,
    paired,
    pairwise,
    welch,
    write_report,
)
from mixerlab.analysis.aggregate import levels
from mixerlab.analysis.comparison import compare
from mixerlab.analysis.nuisance import nuisance_grid
from mixerlab.analysis.plots import isolation

LRS = (0.002, 0.005, 0.01)
# A shared seed effect: seed s shifts every arm by the same amount (same data order/augmentation).
SEED_EFFECT = {0: -0.3, 1: 0.0, 2: 0.3}


def synthetic_trials(val: dict, test: dict | None = None, status: dict | None = None,
                     seeds=(0, 1, 2), extra: dict | None = None) -> pd.DataFrame:
    """A synthetic trial table: ``val`` = {(variant, patch, lr): mean final val acc}; ``test``
    the same for test accuracy (default: val - 1); ``status`` = {(variant, patch, lr, seed):
    status} (a non-ok trial gets NaN test accuracy, as ASHA's stopped rows do)."""
    rows = []
    for (variant, patch, lr), v in val.items():
        t = (test or {}).get((variant, patch, lr), v - 1.0)
        for seed in seeds:
            rows.append({"trial_id": f"{variant}-{patch}-{lr}-{seed}", "status": "ok", "error": "",
                         "variant": variant, "patch_size": patch, "lr": lr, "weight_decay": 0.05,
                         "seed": seed, "val_acc": v + SEED_EFFECT.get(seed, 0.0),
                         "best_val_acc": v + SEED_EFFECT.get(seed, 0.0) + 0.5,
                         "test_acc": t + SEED_EFFECT.get(seed, 0.0), "test_loss": 0.5,
                         "params": 1000 * patch + (500 if variant == "conv" else 0), "macs": 10 * patch,
                         "dataset": "synthetic", "epochs": 2, **(extra or {})})
    df = pd.DataFrame(rows)
    for (variant, patch, lr, seed), st in (status or {}).items():
        hit = df.trial_id == f"{variant}-{patch}-{lr}-{seed}"
        df.loc[hit, "status"] = st
        df.loc[hit, ["test_acc", "test_loss"]] = np.nan
    return df


def _grid(base: dict) -> dict:
    """{(variant, patch): {lr: val}} -> {(variant, patch, lr): val}."""
    return {(v, p, lr): acc for (v, p), by_lr in base.items() for lr, acc in by_lr.items()}


VAL = _grid({("conv", 4): {0.002: 80.0, 0.005: 83.0, 0.01: 81.0},
             ("mlp", 4): {0.002: 79.0, 0.005: 78.0, 0.01: 77.0}})


def _chosen_lr(df, variant="conv", patch=4):
    c = df.attrs["choices"]
    c = c[c.patch_size == patch] if "patch_size" in c else c
    return c[c.variant == variant]["lr"].item()


def test_choice_is_the_validation_best_and_keeps_every_column():
    df = synthetic_trials(VAL)
    chosen = choose_nuisance(df, ["lr"])
    assert _chosen_lr(chosen) == 0.005 and _chosen_lr(chosen, "mlp") == 0.002
    assert len(chosen) == 6 and set(chosen.columns) == set(df.columns)  # test_acc joined back
    conv = chosen[chosen.variant == "conv"]
    assert (conv.lr == 0.005).all() and conv.test_acc.tolist() == pytest.approx([81.7, 82.0, 82.3])
    c = chosen.attrs["choices"].set_index("arm")
    assert c.loc["conv", "setting"] == "lr=0.005"
    assert c.loc["conv", "val_acc_mean"] == pytest.approx(83.0)
    assert c.loc["conv", "n_eligible"] == 3 and not c["fallback"].any()
    assert chosen.attrs["scientific"] == ["variant"]  # patch_size takes one value: not varied


def test_the_test_set_is_never_used_to_choose():
    df = synthetic_trials(VAL)
    reference = choose_nuisance(df, ["lr"]).attrs["choices"]
    for changed in (df.assign(test_acc=np.nan, test_loss=np.nan),
                    df.assign(test_acc=-df["test_acc"]),
                    df.assign(test_acc=np.random.default_rng(0).uniform(0, 100, len(df)))):
        pd.testing.assert_frame_equal(choose_nuisance(changed, ["lr"]).attrs["choices"], reference)
    # The test set prefers lr=0.01 for conv by 5 points; validation prefers 0.005: 0.005 it is.
    test = {k: (90.0 if k == ("conv", 4, 0.01) else v - 1) for k, v in VAL.items()}
    chosen = choose_nuisance(synthetic_trials(VAL, test=test), ["lr"])
    assert _chosen_lr(chosen) == 0.005
    assert chosen[chosen.variant == "conv"].test_acc.mean() == pytest.approx(82.0)
    with pytest.raises(ValueError, match="test metric"):
        choose_nuisance(df, ["lr"], metric="test_acc")


def test_asha_stopped_settings_are_not_eligible_and_empty_arms_are_flagged():
    val = _grid({("conv", 4): {0.002: 80.0, 0.005: 83.0, 0.01: 85.0},
                 ("mlp", 4): {0.002: 79.0, 0.005: 78.0, 0.01: 77.0},
                 ("attention", 4): {0.002: 70.0, 0.005: 72.0, 0.01: 71.0}})
    status = {("conv", 4, 0.01, 2): "stopped"}  # best on the two seeds left: biased, not eligible
    status |= {("mlp", 4, 0.002, s): "stopped" for s in (0, 1)}  # 1 ok seed
    status |= {("mlp", 4, 0.005, 0): "stopped", ("mlp", 4, 0.01, 1): "diverged"}  # 2 ok seeds each
    status |= {("attention", 4, lr, s): "stopped" for lr in LRS for s in (0, 1, 2)}
    chosen = choose_nuisance(synthetic_trials(val, status=status), ["lr"])
    c = chosen.attrs["choices"].set_index("variant")
    assert c.loc["conv", "lr"] == 0.005 and c.loc["conv", "n_eligible"] == 2
    assert not c.loc["conv", "fallback"]
    # mlp: no setting ok on every seed; most ok seeds (2, at 0.005 and 0.01), then best val: 0.005.
    assert c.loc["mlp", "fallback"] and not c.loc["mlp", "all_stopped"]
    assert c.loc["mlp", "lr"] == 0.005 and c.loc["mlp", "n_ok"] == 2 and c.loc["mlp", "n_eligible"] == 0
    # attention: all stopped; flagged, and it brings no test accuracy.
    assert c.loc["attention", "all_stopped"] and c.loc["attention", "fallback"]
    assert chosen[chosen.variant == "attention"].test_acc.isna().all()


def test_edge_warnings_up_and_down_and_none_inside_the_range():
    df = synthetic_trials(_grid({("conv", 4): {0.002: 80.0, 0.005: 81.0, 0.01: 83.0},
                                 ("mlp", 4): {0.002: 79.0, 0.005: 78.0, 0.01: 77.0},
                                 ("pool", 4): {0.002: 70.0, 0.005: 72.0, 0.01: 71.0}}))
    choices = choose_nuisance(df, ["lr"], scientific=["variant", "patch_size"]).attrs["choices"]
    warnings = edge_warnings(choices, {"lr": list(LRS)})
    assert warnings == ["lr=0.01 is the largest value tried for conv (patch 4): widen lr upward",
                        "lr=0.002 is the smallest value tried for mlp (patch 4): widen lr downward"]
    # The spec tried a wider range than the values present: 0.002 is then inside it.
    wider = edge_warnings(choices, {"lr": ["1e-3", 0.002, 0.005, 0.01, 0.02]})
    assert wider == []
    assert edge_warnings(choices, {"schedule": ["cosine", "constant"]}) == []


def test_levels_and_the_nuisance_grid_are_in_numeric_order():
    # As text, 1e-05 sorts after 0.1 and 109 before 40.
    df = pd.DataFrame({"lr": [0.1, 1e-05, 0.002, 0.1, None], "width": [109, 40, 64, 40, 64]})
    assert nuisance_grid(df, ["lr"]) == {"lr": [1e-05, 0.002, 0.1]}
    assert levels(df["width"]) == [40, 64, 109]
    assert levels(pd.Series(["pool", 3, "conv"])) == [3, "conv", "pool"]  # mixed: by text
    assert nuisance_grid(df, ["lr"], {"lr": [0.1, 0.002]}) == {"lr": [0.1, 0.002]}  # the spec's own order


def test_isolation_table_one_row_per_arm_and_setting():
    val = _grid({(v, p): {0.002: 80.0 + i, 0.005: 81.0 + i, 0.01: 79.0}
                 for i, (v, p) in enumerate([("conv", 4), ("conv", 7), ("mlp", 4), ("mlp", 7)])})
    df = synthetic_trials(val, status={("mlp", 7, 0.01, 0): "stopped"})
    iso = compare(df, ["lr"]).isolation
    assert len(iso) == 4 * 3 and iso.groupby("arm")["chosen"].sum().eq(1).all()
    assert {"arm", "variant", "patch_size", "lr", "setting", "val_acc_mean", "test_acc_mean",
            "test_acc_lo", "test_acc_hi", "n_ok", "n_trials", "chosen", "edge"} <= set(iso.columns)
    row = iso[(iso.arm == "mlp (patch 7)") & (iso.lr == 0.01)].iloc[0]
    assert row.n_ok == 2 and row.n_trials == 3 and not row.chosen
    assert (iso[iso.chosen].lr == 0.005).all() and (iso.edge == "").all()
    one = iso[(iso.arm == "conv (patch 4)") & (iso.lr == 0.005)].iloc[0]
    half = stats.t.ppf(0.975, 2) * 0.3  # test accs 79.7, 80, 80.3: sd 0.3, n 3
    assert one.test_acc_mean == pytest.approx(80.0)
    assert one.test_acc_hi - one.test_acc_mean == pytest.approx(half / np.sqrt(3))


def test_isolation_plot_has_a_line_per_setting_and_the_chosen_curve():
    df = synthetic_trials(_grid({(v, p): {0.002: 80.0, 0.005: 81.0, 0.01: 79.0}
                                 for v in ("conv", "mlp") for p in (4, 7)}))
    c = compare(df, ["lr"])
    fig = isolation(df, c.chosen, ["lr"], "variant", c.scientific)
    assert len(fig.axes) == 2  # one panel per patch size
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[:3] == ["lr=0.002", "lr=0.005", "lr=0.01"] and "chosen by val acc" in labels[3]


def test_isolation_plot_of_a_study_in_parts_skips_settings_not_run_yet():
    """A study stopped part way (run in parts): one panel has no trial at one setting, and
    no chosen trial at all; the plot draws what there is instead of raising."""
    df = synthetic_trials(_grid({(v, p): {0.002: 80.0, 0.005: 81.0, 0.01: 79.0}
                                 for v in ("conv", "mlp") for p in (4, 7)}))
    df = df[~((df["patch_size"] == 7) & (df["lr"] == 0.01))]
    c = compare(df, ["lr"])
    fig = isolation(df, c.chosen.iloc[0:0], ["lr"], "variant", c.scientific)
    assert len(fig.axes) == 2


def test_paired_when_arms_share_seeds_else_welch():
    df = synthetic_trials({("conv", 4, 0.005): 83.0, ("mlp", 4, 0.005): 80.0})
    df["test_acc"] += np.tile([0.0, 0.1, -0.1], 2) * np.repeat([1, -1], 3)  # diffs vary
    auto = pairwise(df, within=None).iloc[0]
    a = df[df.variant == "conv"].set_index("seed").test_acc
    b = df[df.variant == "mlp"].set_index("seed").test_acc
    assert auto["test"] == "paired t"
    assert auto["p"] == pytest.approx(stats.ttest_rel(a.sort_index(), b.sort_index()).pvalue)
    assert pairwise(df, within=None, paired=False).iloc[0]["test"] == "Welch t"
    # One mlp seed failed: the seed sets differ, so auto falls back to Welch; forcing pairs fails.
    broken = df.copy()
    broken.loc[(broken.variant == "mlp") & (broken.seed == 2), "status"] = "oom"
    row = pairwise(broken, within=None).iloc[0]
    assert row["test"] == "Welch t" and row["n_b"] == 2
    with pytest.raises(ValueError, match="do not share their seeds"):
        pairwise(broken, within=None, paired=True)


def test_arms_with_unequal_seed_counts_pair_on_the_seeds_they_share():
    """An adaptive sweep gives one arm more seeds than the other: the test pairs the five seeds
    both have (synthetic trials) instead of dropping the pairing."""
    rng = np.random.default_rng(3)
    seed_effect = rng.normal(0, 2.0, 8)
    rows = [{"variant": v, "seed": s, "status": "ok", "test_acc": base + seed_effect[s] + rng.normal(0, 0.1)}
            for v, base, n in (("conv", 83.0, 8), ("mlp", 82.0, 5)) for s in range(n)]
    df = pd.DataFrame(rows)
    row = pairwise(df, within=None).iloc[0]
    a = df[df.variant == "conv"].set_index("seed").test_acc.loc[range(5)]
    b = df[df.variant == "mlp"].set_index("seed").test_acc
    assert row["test"] == "paired t" and row["n_pairs"] == 5 and (row["n_a"], row["n_b"]) == (8, 5)
    assert row["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    # Two seeds in common out of three and two: too few to pair on a subset, so Welch's.
    assert pairwise(df[df.seed.isin([0, 1, 2]) & ~((df.variant == "mlp") & (df.seed == 2))],
                    within=None).iloc[0]["test"] == "Welch t"


def test_paired_ci_is_narrower_when_a_seed_effect_is_shared():
    """Synthetic: each seed moves both arms by up to 3 points; the arms differ by 1 +- 0.1.
    Welch sees the seed effect as noise; the seed-matched differences do not."""
    seed_effect = np.array([-3.0, 0.0, 3.0, 1.5, -1.5])
    a = pd.Series(80.0 + seed_effect + [0.1, -0.1, 0.0, 0.05, -0.05], index=range(5))
    b = pd.Series(79.0 + seed_effect, index=range(5))
    p, w = paired(a, b), welch(a, b)
    d = (a - b).to_numpy()
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert p["diff"] == pytest.approx(w["diff"]) == pytest.approx(1.0)
    assert (p["lo"], p["hi"]) == pytest.approx((1.0 - half, 1.0 + half))
    assert p["hi"] - p["lo"] < (w["hi"] - w["lo"]) / 10 and p["p"] < 0.001 < 0.05 < w["p"]
    # Alignment by seed: shuffled order gives the same answer.
    assert paired(a.sample(frac=1, random_state=0), b)["p"] == pytest.approx(p["p"])


def _write_study(path: Path, df: pd.DataFrame, spec: str) -> Path:
    path.mkdir(parents=True)
    df.to_parquet(path / "trials.parquet")
    (path / "spec.yaml").write_text(spec)
    (path / "provenance.json").write_text(json.dumps({"command": "mixerlab sweep synthetic.yaml",
                                                      "n_trials": len(df)}))
    return path


NUISANCE_SPEC = """name: synth-nuisance
question: Which mixer, each at its best learning rate?
grid: {mixer: [conv, mlp], patch_size: [4, 7]}
nuisance: {lr: [0.002, 0.005, 0.01]}
seeds: 3
"""


def test_report_with_nuisance_names_the_choice_and_has_the_isolation_plot(tmp_path):
    val = _grid({("conv", 4): {0.002: 80.0, 0.005: 84.0, 0.01: 82.0},
                 ("conv", 7): {0.002: 81.0, 0.005: 82.0, 0.01: 83.0},
                 ("mlp", 4): {0.002: 78.0, 0.005: 77.0, 0.01: 76.0},
                 ("mlp", 7): {0.002: 77.0, 0.005: 79.0, 0.01: 78.0}})
    status = {("mlp", 7, 0.005, 1): "stopped"}  # best val for mlp 7, but not on every seed
    study = _write_study(tmp_path / "synth", synthetic_trials(val, status=status), NUISANCE_SPEC)
    path, verdict = write_report([study])
    text = path.read_text()
    assert "## Nuisance settings chosen per arm (by validation accuracy)" in text
    assert "| conv (patch 4) | lr=0.005 | 84.00 | 3/3 | 3 of 3 |" in text
    assert "| mlp (patch 7) | lr=0.01 | 78.00 | 3/3 | 2 of 3 |" in text
    assert "![Isolation plot](isolation.png)" in text
    assert (path.parent / "isolation.png").stat().st_size > 10_000
    assert "lr=0.01 is the largest value tried for conv (patch 7): widen lr upward" in verdict
    assert "lr=0.002 is the smallest value tried for mlp (patch 4): widen lr downward" in verdict
    assert "the test set played no part in the choice" in verdict
    # The analysis after the choice uses the chosen trials only: 4 arms x 3 seeds, paired.
    results = text.split("## Results")[1].split("##")[0]
    assert results.count("3/3") == 4 and "| conv | 4 | 0.005 |" in results
    assert "paired t-test on seed-matched differences" in text
    assert "mlp-7-0.005-1" in text  # the stopped trial is still listed


def test_report_flags_an_arm_whose_settings_were_all_stopped(tmp_path):
    val = _grid({(v, 4): {0.002: 80.0, 0.005: 81.0} for v in ("conv", "mlp", "attention")})
    status = {("attention", 4, lr, s): "stopped" for lr in (0.002, 0.005) for s in (0, 1, 2)}
    spec = NUISANCE_SPEC.replace("[0.002, 0.005, 0.01]", "[0.002, 0.005]")
    study = _write_study(tmp_path / "synth", synthetic_trials(val, status=status), spec)
    path, verdict = write_report([study])
    assert "Every trial of attention was stopped by ASHA or failed, at every lr setting" in verdict
    assert "all stopped: no test accuracy" in path.read_text()


def test_each_matching_is_reported_separately(tmp_path):
    parts = []
    for by, shift in (("params", 0.0), ("macs", 2.0)):
        val = _grid({(v, 4): {0.002: base + shift, 0.005: base + 1 + shift}
                     for v, base in (("conv", 80.0), ("attention", 76.0), ("identity", 70.0))})
        d = synthetic_trials(val, extra={"match_by": by})
        d["trial_id"] += f"-{by}"
        d["width"] = d["variant"].map({"conv": 96, "attention": 64, "identity": 128}) + (8 if by == "macs" else 0)
        parts.append(d)
    spec = NUISANCE_SPEC.replace("[0.002, 0.005, 0.01]", "[0.002, 0.005]")
    study = _write_study(tmp_path / "synth", pd.concat(parts, ignore_index=True), spec)
    path, verdict = write_report([study])
    text = path.read_text()
    for by in ("params", "macs"):
        assert f"### Matched by {by}" in text and f"## Matched by {by}" in text
        assert f"Matched by {by}: Across the trials, the token mixer explains" in verdict
        assert (path.parent / f"effects_by_{by}.png").exists()
    # The solved width follows the variant: not a factor of its own in the ANOVA.
    section = text.split("\n## Matched by params\n")[1]
    effects = section.split("### Effects")[1].split("### Pairwise")[0]
    assert "| variant |" in effects and "| width |" not in effects
    assert "| conv (width 96, matched by params) | lr=0.005 |" in text  # arms name their matching
    assert "| attention | 64 | 0.005 | 4,000 | 76.00 |" in section  # Pareto: lr not rounded
    # "What was run" lists the solved widths apart from the factors, numbers in numeric order.
    run = text.split("## What was run")[1].split("\n## ")[0]
    assert "- Factors varied: variant (attention, conv, identity), match_by (macs, params)" in run
    assert "- Solved by capacity matching, per variant (not factors of the design): width " \
           "(64, 72, 96, 104, 128, 136)" in run
    assert "sweep efficiency n/a" in run  # the synthetic provenance has no sessions
    # An extended study has no single-session efficiency: the report says why.
    prov = json.loads((study / "provenance.json").read_text())
    (study / "provenance.json").write_text(json.dumps({**prov, "sweep_efficiency": None,
                                                        "sessions": [{}, {}]}))
    again = write_report([study], tmp_path / "again")[0].read_text()
    assert "sweep efficiency n/a (2 sessions: resumed or extended)" in again


def test_layout_study_compares_each_mixer_across_layouts_and_names_the_confounded_patch(tmp_path):
    """A layout study (pyramid at patch 2 vs isotropic at patch 4): the report compares the
    layouts within every mixer, and says the patch size is not a factor of its own."""
    parts = []
    for layout, patch, gain in (("isotropic", 4, 0.0), ("pyramid", 2, 3.0)):
        val = _grid({(v, patch): {0.002: base + gain, 0.005: base + gain + 1}
                     for v, base in (("conv", 80.0), ("identity", 70.0))})
        parts.append(synthetic_trials(val, extra={"layout": layout}))
    df = pd.concat(parts, ignore_index=True)
    df["val_acc"] += df["seed"] * 0.01 * (df["layout"] == "pyramid")  # not exactly constant
    df["test_acc"] += df["seed"] * 0.02 * (df["layout"] == "pyramid")
    spec = NUISANCE_SPEC.replace("[0.002, 0.005, 0.01]", "[0.002, 0.005]")
    study = _write_study(tmp_path / "synth", df, spec)
    path, verdict = write_report([study])
    text = path.read_text()
    assert "Layout within each mixer" in text
    for v in ("conv", "identity"):
        assert f"For {v}, the pyramid layout is +3.0" in verdict
    assert "Patch size is not a separate factor in this design: it follows from the layout, so its " \
           "effect is counted in that." in verdict
    assert "In the pyramid layout, conv leads identity" in verdict
