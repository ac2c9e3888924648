"""The claims' forest plot: one row per claim, gap and budget, read at a glance.

Each row shows the gap's interval (the one its verdict read: Bonferroni-adjusted within the
claim), its mean, the per-seed paired differences as dots, and the ROPE as a grey band around
0; the claim's verdict is written at the right. Saved at 150 dpi, 10.7 inches wide: 1,600 px.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COLOURS = {"agrees": "#1a7f37", "disagrees": "#b42318", "equivalent": "#6941c6"}
WIDTH_IN = 10.7  # x 150 dpi (plots.save) = 1,600 px


def _colour(verdict: str) -> str:
    return COLOURS.get(verdict, "#475467")


def forest(claims: pd.DataFrame, gaps: pd.DataFrame, points: pd.DataFrame) -> plt.Figure:
    """``claims``, ``gaps`` and ``points`` as :func:`mixerlab.analysis.claims.decide_claims`
    returns them (several studies' concatenated); the change rows of the stability check are
    left out (the claims table gives them)."""
    rows = gaps[~gaps["budget"].astype(str).str.startswith("change")].copy()
    key = ["study", "claim"] if "study" in rows else ["claim"]
    verdicts = claims.set_index(key)["verdict"].to_dict() if len(claims) else {}
    rows["label"] = [f"{r.claim}  {r.gap}  ({r.budget})" for r in rows.itertuples()]
    n = max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 1.0 + 0.42 * n))
    # The axis spans the data, 0 and the ROPE, not a symmetric range: most gaps lie on one side.
    values = [*rows[["lo", "hi", "diff"]].to_numpy(float).ravel(),
              *(points["diff"].to_numpy(float) if len(points) else [])]
    rope = float(rows["rope"].max()) if "rope" in rows and len(rows) else 1.0
    values = [v for v in values if np.isfinite(v)] + [-rope, rope]
    lo, hi = min(values), max(values)
    pad = 0.06 * (hi - lo)
    for i, r in enumerate(rows.itertuples()):
        y = n - 1 - i
        rope = getattr(r, "rope", np.nan)
        if np.isfinite(rope):
            ax.add_patch(plt.Rectangle((-rope, y - 0.4), 2 * rope, 0.8, color="#d0d5dd", alpha=0.6, lw=0))
        k = tuple(getattr(r, c) for c in key) if len(key) > 1 else r.claim
        said = verdicts.get(k, "")
        c = _colour(r.verdict if r.decides else "")
        if np.isfinite(r.lo) and np.isfinite(r.hi):
            ax.plot([r.lo, r.hi], [y, y], color=c, lw=2.5, solid_capstyle="butt")
        ax.plot([r.diff], [y], marker="D", color=c, ms=6)
        mine = points[(points["claim"] == r.claim) & (points["gap"] == r.gap) & (points["epochs"] == r.epochs)]
        if "study" in points and "study" in rows:
            mine = mine[mine["study"] == r.study]
        jitter = np.linspace(-0.18, 0.18, len(mine)) if len(mine) > 1 else np.zeros(len(mine))
        ax.scatter(mine["diff"], y + jitter, s=12, color="#101828", alpha=0.55, zorder=3, lw=0)
        if r.decides:
            ax.text(1.01, y, said, transform=ax.get_yaxis_transform(), va="center", fontsize=9,
                    color=_colour(said))
    ax.axvline(0, color="#101828", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(list(reversed(rows["label"].tolist())), fontsize=9)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("gap a - b, test accuracy (points): interval, mean (diamond), seeds (dots), ROPE (grey);\n"
                  "colour: the gap's own verdict at the deciding budget; right: the claim's verdict")
    ax.grid(axis="y", visible=False)
    fig.tight_layout()
    return fig
