"""``mixerlab plan``: a claim's power by the exact noncentral t, checked against simulated
t intervals decided by the one verdict rule, and the command on a synthetic pilot study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mixerlab.analysis.power import (
    claim_power,
    fixed_n,
    seeds_for,
    stability_power,
    stability_seeds_for,
)
from mixerlab.analysis.verdict import verdict

ROOT = Path(__file__).resolve().parents[1]


def _simulated(n, gap, sd, kind, rope, alpha, studies=20_000, seed=0) -> dict:
    """Verdict rates of ``studies`` simulated studies of ``n`` seeds: normal seed-paired
    differences, their paired t interval at ``1 - alpha``, decided by ``verdict``."""
    d = np.random.default_rng(seed).normal(gap, sd, (studies, n))
    m, s = d.mean(1), d.std(1, ddof=1)
    half = stats.t.ppf(1 - alpha / 2, n - 1) * s / np.sqrt(n)
    said = pd.Series([verdict(lo, hi, kind, rope) for lo, hi in zip(m - half, m + half)])
    return said.value_counts(normalize=True).to_dict()


def _tol(p: float, studies: int = 20_000) -> float:
    return 4 * np.sqrt(max(p * (1 - p), 1e-4) / studies) + 0.003


# (n, gap, sd, kind, rope, alpha_gap, the verdict the gap points to): exact cases
EXACT = [(3, 2.0, 0.5, "beats", 1.0, 0.00625, "agrees"),  # pixels_rf-like, alpha 0.0125 / 2
         (4, 1.4, 0.6, "beats", 1.0, 0.00625, "agrees"),
         (6, -2.0, 1.5, "beats", 1.0, 0.05, "disagrees"),
         (3, -1.9, 0.3, "within", 1.0, 0.0125, "disagrees"),  # mixer_confirm-like
         (5, 1.5, 0.6, "within", 1.0, 0.02, "disagrees")]


@pytest.mark.parametrize("n, gap, sd, kind, rope, alpha, aim", EXACT)
def test_the_exact_power_matches_simulated_t_intervals(n, gap, sd, kind, rope, alpha, aim):
    sim = _simulated(n, gap, sd, kind, rope, alpha).get(aim, 0.0)
    p = claim_power(n, gap, sd, kind, rope, alpha)
    assert 0.1 < p < 0.99  # a point where power is being tested, not saturated
    assert p == pytest.approx(sim, abs=_tol(sim))


# TOST's P1 + P2 - 1: a lower bound, close once power is high
TOST = [(6, 0.2, 0.5, "within", 1.0, 0.05), (12, 0.2, 0.8, "within", 1.0, 0.05),
        (8, 0.3, 0.5, "beats", 1.0, 0.0125)]  # beats with |gap| <= rope: "equivalent"


@pytest.mark.parametrize("n, gap, sd, kind, rope, alpha", TOST)
def test_equivalence_power_is_a_close_lower_bound(n, gap, sd, kind, rope, alpha):
    aim = "agrees" if kind == "within" else "equivalent"
    sim = _simulated(n, gap, sd, kind, rope, alpha).get(aim, 0.0)
    p = claim_power(n, gap, sd, kind, rope, alpha)
    assert p <= sim + _tol(sim)
    assert sim > 0.6 and p == pytest.approx(sim, abs=0.03)


def test_stability_power_is_the_90_percent_interval_inside_the_band():
    for n, change, sd, band in ((5, 0.1, 0.3, 0.5), (10, -0.2, 0.4, 0.5)):
        sim = _simulated(n, change, sd, "within", band, 0.10).get("agrees", 0.0)
        p = stability_power(n, change, sd, band)
        assert p <= sim + _tol(sim) and p == pytest.approx(sim, abs=0.03)


def test_seeds_for_is_the_smallest_n_reaching_the_target():
    cases = [(0.8, 1.38, 0.574, "beats", 1.0, 0.00625), (0.9, -1.9, 0.3, "within", 1.0, 0.0125),
             (0.8, 0.2, 0.5, "within", 1.0, 0.05)]
    for target, gap, sd, kind, rope, alpha in cases:
        n = int(seeds_for(target, gap, sd, kind, rope, alpha))
        assert claim_power(n, gap, sd, kind, rope, alpha) >= target
        assert n == 3 or claim_power(n - 1, gap, sd, kind, rope, alpha) < target
    assert seeds_for(0.8, 0.05, 5.0, "beats", 1.0, 0.05) == np.inf  # beyond 100 seeds
    assert seeds_for(0.8, 2.0, 0.0, "beats", 1.0, 0.01) == 3  # no spread: decided at once
    n = int(stability_seeds_for(0.8, 0.1, 0.3, 0.5))
    assert stability_power(n, 0.1, 0.3, 0.5) >= 0.8 > stability_power(n - 1, 0.1, 0.3, 0.5)


def _old_fixed_n(diff, sd, alpha, power=0.8, most=100):
    """benchmarks/adaptive_savings.py's fixed_n before it moved into the library."""
    for n in range(3, most + 1):
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        ncp = abs(diff) / sd * np.sqrt(n) if sd > 0 else np.inf
        if stats.nct.sf(crit, n - 1, ncp) + stats.nct.cdf(-crit, n - 1, ncp) >= power:
            return float(n)
    return np.inf


def test_fixed_n_moved_into_the_library_with_its_behaviour(monkeypatch):
    for args in [(1.0, 1.0, 0.05), (-2.0, 4.0, 0.05), (0.0, 1.0, 0.05), (0.5, 0.3, 0.01),
                 (1.38, 0.574, 0.00625), (0.3, 0.2, 0.05 / 6), (1.0, 0.5, 0.0125, 0.9)]:
        assert fixed_n(*args) == _old_fixed_n(*args)
    # Where scipy's nct gave nan far in a tail, the old loop read "not reached" and asked too
    # many seeds: 1.9 points at sd 0.23 is decided at 3 seeds with power 0.99996, not 5.
    assert _old_fixed_n(1.9, 0.23, 0.05) == 5 and fixed_n(1.9, 0.23, 0.05) == 3
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import adaptive_savings

    assert adaptive_savings.fixed_n is fixed_n


# ---- the command on a synthetic pilot ---------------------------------------------------------

SPEC = """\
name: planned
question: Does conv beat attention?
dataset: {name: synthetic, synthetic_size: 64}
model: {depth: 1, width: 8}
grid: {mixer: [conv, attention], epochs: [2, 6]}
seeds: 4
"""
CLAIMS = """\
claims:
  - name: C1
    text: conv beats attention
    source: a test
    kind: beats
    gaps: [{a: {mixer: conv}, b: {mixer: attention}, label: conv-attn}]
    rope: 1.0
    alpha: 0.02
    budgets: [2, 6]
"""
# Seed-paired differences conv - attention by epochs (a seed effect common to both arms).
GAP = {6: [1.5, 2.6, 1.0, 2.2, 1.2], 2: [1.9, 2.9, 1.1, 2.9, 1.6]}


def _pilot(root: Path, gaps: dict, name: str = "synthetic", arms=("conv", "attention"),
           seeds=None) -> Path:
    """A study folder with trials.parquet and spec.yaml: arm a = arm b + the gap on each seed."""
    rows = []
    for epochs, d in gaps.items():
        for seed, g in zip(seeds or range(len(d)), d):
            base = 80.0 + epochs + 0.7 * seed
            for arm, acc in zip(arms, (base + g, base)):
                rows.append({"trial_id": f"{arm}-{epochs}-{seed}", "status": "ok", "variant": arm,
                             "seed": seed, "epochs": epochs, "lr": 0.01, "test_acc": acc})
    path = root / name
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(path / "trials.parquet")
    (path / "spec.yaml").write_text(f"name: {name}\nquestion: Which mixer?\n")
    return path


def _spec(tmp_path: Path, text: str = SPEC + CLAIMS) -> Path:
    f = tmp_path / "planned.yaml"
    f.write_text(text)
    return f


def _row(out: str, label: str) -> list[str]:
    """The first table row of ``out`` whose second cell is ``label``, split on spaces."""
    return next(line.split() for line in out.splitlines() if line.split()[1:2] == [label])


def _beats_n(target, gap, sd, alpha):
    """The seeds P(T > t(1 - alpha / 2)) reaches ``target`` at, written out independently."""
    for n in range(3, 101):
        c = stats.t.ppf(1 - alpha / 2, n - 1)
        if stats.nct.sf(c, n - 1, abs(gap) * np.sqrt(n) / sd) >= target:
            return n


def test_plan_prints_the_seeds_each_gap_and_its_stability_need(tmp_path, run_cli):
    pilot = _pilot(tmp_path, GAP)
    code, out, err = run_cli("plan", _spec(tmp_path), "--pilot", pilot, "--no-cost")
    assert code == 0, err
    d6, change = np.array(GAP[6]), np.array(GAP[6]) - np.array(GAP[2])
    gap, sd = d6.mean(), d6.std(ddof=1)
    row = _row(out, "conv-attn")  # claim gap aims epochs n gap sd alpha power n80 n90 x1.5: n80 n90
    assert row[:5] == ["C1", "conv-attn", "agrees", "6", "5"]
    assert float(row[5]) == pytest.approx(gap, abs=0.005) and float(row[6]) == pytest.approx(sd, rel=0.005)
    expected = [_beats_n(t, gap, s, 0.02) for s in (sd, 1.5 * sd) for t in (0.8, 0.9)]
    assert [int(v) for v in row[9:13]] == expected
    assert expected[0] > 3  # a pilot where the seed count is a real answer
    stable = [line.split() for line in out.splitlines() if "2 -> 6" in line][0]
    assert stable[:2] == ["C1", "conv-attn"] and float(stable[6]) == pytest.approx(change.mean(), abs=0.005)
    m, s = change.mean(), change.std(ddof=1)
    want = [stability_seeds_for(t, m, k * s, 0.5) for k in (1, 1.5) for t in (0.8, 0.9)]
    assert [float(v) if v != ">100" else np.inf for v in stable[10:14]] == want
    assert f"needs at least {expected[0]} seeds for 80% and {expected[1]} for 90%" in out


def test_plan_pools_pilots_and_says_which_budget_it_used(tmp_path, run_cli):
    one = _pilot(tmp_path, {4: GAP[6]})  # neither of the claim's budgets: its largest, with a note
    two = _pilot(tmp_path, {4: [1.8, 1.4, 2.0]}, name="synthetic_more", seeds=[7, 8, 9])
    code, out, err = run_cli("plan", _spec(tmp_path), "--pilot", one, two, "--no-cost")
    assert code == 0, err
    row = _row(out, "conv-attn")
    pooled = np.array(GAP[6] + [1.8, 1.4, 2.0])
    assert row[3:5] == ["4", "8"] and float(row[5]) == pytest.approx(pooled.mean(), abs=0.005)
    assert "used 4 epochs" in out and "pooled over synthetic (5) + synthetic_more (3)" in out
    assert "stability not sized" in out  # one budget in every pilot


BAD = [("no-claims", SPEC, None, "states no claims"),
       ("missing-pilot", SPEC + CLAIMS, "missing", "not a folder"),
       ("other-arms", SPEC + CLAIMS, "other", "no pilot has both arms"),
       ("one-seed", SPEC + CLAIMS, "one", "only one seed")]


@pytest.mark.parametrize("case, text, pilot, message", BAD)
def test_bad_input_is_one_line_and_exit_2(case, text, pilot, message, tmp_path, run_cli):
    folder = {"missing": tmp_path / "no_such_study",
              "other": lambda: _pilot(tmp_path, GAP, arms=("mlp", "identity")),
              "one": lambda: _pilot(tmp_path, {6: [1.0]})}.get(pilot, lambda: _pilot(tmp_path, GAP))
    folder = folder() if callable(folder) else folder
    code, out, err = run_cli("plan", _spec(tmp_path, text), "--pilot", folder, "--no-cost")
    assert code == 2 and out == ""
    assert err.startswith("mixerlab plan: error: ") and err.count("\n") == 1 and message in err
    assert "Traceback" not in err
