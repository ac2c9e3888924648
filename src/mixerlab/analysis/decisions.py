"""Which of a study's comparisons are decided: what adaptive seeding stops on.

A comparison is one of the report's seed-paired differences between two arms
(:meth:`~mixerlab.analysis.comparison.Stratum.pair_groups`): arm a's test accuracy minus arm
b's on the same seed, over the seeds both have, in seed order. Its interval is the
anytime-valid confidence sequence of the mean difference (:mod:`~mixerlab.analysis.confidence_sequence`),
which holds at every look at once, so adding seeds until it decides is not the "test again
after every seed" that manufactures findings. The error rate is controlled across the study's
``m`` comparisons by giving each ``alpha / m`` (Bonferroni: valid for any dependence between
them and at any stopping times, since each sequence is valid at all times at its own level).

Verdicts: *different* (the interval excludes 0), *equivalent* (it lies inside
``[-rope, +rope]``), else *undecided*; a comparison whose arms have ``max`` seeds stops there
(*max reached*). The running intersection only narrows, so a decision, once made, stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixerlab.analysis.comparison import Comparison
from mixerlab.analysis.confidence_sequence import confidence_sequence, decide

COLUMNS = ["by", "comparison", "a", "b", "n_seeds", "diff", "lo", "hi", "alpha", "decision",
           "stopped_at", "reason", "trials_a", "trials_b"]


@dataclass(frozen=True)
class Rule:
    """When a comparison is decided: the study-wide error rate, the region of practical
    equivalence (points of ``metric``) and the most seeds a comparison may take."""

    alpha: float = 0.05
    rope: float = 0.5
    max_seeds: int = 12
    metric: str = "test_acc"


def differences(arm_a: pd.DataFrame, arm_b: pd.DataFrame, metric: str = "test_acc") -> pd.Series:
    """``metric`` of a minus b on each seed both arms have (one ok trial each), by seed."""
    a = arm_a.drop_duplicates("seed", keep=False).set_index("seed")[metric]
    b = arm_b.drop_duplicates("seed", keep=False).set_index("seed")[metric]
    both = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna().sort_index()
    return both["a"] - both["b"]


def decisions(comparison: Comparison, rule: Rule) -> pd.DataFrame:
    """One row per comparison: seeds, mean difference, its anytime-valid interval at
    ``rule.alpha / m``, the decision, the seed count it was reached at, and why it stopped
    (or "still running"), with the trial ids of both arms (the sweep adds seeds to them)."""
    pairs = [(s.by, *p) for s in comparison.strata for p in s.pair_groups()]
    alpha = rule.alpha / max(1, len(pairs))
    rows = []
    for by, what, a, b, arm_a, arm_b in pairs:
        d = differences(arm_a, arm_b, rule.metric).to_numpy(float)
        lo, hi = confidence_sequence(d, alpha) if len(d) else (np.array([-np.inf]), np.array([np.inf]))
        verdicts = [decide(lo[i], hi[i], rule.rope) for i in range(len(lo))]
        decided = next((i + 1 for i, v in enumerate(verdicts) if v != "undecided"), None)
        verdict = verdicts[-1] if len(d) else "undecided"
        reason = verdict if verdict != "undecided" else (
            "max reached" if len(d) >= rule.max_seeds else "still running")
        rows.append({"by": by, "comparison": what, "a": a, "b": b, "n_seeds": len(d),
                     "diff": float(d.mean()) if len(d) else np.nan, "lo": float(lo[-1]),
                     "hi": float(hi[-1]), "alpha": alpha, "decision": verdict,
                     "stopped_at": decided, "reason": reason,
                     "trials_a": list(arm_a["trial_id"]), "trials_b": list(arm_b["trial_id"])})
    return pd.DataFrame(rows, columns=COLUMNS)


def decided_text(decided: pd.DataFrame) -> str:
    """'4/6 comparisons decided (3 different, 1 equivalent)'."""
    counts = decided["decision"].value_counts()
    parts = ", ".join(f"{counts[k]} {k}" for k in ("different", "equivalent") if k in counts)
    n = int((decided["decision"] != "undecided").sum())
    return f"{n}/{len(decided)} comparisons decided" + (f" ({parts})" if parts else "")
