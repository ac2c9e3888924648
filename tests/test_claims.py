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
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    from patches_claims import settled

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
