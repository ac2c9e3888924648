"""benchmarks/claim_validity.py: the Monte-Carlo check of claim verdicts, at a small size."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import each other by file name

import claim_validity as cv  # noqa: E402

from mixerlab.analysis.claims import decide_claim  # noqa: E402


def test_claim_verdicts_hold_their_alpha_on_synthetic_studies(tmp_path, capsys):
    """80 synthetic studies a case through decide_claim: every error rate's 95% interval
    reaches down to its alpha (exit 0), the table has every case, the stability check and
    the anytime look only ever withhold "agrees", and a 2-sd gap is found at 8 seeds. The
    one-budget rows' shortcut (verdict_at_largest of a two-budget call) is what a one-budget
    claim gets."""
    out = tmp_path / "claims.csv"
    assert cv.main(["--studies", "80", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    t = pd.read_csv(out)
    assert len(t) == 60 and printed.count("\n| ") == len(t) + 1  # the header and one line a row
    assert set(t["part"]) == {"a", "b", "c", "d"} and set(t["n_seeds"]) == set(cv.SEEDS)
    errors = t[t["bound"].notna()]
    assert len(errors) == 48 and (errors["mc_lo"] <= errors["bound"]).all() and not t["fails"].any()
    key = ["part", "kind", "true_gap", "alpha", "n_seeds", "interval"]
    by = t.set_index(key + ["event"])["rate"].unstack("event")
    assert (by["agrees (stable)"] <= by["agrees"]).all()
    looked = by["interval above 0"].dropna()
    assert (by.loc[looked.index, "agrees"] <= looked).all()
    power = t[(t["part"] == "c") & (t["kind"] == "beats") & (t["n_seeds"] == 8) & (t["event"] == "agrees")]
    assert power["rate"].item() > 0.5

    rng = np.random.default_rng(1)
    d, base = cv.simulate(rng, 5, 0.4, 0.5, 0.3), 85 + rng.standard_normal((5, 2, 8))
    for c in (cv.CALLS[0], cv.CALLS[2], cv.CALLS[-1]):
        claim = cv.claim(c, 1.0)
        for i in range(5):
            df = cv.trials(d[i, :, :5], base[i, :, :5])
            both, _, _ = decide_claim(df, claim, cv.BUDGETS, cv.REGISTERED, c.anytime)
            one, _, _ = decide_claim(df[df["epochs"] == cv.BUDGETS[-1]], claim, cv.BUDGETS[-1:],
                                     cv.REGISTERED, c.anytime)
            assert one["verdict"] == both["verdict_at_largest"]
