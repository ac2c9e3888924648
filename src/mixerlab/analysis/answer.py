"""A program's answer from its studies' primary claims: the verdicts, their table, the figure.

The verdicts of an answer are the primary claims of its confirmatory studies (specs with
``claims:``), each decided by its own study (:func:`mixerlab.analysis.claims.decide_claims`)
at the alpha its spec states; the program's error rate is their sum (Bonferroni), stated
once. A claim whose study has not run yet is listed as such. Every other study is described
(95% intervals, no verdict, no alpha).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mixerlab.analysis.claims import concat, decide_claims
from mixerlab.errors import ConfigError


def primary_claims(folders, pending_specs=()) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The primary claims of the studies at ``folders`` (those without claims are skipped),
    and of ``pending_specs`` (spec files of confirmatory studies not run yet): (claims, gaps,
    per-seed points), one row per claim / gap and budget / seed."""
    from mixerlab.spec import load_spec

    claims, gaps, points = [], [], []
    for folder in folders:
        c, g, p = decide_claims(Path(folder))
        if not len(c):
            continue
        keep = c.loc[c["primary"], "claim"]
        claims.append(c[c["claim"].isin(keep)])
        if len(g):
            gaps.append(g[g["claim"].isin(keep)])
        if len(p):
            points.append(p[p["claim"].isin(keep)])
    for path in pending_specs:
        spec = load_spec(path)
        if not spec.claims:
            raise ConfigError(f"{path}: states no claims; give the spec of a confirmatory study")
        claims.append(pd.DataFrame([{
            "study": spec.name, "claim": c.name, "text": c.text, "source": c.source, "kind": c.kind,
            "primary": c.primary, "alpha": c.alpha, "rope": c.rope, "band": c.stability_band,
            "budgets": ", ".join(map(str, c.budgets or [])), "n_seeds": 0, "verdict_at_largest": "",
            "stability": "", "registered": False, "registration": f"not run yet ({path})",
            "verdict": "not run yet"} for c in spec.claims if c.primary]))
    out = concat(claims)
    if len(out) and out.duplicated(["claim"]).any():
        twice = out.loc[out.duplicated(["claim"]), "claim"].iloc[0]
        raise ConfigError(f"primary claim {twice!r} is stated by two studies; name each claim once "
                          "across the program (or make one of them `primary: false`)")
    return out, concat(gaps), concat(points)


def _iv(diff: float, lo: float, hi: float) -> str:
    """'+1.38 [+0.32, +2.44]', or '-' where there is no interval yet."""
    if pd.isna(diff):
        return "-"
    return f"{diff:+.2f} [{lo:+.2f}, {hi:+.2f}]" if pd.notna(lo) else f"{diff:+.2f} (one seed)"


def verdict_table(claims: pd.DataFrame, gaps: pd.DataFrame) -> pd.DataFrame:
    """One row per primary claim and gap at its deciding budget: the table the README and the
    answer open with (claim, gap, interval, verdict, seeds, budgets)."""
    rows = []
    for c in claims.itertuples():
        mine = gaps[(gaps["claim"] == c.claim) & gaps["decides"].astype(bool)] if len(gaps) else gaps
        change = gaps[(gaps["claim"] == c.claim) & gaps["budget"].astype(str).str.startswith("change")] \
            if len(gaps) else gaps
        if not len(mine):
            rows.append({"claim": f"{c.claim}: {c.text}", "gap": "", "interval": "", "change": "",
                         "verdict": c.verdict, "seeds": "", "budgets": c.budgets, "alpha": f"{c.alpha:g}"})
            continue
        for i, g in enumerate(mine.itertuples()):
            ch = change[change["gap"] == g.gap]
            rows.append({
                "claim": f"{c.claim}: {c.text}" if i == 0 else "",
                "gap": g.gap, "interval": f"{_iv(g.diff, g.lo, g.hi)} ({g.confidence:.2%})",
                "change": (f"{_iv(ch['diff'].iloc[0], ch['lo'].iloc[0], ch['hi'].iloc[0])} "
                           f"(band +-{c.band:g})") if len(ch) else "one budget",
                "verdict": c.verdict if i == 0 else "", "seeds": int(g.n_seeds),
                "budgets": c.budgets, "alpha": f"{c.alpha:g}" if i == 0 else ""})
    return pd.DataFrame(rows)


def alpha_text(claims: pd.DataFrame) -> str:
    """The program's alpha, stated once: each primary claim's share and their sum."""
    if not len(claims):
        return "No primary claims."
    shares = ", ".join(f"{r.claim} {r.alpha:g}" for r in claims.itertuples())
    return (f"Alpha: {shares}; {claims['alpha'].sum():g} over the program's {len(claims)} primary "
            "claims (Bonferroni: the chance that any verdict is wrong is at most their sum).")
