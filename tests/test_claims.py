"""Claims: verdicts that can come out every way, on intervals adjusted in one family.

Hand-made (synthetic) trial tables with known differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mixerlab.analysis.claims import ROPE, Gap, claim_verdict, family, gap_verdict, paired_diffs
from mixerlab.analysis.convergence import convergence_table, trial_gains


def _trials(arms: dict) -> pd.DataFrame:
    """{variant: [test_acc per seed]} as a synthetic trial table."""
    return pd.DataFrame([{"trial_id": f"{v}{s}", "status": "ok", "variant": v, "seed": s, "test_acc": acc}
                         for v, accs in arms.items() for s, acc in enumerate(accs)])


def test_paired_diffs_match_seeds_and_skip_failed_trials():
    df = _trials({"a": [80.0, 81.0, 82.0], "b": [79.0, 79.5, 90.0]})
    df.loc[df.trial_id == "b2", "status"] = "diverged"
    d = paired_diffs(df, {"variant": "a"}, {"variant": "b"})
    assert d.to_dict() == {0: 1.0, 1: 1.5}  # seed 2 has no ok partner


def test_family_intervals_are_bonferroni_t_intervals_and_holm():
    rng = np.random.default_rng(0)
    diffs = [pd.Series(rng.normal(mu, 0.5, 5)) for mu in (0.0, 2.0, 5.0)]
    out = family([(Gap("s", {}, {}, str(i)), d) for i, d in enumerate(diffs)], alpha=0.05)
    assert out.attrs["m"] == 3 and out.attrs["confidence"] == pytest.approx(1 - 0.05 / 3)
    for r, d in zip(out.itertuples(), diffs):
        half = stats.t.ppf(1 - 0.05 / 6, 4) * d.std(ddof=1) / np.sqrt(5)
        assert r.lo == pytest.approx(d.mean() - half) and r.hi == pytest.approx(d.mean() + half)
        assert r.p == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    p = np.sort(out["p"].to_numpy())
    assert np.sort(out["p_holm"].to_numpy())[0] == pytest.approx(min(1, 3 * p[0]))


def test_every_verdict_can_come_out():
    assert gap_verdict(0.5, 3.0, "beats") == "agrees"
    assert gap_verdict(-3.0, -0.5, "beats") == "disagrees"
    assert gap_verdict(-0.4, 0.6, "beats") == "equivalent"  # inside the ROPE: "better" fails
    assert gap_verdict(-0.5, 3.0, "beats") == "undecided"
    assert gap_verdict(-0.9, 0.9, "within") == "agrees"
    assert gap_verdict(1.2, 3.0, "within") == "disagrees"
    assert gap_verdict(0.5, 1.5, "within") == "undecided"
    assert gap_verdict(np.nan, np.nan, "beats") == "undecided"
    assert ROPE == 1.0


def test_claim_verdict_over_several_gaps():
    rows = pd.DataFrame({"lo": [-0.5, -0.2], "hi": [0.5, 0.8]})
    assert claim_verdict(rows, "within") == "agrees"
    assert claim_verdict(pd.DataFrame({"lo": [-0.5, 1.5], "hi": [0.5, 2.0]}), "within") == "disagrees"
    assert claim_verdict(pd.DataFrame({"lo": [0.5, -1.0], "hi": [2.0, 2.0]}), "beats") == "undecided"
    assert claim_verdict(pd.DataFrame({"lo": [0.5, 1.0], "hi": [2.0, 3.0]}), "beats") == "agrees"


def test_a_null_effect_is_rejected_at_most_alpha_of_the_time_across_the_family():
    """Simulated paired differences with no effect, five gaps, three seeds, normal and
    heavy-tailed (t with 3 df): the family-wise rate of any 'agrees'/'disagrees' on the
    family's intervals stays at or below alpha (Monte Carlo, 4,000 families each). The
    intervals are family()'s, checked once against it, then computed for all draws at once."""
    rng = np.random.default_rng(1)
    m, n, reps = 5, 3, 4000
    for draw in (lambda size: rng.normal(0, 1, size), lambda size: rng.standard_t(3, size)):
        d = draw((reps, m, n))
        half = stats.t.ppf(1 - 0.05 / (2 * m), n - 1) * d.std(axis=2, ddof=1) / np.sqrt(n)
        lo, hi = d.mean(axis=2) - half, d.mean(axis=2) + half
        one = family([(Gap("s", {}, {}, str(i)), pd.Series(d[0, i])) for i in range(m)])
        assert np.allclose(one["lo"], lo[0]) and np.allclose(one["hi"], hi[0])
        wrong = np.vectorize(lambda a, b: gap_verdict(a, b, "beats", rope=0.0) in ("agrees", "disagrees"))(lo, hi)
        rate = wrong.any(axis=1).mean()
        assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps), rate
        # Testing each gap at 95% instead, as a naive reading would, inflates the family's rate.
        naive_half = stats.t.ppf(0.975, n - 1) * d.std(axis=2, ddof=1) / np.sqrt(n)
        naive = ((d.mean(axis=2) - naive_half > 0) | (d.mean(axis=2) + naive_half < 0)).any(axis=1).mean()
        assert naive > 0.15


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


def test_a_budget_gap_is_settled_only_when_it_held_within_the_rope_with_the_same_verdict():
    """analysis/patches_claims.settled on hand-made family rows (synthetic numbers)."""
    settled = _analysis_module("patches_claims").settled

    rows = [("budget", "conv - identity (3 ep)", 3, 11.4, 2.4, 20.5),
            ("budget", "conv - identity (10 ep)", 10, 10.8, 6.7, 14.9),   # held: settled
            ("budget", "attention - conv (3 ep)", 3, -6.4, -13.2, 0.5),
            ("budget", "attention - conv (10 ep)", 10, -2.5, -4.5, -0.5),  # moved 3.9: not
            ("budget", "mlp - conv (3 ep)", 3, -1.5, -6.7, 3.7),
            ("budget_long", "mlp - conv (30 ep)", 30, -1.2, -1.9, -0.5),   # within 1, verdict changed
            ("baselines", "pool - identity", np.nan, 8.0, 5.0, 11.0)]     # not a budget study
    gaps = pd.DataFrame(rows, columns=["study", "gap", "epochs", "diff", "lo", "hi"]).assign(kind="beats")
    got = settled(gaps).tolist()
    assert got[1] is True and got[3] is False and got[5] is False
    assert all(pd.isna(got[i]) for i in (0, 2, 4, 6))  # no smaller budget, or not a budget gap


def _analysis_module(name: str):
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    return importlib.import_module(name)


def test_budget_trend_lays_each_gap_out_by_epochs():
    """analysis/patches_claims.budget_trend on hand-made family rows (synthetic numbers): one row
    per compared pair, one column per budget, budget studies only, a missing budget left empty."""
    trend_of = _analysis_module("patches_claims").budget_trend
    rows = [("budget", "conv - identity (3 ep)", 3, 11.4, 2.4, 20.5, 3, 3.0, 21.4),
            ("budget", "conv - identity (10 ep)", 10, 10.8, 6.7, 14.9, 3, 1.2, 20.3),
            ("budget_long", "conv - identity (30 ep)", 30, 10.1, 8.0, 12.2, 3, 2.0, 4.0),
            ("budget", "mlp - conv (10 ep)", 10, -1.0, -5.0, 3.0, 3, 1.0, 1.2),
            ("baselines", "pool - identity", np.nan, 8.0, 5.0, 11.0, 3, 1.8, 3.7)]
    gaps = pd.DataFrame(rows, columns=["study", "gap", "epochs", "diff", "lo", "hi", "n_seeds",
                                       "late gain a", "late gain b"])
    t = trend_of(gaps).set_index("gap")
    assert list(t.columns) == ["3 epochs", "10 epochs", "30 epochs"]
    assert list(t.index) == ["conv - identity", "mlp - conv"]
    assert t.loc["conv - identity", "30 epochs"] == "+10.1 (+8.0 to +12.2), n=3, late gain 4.0"
    assert t.loc["conv - identity", "3 epochs"].endswith("late gain 21.4")
    assert pd.isna(t.loc["mlp - conv", "30 epochs"])
    assert trend_of(gaps[gaps["study"] == "baselines"]).empty


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


def test_weighted_family_shares_alpha_and_weighted_holm_reduces_to_holm():
    """Weighted Bonferroni: gap i's interval at 1 - alpha w_i; weighted Holm (Holm 1979) with
    equal weights is the plain procedure, and by hand otherwise (synthetic differences)."""
    from mixerlab.analysis.stats import holm

    rng = np.random.default_rng(2)
    diffs = [pd.Series(rng.normal(mu, 0.5, 4)) for mu in (2.0, 0.3, 0.1)]
    w = np.array([0.8, 0.1, 0.1])
    out = family([(Gap("s", {}, {}, str(i)), d) for i, d in enumerate(diffs)], alpha=0.05, weights=w)
    for r, d, wi in zip(out.itertuples(), diffs, w):
        half = stats.t.ppf(1 - 0.05 * wi / 2, 3) * d.std(ddof=1) / np.sqrt(4)
        assert r.hi - r.lo == pytest.approx(2 * half) and r.confidence == pytest.approx(1 - 0.05 * wi)
    equal = family([(Gap("s", {}, {}, str(i)), d) for i, d in enumerate(diffs)], alpha=0.05)
    assert out.attrs["confidence"] is None  # no one family-wide level under unequal shares
    assert equal.attrs["confidence"] == pytest.approx(1 - 0.05 / 3)
    assert (out.iloc[0]["hi"] - out.iloc[0]["lo"]) < (equal.iloc[0]["hi"] - equal.iloc[0]["lo"])
    assert (out.iloc[1]["hi"] - out.iloc[1]["lo"]) > (equal.iloc[1]["hi"] - equal.iloc[1]["lo"])
    p = [0.01, 0.04, 0.03]
    assert holm(p, [1, 1, 1]).tolist() == pytest.approx(holm(p).tolist())
    # Order by p / w: 0.01/0.8 = 0.0125 (all weight left: 1.0), 0.03/0.1 = 0.3 (left 0.2),
    # 0.04/0.1 = 0.4 (left 0.1); adjusted 0.0125, max(0.3*0.2, .)=0.06, max(0.4*0.1, 0.06)=0.06.
    assert holm(p, [0.8, 0.1, 0.1]).tolist() == pytest.approx([0.0125, 0.06, 0.06])
    with pytest.raises(ValueError, match="summing to 1"):
        family([(Gap("s", {}, {}, "0"), diffs[0])], weights=[0.5])


def test_confirmatory_gaps_get_their_share_and_the_rest_share_what_is_left():
    """analysis/patches_claims.weights: equal shares without a confirmatory claim; with one,
    CONFIRMATORY_SHARE among its gaps and the rest among the exploratory ones."""
    from mixerlab.analysis.claims import Claim

    mod = _analysis_module("patches_claims")
    g = Gap("s", {}, {}, "x")
    explore = [mod.Claim("e", "", "beats", [g, g, g, g])]
    assert mod.weights(explore) is None
    c13 = Gap("mixer_confirm", {}, {}, "x")
    w = mod.weights(explore + [Claim("c", "", "within", [c13, c13], confirmatory=True)])
    share = mod.CONFIRMATORY_SHARE["mixer_confirm"]
    assert w.tolist() == pytest.approx([(1 - share) / 4] * 4 + [share / 2] * 2) and w.sum() == pytest.approx(1)
    # A second confirmatory study takes its share out of the exploratory gaps' and leaves the
    # first's as stated.
    c11 = Gap("pixels_rf", {}, {}, "y")
    w = mod.weights(explore + [Claim("c", "", "within", [c13, c13], confirmatory=True),
                               Claim("d", "", "beats", [c11], confirmatory=True), Claim("e", "", "beats", [c11], confirmatory=True)])
    s11 = mod.CONFIRMATORY_SHARE["pixels_rf"]
    assert w.tolist() == pytest.approx([(1 - share - s11) / 4] * 4 + [share / 2] * 2 + [s11 / 2] * 2)
    # Confirmatory gaps alone: their stated shares, scaled to the whole alpha.
    w = mod.weights([Claim("c", "", "within", [c13], confirmatory=True), Claim("d", "", "beats", [c11], confirmatory=True)])
    assert w.tolist() == pytest.approx([share / (share + s11), s11 / (share + s11)])
    # A confirmatory study without a stated share is refused, not given one after its numbers.
    with pytest.raises(ValueError, match="no stated share"):
        mod.weights([Claim("c", "", "beats", [g], confirmatory=True)])


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


def test_study_11_decides_on_its_fixed_seeds_when_its_gap_held_from_10_to_20_epochs():
    """analysis/patches_claims on synthetic study 11 frames: two confirmatory claims (patch 1,
    patch 2 beat patch 4), intervals on seeds 1-6 only at its share of alpha; arms that still
    climb are decided only when the 10-epoch (tuning) gap is within the ROPE of the 20-epoch
    gap and on its side of 0."""
    mod = _analysis_module("patches_claims")
    frames = _pixels_rf_frames(gap20=2.5, gap10=2.2, rng=np.random.default_rng(11))
    claims = mod.claim_list(frames)
    assert [c.confirmatory for c in claims] == [True, True]
    table, gaps = mod.evaluate(claims, frames)
    assert gaps["n_seeds"].tolist() == [6, 6]  # seeds 7 and 8 were not fixed in advance
    assert gaps["confidence"].tolist() == pytest.approx([0.975, 0.975])  # alone: scaled to all of alpha
    assert gaps["settled"].tolist() == [True, True]
    assert table["verdict"].tolist() == ["agrees", "equivalent"]  # p2 - p4: 0.5 on every seed
    # The same 20-epoch numbers, but the gap was 1.2 points larger at 10 epochs: not settled, so
    # arms still climbing leave it undecided whatever the interval says.
    frames = _pixels_rf_frames(gap20=2.5, gap10=3.8, rng=np.random.default_rng(11))
    table, gaps = mod.evaluate(mod.claim_list(frames), frames)
    assert gaps["settled"].tolist() == [False, True]
    assert table["intervals say"].iloc[0] == "agrees"
    assert table["verdict"].iloc[0] == "undecided (arms still climbing)"
    # Turned around (same size, other side of 0): not settled either.
    frames = _pixels_rf_frames(gap20=0.3, gap10=-0.3, rng=np.random.default_rng(11))
    assert mod.evaluate(mod.claim_list(frames), frames)[1]["settled"].tolist() == [False, False]


def test_study_11_is_not_claimed_from_its_tuning_stage_alone():
    """Before its measured stage runs, a two-stage study's compared trials are its tuning
    trials; the study 11 claims read only measured ones, so none is made."""
    mod = _analysis_module("patches_claims")
    frames = _pixels_rf_frames(gap20=2.5, gap10=2.2, rng=np.random.default_rng(0))
    assert mod.claim_list({"pixels_rf": frames["pixels_rf (tuning stage)"]}) == []


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


def test_the_answer_passes_a_two_stage_studys_tuning_trials_at_the_chosen_setting():
    """analysis/patches_answer.tuning_frame on a synthetic two-stage table: the tuning trials at
    the lr each arm chose by validation accuracy; None for a one-stage study."""
    from types import SimpleNamespace

    mod = _analysis_module("patches_answer")
    rows = [{"trial_id": f"t{p}{lr}", "stage": "tune", "patch_size": p, "lr": lr, "seed": 0,
             "val_acc": 80 + 10 * (lr == best), "test_acc": 79 + 10 * (lr == best)}
            for p, best in ((1, 0.01), (4, 0.03)) for lr in (0.01, 0.03)]
    rows += [{"trial_id": f"m{p}{s}", "stage": "measure", "patch_size": p, "lr": lr, "seed": s,
              "val_acc": 90.0, "test_acc": 89.0} for p, lr in ((1, 0.01), (4, 0.03)) for s in (1, 2)]
    df = pd.DataFrame(rows).assign(status="ok", study="synthetic")
    spec = SimpleNamespace(nuisance={"lr": [0.01, 0.03]})
    got = mod.tuning_frame(mod.comparison(df, spec))
    assert sorted(zip(got["patch_size"], got["lr"])) == [(1, 0.01), (4, 0.03)]
    assert (got["stage"] == "tune").all()
    assert mod.tuning_frame(mod.comparison(df[df["stage"] == "measure"], spec)) is None


def test_the_confirmatory_gap_settles_against_its_own_smaller_budget():
    """Study 13's gaps are labelled apart, so its 30-epoch gap is compared with its own 10-epoch
    gap, never with study 7's (synthetic numbers)."""
    settled = _analysis_module("patches_claims").settled
    rows = [("budget", "attention - conv (10 ep)", 10, -2.5, -4.6, -0.4),
            ("mixer_confirm", "attention - conv [fresh seeds] (10 ep)", 10, -2.4, -3.0, -1.8),
            ("mixer_confirm", "attention - conv [fresh seeds] (30 ep)", 30, -1.9, -2.7, -1.1),
            ("budget_long", "attention - conv (30 ep)", 30, -1.9, -5.0, 1.2)]
    gaps = pd.DataFrame(rows, columns=["study", "gap", "epochs", "diff", "lo", "hi"]).assign(kind="within")
    got = settled(gaps).tolist()
    assert pd.isna(got[0]) and pd.isna(got[1])
    assert got[2] is True    # both of its own intervals wholly outside the ROPE
    assert got[3] is True    # study 10's: within the ROPE of study 7's, both intervals undecided


def test_a_confirmatory_study_decides_with_its_share_and_the_rest_keep_theirs():
    """analysis/patches_claims on synthetic compared-trial frames: study 13's two gaps at
    98% intervals (0.8 of alpha 0.05 over two gaps), the exploratory gaps at 1 - 0.01/m; a
    clear 2-point gap that held from 10 to 30 epochs is decided (disagrees with 'within')
    although both arms still climb."""
    mod = _analysis_module("patches_claims")
    rng = np.random.default_rng(4)
    rows = []
    for e, gap in ((10, -2.4), (30, -1.9)):
        for s in (4, 5, 6):
            conv = 90.0 + rng.normal(0, 0.3)
            rows += [{"variant": "conv", "epochs": e, "seed": s, "test_acc": conv, "late_gain": 1.5},
                     {"variant": "attention", "epochs": e, "seed": s,
                      "test_acc": conv + gap + rng.normal(0, 0.1), "late_gain": 2.5}]
    confirm = pd.DataFrame(rows).assign(status="ok")
    base = _trials({"conv": [85.0, 85.5, 86.0], "identity": [72.0, 73.0, 71.5]})
    base["late_gain"] = 0.2
    frames = {"mixer_confirm": confirm, "baselines": base}
    claims = mod.claim_list(frames)
    assert [c.confirmatory for c in claims].count(True) == 2
    table, gaps = mod.evaluate(claims, frames)
    conf = gaps[gaps["study"] == "mixer_confirm"]
    assert conf["confidence"].tolist() == pytest.approx([0.98, 0.98])
    explore = gaps[gaps["study"] != "mixer_confirm"]
    assert explore["confidence"].tolist() == pytest.approx([1 - 0.01 / len(explore)] * len(explore))
    by_claim = table.set_index("claim")["verdict"]
    thirty = next(c for c in by_claim.index if "(30 epochs)" in c)
    assert by_claim[thirty] == "disagrees"  # settled against its own 10-epoch gap
    ten = next(c for c in by_claim.index if "(10 epochs)" in c)
    assert by_claim[ten] == "undecided (arms still climbing)"  # no smaller budget to settle on
    assert "2 confirmatory gap(s) at 98.00% each" in mod.summary(table, gaps)[0]
    # With study 11 given as well, study 13's share is as stated and the exploratory gaps share
    # what is left (0.04 of alpha).
    frames |= _pixels_rf_frames(gap20=2.5, gap10=2.2, rng=np.random.default_rng(1))
    table, gaps = mod.evaluate(mod.claim_list(frames), frames)
    by_study = gaps.groupby("study")["confidence"]
    assert by_study.min()["mixer_confirm"] == pytest.approx(0.98)
    assert by_study.max()["pixels_rf"] == pytest.approx(1 - 0.05 * 0.16 / 2)
    explore = gaps[~gaps["study"].isin(["mixer_confirm", "pixels_rf"])]
    assert explore["confidence"].tolist() == pytest.approx([1 - 0.05 * 0.04 / len(explore)] * len(explore))
    said = mod.summary(table, gaps)[0]
    assert "2 confirmatory (mixer_confirm) gap(s) at 98.00% each" in said
    assert "2 confirmatory (pixels_rf) gap(s) at 99.60% each" in said


def test_arm_trend_gives_each_arm_by_budget_and_what_more_training_bought():
    """analysis/patches_claims.arm_trend on hand-made comparison frames (synthetic numbers):
    budget and budget_long form one series, mixer_confirm its own; the bracket is the change of
    the mean from the series' next smaller budget; the sentence's range and count are computed."""
    claims = _analysis_module("patches_claims")

    def frame(study, arms):
        return pd.DataFrame([{"study": study, "status": "ok", "variant": v, "epochs": e, "seed": s,
                              "test_acc": acc, "late_gain": gain}
                             for (v, e), (accs, gain) in arms.items() for s, acc in enumerate(accs)])

    frames = {"budget": frame("budget", {("conv", 3): ([86.0, 88.0], 3.0), ("conv", 10): ([90.0, 91.0], 1.0),
                                         ("identity", 10): ([80.0, 80.0], 20.0)}),
              "budget_long": frame("budget_long", {("conv", 30): ([92.0, 92.0], 2.5),
                                                   ("identity", 30): ([83.0, 83.0], 9.0)}),
              "mixer_confirm": frame("mixer_confirm", {("attention", 10): ([88.0], 2.0),
                                                       ("attention", 30): ([88.3], 3.0)}),
              "baselines": frame("baselines", {("conv", 12): ([83.0], 0.8)})}
    t = claims.arm_trend(frames).set_index("arm")
    assert list(t.columns) == ["3 epochs", "10 epochs", "30 epochs"]
    assert list(t.index) == ["attention [fresh seeds]", "conv", "identity"]  # an arm's series side by side
    assert t.loc["conv", "3 epochs"] == "87.00, late gain 3.0, n=2"
    assert t.loc["conv", "10 epochs"] == "90.50 (+3.50), late gain 1.0, n=2"
    assert t.loc["conv", "30 epochs"] == "92.00 (+1.50), late gain 2.5, n=2"
    assert t.loc["attention [fresh seeds]", "30 epochs"].startswith("88.30 (+0.30)")
    text = claims.arm_trend_text(claims.arm_trend(frames).attrs["long"])
    # the real mixers only (identity's +3.00 is left out); 1 of 2 above 0.5
    assert "from 10 to 30 epochs" in text.lower() and "+0.30 to +1.50" in text and "1 of 2" in text
    assert claims.arm_trend({"baselines": frames["baselines"]}).empty
