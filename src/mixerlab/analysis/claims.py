"""A study's claims, decided: the one function the report, the answer and ``plan`` call.

The claims are the spec's (:mod:`mixerlab.claims`); the rule that turns an interval into a
verdict is :func:`mixerlab.analysis.verdict.verdict`. For each claim:

1. **Registered?** A claim is decided only as it was registered in the study before any trial
   finished (:mod:`mixerlab.claims.registration`); otherwise it is shown with why, undecided.
2. **The gaps at the largest budget.** Each gap ``a - b`` of the claim's metric, paired by
   seed among the compared trials (each arm at its chosen nuisance setting), with a paired t
   interval at ``1 - alpha / n_gaps``; where the study seeds adaptively and the claim names no
   fixed seeds, the anytime-valid confidence sequence at the same level
   (:mod:`mixerlab.analysis.confidence_sequence`), valid whatever seeds were added after looking.
3. **Stability across budgets.** With two budgets or more, each gap's seed-paired change
   between the two largest has a 90% t interval (an equivalence test at 5%, Schuirmann 1987);
   the verdict stands only if every change lies inside ``[-band, +band]``, else it is
   "undecided (still moving)". The check can only withhold a verdict, so its level does not
   change the claim's error rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mixerlab.analysis.verdict import combine, verdict
from mixerlab.errors import ConfigError
from mixerlab.factors import column

STABILITY_CONFIDENCE = 0.90
STILL_MOVING = "undecided (still moving)"


# ---- the frame a claim reads ------------------------------------------------------------------


def select(df: pd.DataFrame, at: dict) -> pd.DataFrame:
    """The rows of ``df`` with every factor of ``at`` at its value (none if a factor is absent);
    ``mixer`` and ``model`` name the ``variant`` column."""
    mask = pd.Series(True, index=df.index)
    for k, v in at.items():
        col = column(k)
        if col not in df:
            return df.iloc[0:0]
        mask &= _equals(df[col], v)
    return df[mask]


def _equals(values: pd.Series, v) -> pd.Series:
    """``values == v``, numbers as numbers (a patch size of 1 matches a column of 1.0)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (pd.to_numeric(values, errors="coerce") - v).abs() < 1e-9
    return values.astype(str) == str(v)


def paired_diffs(df: pd.DataFrame, a: dict, b: dict, metric: str = "test_acc",
                 seeds=None) -> pd.Series:
    """a - b per shared seed (ok trials only; only ``seeds`` where given), in seed order."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    if seeds is not None:
        ok = ok[ok["seed"].isin(list(seeds))]
    sa, sb = (select(ok, at).groupby("seed")[metric].mean() for at in (a, b))
    shared = sa.index.intersection(sb.index).sort_values()
    return (sa[shared] - sb[shared]).astype(float)


def compared_trials(folder: Path) -> pd.DataFrame:
    """A study's compared trials: every ok trial, or with ``nuisance:`` each arm at its chosen
    setting (the report's comparison), tuning trials excluded."""
    from mixerlab.analysis.comparison import compare
    from mixerlab.analysis.load import load_study, study_spec

    df, spec = load_study(folder), study_spec(folder)
    c = compare(df, list(spec.nuisance or {}), spec.nuisance or {})
    chosen = c.chosen
    return chosen[chosen["status"] == "ok"]


def claim_frame(folder: Path, claim) -> pd.DataFrame:
    """The trials a claim reads: its study's compared trials and those of ``with_studies``
    (folders beside it), e.g. a longer budget measured earlier on the same arms and seeds."""
    folder = Path(folder)
    frames = [compared_trials(folder)]
    for name in claim.with_studies:
        other = folder.parent / name
        if not (other / "trials.parquet").exists():
            raise ConfigError(f"{other}: claim {claim.name} reads study {name!r} (with_studies), which "
                              f"has no trials here; put its folder beside {folder.name}")
        frames.append(compared_trials(other))
    return pd.concat(frames, ignore_index=True)


# ---- intervals --------------------------------------------------------------------------------


def t_interval(d: pd.Series, confidence: float) -> dict:
    """Mean, sd and the paired t interval of the differences ``d`` at ``confidence``."""
    n = len(d)
    mean = float(d.mean()) if n else np.nan
    sd = float(d.std(ddof=1)) if n > 1 else np.nan
    if n < 2:
        return {"n_seeds": n, "diff": mean, "sd": sd, "lo": np.nan, "hi": np.nan}
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * sd / np.sqrt(n))
    return {"n_seeds": n, "diff": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


def anytime_interval(d: pd.Series, confidence: float) -> dict:
    """The anytime-valid interval after every seed of ``d`` (in the order they were added)."""
    from mixerlab.analysis.confidence_sequence import confidence_sequence

    out = t_interval(d, confidence)
    if len(d) >= 2:
        lo, hi = confidence_sequence(d.to_numpy(float), 1 - confidence)
        out.update(lo=float(lo[-1]), hi=float(hi[-1]))
    return out


# ---- the decision -----------------------------------------------------------------------------


def _late_gains(df: pd.DataFrame, gap, seeds) -> dict:
    """Each arm's mean late validation gain (mixerlab.late_gain): a diagnostic column beside
    the gap, never part of its verdict (with precise BN, where a study sets it, it measures
    the weights rather than BatchNorm's running averages)."""
    from mixerlab.late_gain import LATE_GAIN_KEY

    if LATE_GAIN_KEY not in df:
        return {"late_gain_a": np.nan, "late_gain_b": np.nan}
    ok = df[df["seed"].isin(list(seeds))] if seeds is not None else df
    return {f"late_gain_{side}": float(pd.to_numeric(select(ok, at)[LATE_GAIN_KEY], errors="coerce").mean())
            for side, at in (("a", gap.a), ("b", gap.b))}


def _budget_frame(df: pd.DataFrame, budget: int) -> pd.DataFrame:
    return df[df["epochs"].astype(int) == int(budget)] if "epochs" in df else df


def _change(by_budget: dict, budgets: list[int], claim, gap) -> tuple[dict, bool | None]:
    """The gap's seed-paired change between the two largest budgets: its row, and whether its
    90% interval lies inside the band (None: no seed paired at both budgets).

    Per seed s, the change is gap(s, top) - gap(s, prev), and the interval is a t interval over
    the seeds: the seeds are the independent units, and nothing is assumed about how one
    seed's rows at two budgets relate. So a budget ladder's rows (``train.budgets``) enter it
    as they are. Its budgets are not independent runs: on each seed they share the stable
    phase's weights up to the smaller budget's cool-down start (each rung is the WSD run of
    that budget and seed, bit-identical on CPU, so separate WSD trials of one seed share
    them as much). The change is computed the same way; what sharing changes is its spread:
    the two rows of a seed differ only by the extra stable epochs and the other cool-down, so
    the per-seed changes should vary less than between one-cycle runs of two lengths, whose
    schedules part from the first step. Their sd is smaller and the band check tighter on the
    same seeds: a narrower interval, so "stable" is reached on fewer seeds where the change
    is small, and a change outside the band is no more likely to pass. It stays valid as a
    within-seed paired comparison because it never assumed independence across budgets."""
    prev, top = budgets[-2], budgets[-1]
    late, early = by_budget[top], by_budget[prev]
    shared = late.index.intersection(early.index)
    iv = t_interval(late[shared] - early[shared], STABILITY_CONFIDENCE)
    inside = bool(np.isfinite(iv["lo"]) and -claim.stability_band <= iv["lo"]
                  and iv["hi"] <= claim.stability_band)
    row = {"claim": claim.name, "gap": gap.name, "budget": f"change {prev} -> {top}",
           "epochs": top, "rope": claim.stability_band, "confidence": STABILITY_CONFIDENCE,
           "interval": "paired t", **iv, "verdict": "stable" if inside else "still moving",
           "decides": False}
    return row, (inside if iv["n_seeds"] >= 2 else None)


def decide_claim(df: pd.DataFrame, claim, budgets: list[int], registered: dict,
                 anytime: bool = False, incomplete: str | None = None
                 ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """One claim on the trials ``df``: (its row, its gap rows, its per-seed points).

    ``budgets``: the epochs it is judged over (decided at the largest); ``registered``: its
    registration status (:func:`mixerlab.claims.registration.status`); ``anytime``: use the
    anytime-valid interval for the decision; ``incomplete``: why the study's trials are not all
    there (a fixed-n interval read before the last seed is a look the design did not plan, so
    such a claim is shown, not decided)."""
    level = 1 - claim.alpha / len(claim.gaps)
    top = budgets[-1]
    gap_rows, points, each, stable = [], [], [], []
    for gap in claim.gaps:
        by_budget = {b: paired_diffs(_budget_frame(df, b), gap.a, gap.b, claim.metric, claim.seeds)
                     for b in budgets}
        for b, d in by_budget.items():
            iv = (anytime_interval if anytime else t_interval)(d, level)
            said = verdict(iv["lo"], iv["hi"], claim.kind, claim.rope)
            gap_rows.append({"claim": claim.name, "gap": gap.name, "budget": f"{b} epochs",
                             "epochs": b, "rope": claim.rope, "confidence": level,
                             "interval": "anytime-valid" if anytime else "paired t",
                             **iv, "verdict": said, "decides": b == top,
                             **_late_gains(_budget_frame(df, b), gap, claim.seeds)})
            points += [{"claim": claim.name, "gap": gap.name, "epochs": b, "seed": int(s), "diff": v}
                       for s, v in d.items()]
            if b == top:
                each.append(said if iv["n_seeds"] >= 2 else "no data")
        if len(budgets) >= 2:
            change_row, inside = _change(by_budget, budgets, claim, gap)
            stable.append(inside)
            gap_rows.append(change_row)
    moving = None if len(budgets) < 2 or None in stable else not all(stable)
    at_top = combine(each, claim.kind)
    if not registered["registered"]:
        final = "undecided (not registered before the data)"
    elif incomplete and not anytime:
        final = f"undecided ({incomplete})"
    elif "no data" in each:
        final = "undecided (no data at the largest budget)"
    elif None in stable:
        final = f"undecided (no data paired at {budgets[-2]} epochs)"
    elif moving and at_top != "undecided":
        final = STILL_MOVING
    else:
        final = at_top
    row = {"claim": claim.name, "text": claim.text, "source": claim.source, "kind": claim.kind,
           "primary": claim.primary, "alpha": claim.alpha, "rope": claim.rope,
           "band": claim.stability_band, "budgets": ", ".join(map(str, budgets)),
           "n_seeds": int(min((r["n_seeds"] for r in gap_rows if r["decides"]), default=0)),
           "interval": "anytime-valid" if anytime else "paired t",
           "verdict_at_largest": combine(each, claim.kind) if "no data" not in each else "no data",
           "stability": ("one budget: not judged" if len(budgets) < 2 else
                         "no data" if moving is None else "still moving" if moving else "stable"),
           "registered": registered["registered"], "registration": registered["note"],
           "with_studies": ", ".join(claim.with_studies), "verdict": final}
    return row, pd.DataFrame(gap_rows), pd.DataFrame(points)


def _incomplete(folder: Path, done: int) -> str | None:
    """Why the study's trials are not all in (None when they are): its folder's marker says
    how many it plans from the moment its sweep starts; provenance.json only when a session
    ends."""
    import json

    from mixerlab.results import MARKER

    try:
        planned = json.loads((Path(folder) / MARKER).read_text()).get("n_trials")
    except (OSError, ValueError):
        planned = None
    if planned is None:  # tables written by hand (tests): what they hold is the study
        return None
    return f"study incomplete: {done} of {planned} trials" if done < planned else None


def decide_claims(folder: Path, spec=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every claim of the study at ``folder``: (claims, gaps, per-seed points), one row per
    claim / per gap and budget / per seed; empty frames where the spec states no claims."""
    from mixerlab.analysis.load import load_study, run_ids, study_spec
    from mixerlab.claims.check import claim_budgets
    from mixerlab.claims.registration import status

    folder = Path(folder)
    spec = spec or study_spec(folder)
    rows, gaps, points = [], [], []
    df = load_study(folder) if spec.claims else None
    from mixerlab.record import FINAL

    done = int(run_ids(df[df["status"].isin(FINAL)]).nunique()) if df is not None else 0
    incomplete = None if df is None else (
        _incomplete(folder, done) or (None if df.attrs.get("complete", True) else
                                      f"study incomplete: {done} of {df.attrs.get('planned') or '?'} trials"))
    for claim in spec.claims or []:
        anytime = spec.adaptive is not None and claim.seeds is None
        row, g, p = decide_claim(claim_frame(folder, claim), claim, claim_budgets(spec, claim),
                                 status(folder, claim), anytime, incomplete)
        rows.append({"study": spec.name, **row})
        gaps.append(g.assign(study=spec.name))
        points.append(p.assign(study=spec.name))
    return pd.DataFrame(rows), concat(gaps), concat(points)


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one after another (an empty frame for none)."""
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---- description without a verdict (the answer's other studies) -------------------------------


def described(df: pd.DataFrame, a: dict, b: dict, metric: str = "test_acc",
              confidence: float = 0.95) -> dict:
    """A seed-paired gap with its 95% t interval and no verdict: how the answer describes
    every comparison that is not a registered primary claim."""
    return t_interval(paired_diffs(df, a, b, metric), confidence)
