"""The one rule that turns an interval into a verdict, for every claim, comparison and path.

Everything that decides (a study's claims, adaptive seeding's stopping rule, the answer, the
streamed-versus-in-memory check) calls :func:`verdict` with an interval ``[lo, hi]`` for a
gap ``a - b`` (points of test accuracy) and a region of practical equivalence
``[-rope, +rope]`` (Kruschke, "Rejecting or accepting parameter values in Bayesian
estimation", 2018, uses the same interval-against-ROPE rule). Three questions:

- ``beats`` (a is better than b): **equivalent** when the interval lies inside the ROPE
  (checked first: a resolved gap smaller than the ROPE does not make a paper's "better"
  true), **agrees** when it lies above 0, **disagrees** when below 0, else **undecided**.
- ``within`` (a and b are practically the same): **agrees** when the interval lies inside the
  ROPE, **disagrees** when it lies wholly outside it, else **undecided**.
- ``differs`` (a two-sided question with no direction stated, as adaptive seeding asks):
  **equivalent** inside the ROPE, **different** when the interval excludes 0, else
  **undecided**.

The interval's coverage (fixed-n t, Bonferroni-adjusted, or anytime-valid) is the caller's;
the rule is the same for all of them. An infinite bound is a real interval (an anytime-valid
sequence before its first finite look: ``[-inf, +inf]`` decides nothing, ``[0.2, +inf]``
excludes 0); a missing one (NaN) decides nothing.
"""

from __future__ import annotations

import math

KINDS = ("beats", "within", "differs")
DECIDED = {"beats": ("agrees", "disagrees", "equivalent"), "within": ("agrees", "disagrees"),
           "differs": ("different", "equivalent")}


def verdict(lo: float, hi: float, kind: str, rope: float) -> str:
    """The verdict the interval ``[lo, hi]`` gives for a claim of ``kind`` (see the module)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not rope >= 0:
        raise ValueError(f"rope must be >= 0, got {rope}")
    if math.isnan(lo) or math.isnan(hi):  # no interval (under two seeds): nothing to decide
        return "undecided"
    inside = -rope <= lo and hi <= rope
    if kind == "within":
        return "agrees" if inside else "disagrees" if (lo > rope or hi < -rope) else "undecided"
    if inside:
        return "equivalent"
    if kind == "differs":
        return "different" if (lo > 0 or hi < 0) else "undecided"
    return "agrees" if lo > 0 else "disagrees" if hi < 0 else "undecided"


def combine(each: list[str], kind: str) -> str:
    """A claim's verdict from its gaps' verdicts: ``within`` agrees only when every gap agrees
    and disagrees when any gap does; ``beats`` gives the verdict every gap shares, else
    undecided."""
    if not each:
        return "undecided"
    if kind == "within":
        return "disagrees" if "disagrees" in each else "agrees" if set(each) == {"agrees"} else "undecided"
    return each[0] if len(set(each)) == 1 else "undecided"
