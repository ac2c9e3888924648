"""Claims: stated rules on seed-paired gaps, decided in one family, that can fail both ways.

A claim is a sentence from a paper made testable: a list of paired gaps (arm a minus arm b,
test accuracy in points, matched by seed) and a kind:

- ``beats``: a is better than b. **agrees** when the gap's adjusted interval lies above 0,
  **disagrees** when it lies below 0, **equivalent** when it lies inside the region of
  practical equivalence ``[-rope, +rope]`` (checked first: a resolved gap smaller than the
  ROPE does not make a paper's "better" true), else **undecided**.
- ``within``: the arms are practically the same. **agrees** when every gap's interval lies
  inside the ROPE, **disagrees** when some gap's interval lies wholly outside it (a
  difference larger than the ROPE), else **undecided**.

One family for the whole answer: with ``m`` gaps in all, each interval is a paired t-interval
at confidence ``1 - alpha / m`` (Bonferroni), so every interval statement the verdicts read
holds at once with probability at least ``1 - alpha``; Holm-adjusted p-values of the same
family (Holm 1979) are listed beside them. A family may share ``alpha`` unequally (weighted
Bonferroni: gap i's interval at ``1 - alpha w_i`` with the weights summing to 1; still at
most ``alpha`` in all, under any dependence), e.g. most of it to a confirmatory replication
stated before its numbers and the rest to the exploratory gaps that suggested it. Bonferroni intervals are wide with few seeds; that
is the price of ~20 statements at once, and the reason a verdict can be "undecided".

Convergence gates a verdict: an arm still climbing when its training ended
(:mod:`mixerlab.convergence`) measures how fast it learns, so a claim with such an arm says
so instead of deciding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from mixerlab.analysis.stats import holm

# Region of practical equivalence, in test-accuracy points: one point is about the smallest
# difference the ConvMixer paper's own ablations treat as meaningful (e.g. BatchNorm vs
# LayerNorm, 1.44 points on CIFAR-10; Trockman & Kolter, arXiv:2201.09792, Sec. 3), and two
# to ten times the seed-to-seed spread of one arm here.
ROPE = 1.0
ALPHA = 0.05


@dataclass
class Gap:
    """One seed-paired difference a - b of ``metric`` within one study frame."""

    study: str
    a: dict
    b: dict
    label: str = ""
    # Only these seeds (None: every shared seed): e.g. the seeds an adaptive study fixed before
    # its first look, so a fixed-n interval stays valid whatever seeds it added after looking.
    seeds: tuple[int, ...] | None = None
    # The same pair at a smaller training budget (another frame), for whether the gap has
    # stopped moving with training (the answer's ``settled`` rule).
    shorter: Gap | None = None


@dataclass
class Claim:
    text: str  # the claim as the paper makes it
    source: str  # who claims it, with the citation
    kind: str  # "beats" or "within"
    gaps: list[Gap] = field(default_factory=list)
    # A confirmatory claim: stated, with its study, before any of its numbers existed, and
    # tested on trials no exploratory claim used (its share of alpha: the answer's weights).
    confirmatory: bool = False


def select(df: pd.DataFrame, at: dict) -> pd.DataFrame:
    """The rows of ``df`` with every factor of ``at`` at its value (none if a factor is absent)."""
    mask = pd.Series(True, index=df.index)
    for k, v in at.items():
        mask &= (df[k] == v) if k in df else False
    return df[mask]


def paired_diffs(df: pd.DataFrame, a: dict, b: dict, metric: str = "test_acc",
                 seeds: tuple[int, ...] | None = None) -> pd.Series:
    """a - b per shared seed (ok trials only; only ``seeds`` where given)."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    if seeds is not None:
        ok = ok[ok["seed"].isin(seeds)]
    sa, sb = (select(ok, at).groupby("seed")[metric].mean() for at in (a, b))
    shared = sa.index.intersection(sb.index)
    return (sa[shared] - sb[shared]).astype(float)


def family(gaps: list[tuple[Gap, pd.Series]], alpha: float = ALPHA, weights=None) -> pd.DataFrame:
    """Every gap of the answer with its mean, its unadjusted p, Holm's p over the family and
    its Bonferroni interval at ``1 - alpha / m``; with ``weights`` (one per gap, summing to 1)
    gap i's interval is at ``1 - alpha w_i`` and Holm's p is the weighted Holm's."""
    m = max(len(gaps), 1)
    w = np.full(len(gaps), 1 / m) if weights is None else np.asarray(weights, float)
    if len(w) != len(gaps) or (w <= 0).any() or (len(gaps) and not np.isclose(w.sum(), 1.0)):
        raise ValueError("family: give one positive weight per gap, summing to 1")
    rows = []
    for (gap, d), wi in zip(gaps, w):
        n, mean = len(d), float(d.mean()) if len(d) else np.nan
        sd = float(d.std(ddof=1)) if n > 1 else np.nan
        se = sd / np.sqrt(n) if n > 1 else np.nan
        if n > 1 and se > 0:
            p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
            half = float(stats.t.ppf(1 - alpha * wi / 2, n - 1) * se)
        elif n > 1:  # identical differences on every seed: no spread to test against
            p, half = (0.0 if mean != 0 else 1.0), 0.0
        else:
            p, half = np.nan, np.nan
        rows.append({"study": gap.study, "gap": gap.label, "n_seeds": n, "diff": mean,
                     "lo": mean - half, "hi": mean + half, "p": p, "confidence": 1 - alpha * wi})
    out = pd.DataFrame(rows)
    if len(out):
        ok = out["p"].notna()
        out["p_holm"] = np.nan
        out.loc[ok, "p_holm"] = holm(out.loc[ok, "p"].to_numpy(), w[ok.to_numpy()])
    # One family-wide confidence exists only when alpha is shared equally; otherwise each gap's
    # own is in its "confidence" column.
    out.attrs["m"] = m
    out.attrs["confidence"] = 1 - alpha * w[0] if len(w) and np.allclose(w, w[0]) else None
    return out


def gap_verdict(lo: float, hi: float, kind: str, rope: float = ROPE) -> str:
    """The verdict one adjusted interval gives (see the module)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "undecided"
    inside = -rope <= lo and hi <= rope
    if kind == "within":
        return "agrees" if inside else "disagrees" if (lo > rope or hi < -rope) else "undecided"
    if inside:
        return "equivalent"
    return "agrees" if lo > 0 else "disagrees" if hi < 0 else "undecided"


def claim_verdict(rows: pd.DataFrame, kind: str, rope: float = ROPE) -> str:
    """A claim's verdict from its gaps' adjusted intervals."""
    each = [gap_verdict(r.lo, r.hi, kind, rope) for r in rows.itertuples()]
    if not each:
        return "undecided"
    if kind == "within":
        return "disagrees" if "disagrees" in each else "agrees" if set(each) == {"agrees"} else "undecided"
    return each[0] if len(set(each)) == 1 else "undecided"
