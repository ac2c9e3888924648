"""How many seeds a claim needs: the power of its verdict at n seeds, by the exact noncentral t.

A claim's gap ``a - b`` is decided by a paired t interval at ``1 - alpha_gap`` (``alpha_gap =
claim.alpha / len(claim.gaps)``) and the one verdict rule (:mod:`mixerlab.analysis.verdict`);
its stability by a 90% interval of the gap's change between the two largest budgets inside
``[-band, +band]`` (:mod:`mixerlab.analysis.claims`). Given the true gap (or change), the
seed-paired sd and n seeds, with ``c = t(1 - alpha_gap / 2, n - 1)`` and the statistic
``T = (mean - theta) / (s / sqrt(n))``, noncentral t with ``n - 1`` degrees of freedom and
noncentrality ``(gap - theta) sqrt(n) / sd`` (Cohen, *Statistical Power Analysis*, 1988, ch. 2;
the normal approximation understates n badly at 3-5 seeds, where ``c`` is 5 to 13):

- ``beats``, ``|gap| > rope``: the interval excludes 0 on the gap's side, ``P(T > c)`` at
  ``theta = 0`` (the verdict the gap points to: agrees, or disagrees for a negative gap). It
  counts the rare interval that also lies inside the ROPE ("equivalent"), so it is exact for
  "excludes 0" and an upper bound for the verdict by at most ``P(hi <= rope)``.
- ``beats``, ``|gap| <= rope``: the gap points to "equivalent" (the interval inside the ROPE),
  sized as ``within`` below.
- ``within``, ``|gap| > rope``: "disagrees", the interval wholly beyond a ROPE edge:
  ``P(T > c)`` at the nearest edge (``ncp = (|gap| - rope) sqrt(n) / sd``) plus the far edge's
  (negligible) tail; exact.
- ``within``, ``|gap| <= rope`` (and the stability check): "agrees", the interval inside
  ``[-rope, rope]``, i.e. both one-sided tests of TOST (Schuirmann 1987) reject. The two
  statistics share ``s``, so the joint probability needs Owen's Q; we use the standard
  approximation ``P1 + P2 - 1`` (each one-sided noncentral t exact), floored at 0. It is a lower
  bound (Bonferroni's inequality), tight once power is high, so the seeds it asks are at worst
  a little more than needed.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mixerlab.analysis.claims import compared_trials, paired_diffs, select
from mixerlab.errors import ConfigError

MOST = 100  # seeds beyond which a plan reports inf: the design, not the seed count, must change
LEAST = 3  # the fewest seeds with a finite paired interval worth planning (2 gives t at 1 df)
STABILITY_ALPHA = 0.10  # the stability check's 90% interval (analysis.claims.STABILITY_CONFIDENCE)


def _ncp(shift: float, sd: float, n: int) -> float:
    """Noncentrality of a shift of the true mean from the tested value, in standard errors."""
    if sd > 0:
        return shift * math.sqrt(n) / sd
    return math.copysign(math.inf, shift) if shift else 0.0


def _crit(n: int, alpha: float) -> float:
    return float(stats.t.ppf(1 - alpha / 2, n - 1))


# scipy's nct returns nan far in a tail (e.g. cdf(-4.3, 2, 14.3), or any infinite ncp): there
# the probability is 0 or 1 by which side of ``x`` the noncentrality lies. Without this, a
# large effect at few seeds read as "not reached" and the seed count came out too large.
def _sf(x: float, df: int, nc: float) -> float:
    """P(T > x), T noncentral t."""
    p = float(stats.nct.sf(x, df, nc))
    return p if math.isfinite(p) else float(nc > x)


def _cdf(x: float, df: int, nc: float) -> float:
    """P(T <= x), T noncentral t."""
    p = float(stats.nct.cdf(x, df, nc))
    return p if math.isfinite(p) else float(nc < x)


def _smallest(target: float, power_at, most: int) -> float:
    for n in range(LEAST, most + 1):
        if power_at(n) >= target:
            return float(n)
    return math.inf


def ttest_power(n: int, diff: float, sd: float, alpha: float) -> float:
    """Power of a two-sided paired t-test at ``alpha`` with ``n`` seeds: either tail counts (a
    significant result of either sign: the ``differs`` question)."""
    c, nc = _crit(n, alpha), _ncp(abs(diff), sd, n)
    return _sf(c, n - 1, nc) + _cdf(-c, n - 1, nc)


def fixed_n(diff: float, sd: float, alpha: float, power: float = 0.8, most: int = MOST) -> float:
    """Seeds (>= 3: a finite interval) for a two-sided paired t-test at ``alpha`` to reach
    ``power`` at mean difference ``diff`` and seed-to-seed sd ``sd``; inf beyond ``most``."""
    return _smallest(power, lambda n: ttest_power(n, diff, sd, alpha), most)


def power_excludes(n: int, gap: float, sd: float, alpha: float, beyond: float = 0.0) -> float:
    """P(the two-sided ``1 - alpha`` paired t interval lies wholly beyond ``beyond`` on the
    gap's side), exactly: ``P(T > c)``, ``ncp = (|gap| - beyond) sqrt(n) / sd``."""
    return _sf(_crit(n, alpha), n - 1, _ncp(abs(gap) - beyond, sd, n))


def power_inside(n: int, gap: float, sd: float, alpha: float, bound: float) -> float:
    """P(the ``1 - alpha`` paired t interval lies inside ``[-bound, bound]``), by TOST's
    ``P1 + P2 - 1`` floored at 0 (a lower bound; see the module)."""
    c, df = _crit(n, alpha), n - 1
    p_low = _sf(c, df, _ncp(gap + bound, sd, n))  # lo >= -bound
    p_high = _cdf(-c, df, _ncp(gap - bound, sd, n))  # hi <= bound
    return max(0.0, p_low + p_high - 1.0)


def aimed_verdict(gap: float, kind: str, rope: float) -> str:
    """The verdict a true gap points to (what the interval tends to as seeds grow)."""
    if kind == "beats":
        return "equivalent" if abs(gap) <= rope else "agrees" if gap > 0 else "disagrees"
    if kind == "within":
        return "agrees" if abs(gap) <= rope else "disagrees"
    raise ValueError(f"kind must be 'beats' or 'within', got {kind!r}")


def claim_power(n: int, gap: float, sd: float, kind: str, rope: float, alpha_gap: float) -> float:
    """Power of a claim gap's verdict at ``n`` seeds: the probability of the verdict the true
    ``gap`` points to (:func:`aimed_verdict`), its interval at ``1 - alpha_gap``."""
    aim = aimed_verdict(gap, kind, rope)
    if aim == "equivalent" or (kind == "within" and aim == "agrees"):
        return power_inside(n, gap, sd, alpha_gap, rope)
    if kind == "beats":
        return power_excludes(n, gap, sd, alpha_gap)
    # within, disagrees: beyond the nearest edge, or (rarely) wholly beyond the far one
    far = _cdf(-_crit(n, alpha_gap), n - 1, _ncp(abs(gap) + rope, sd, n))
    return power_excludes(n, gap, sd, alpha_gap, beyond=rope) + far


def stability_power(n: int, change: float, sd: float, band: float,
                    alpha: float = STABILITY_ALPHA) -> float:
    """Power of the stability check at ``n`` seeds: its 90% interval of the gap's seed-paired
    change between the two largest budgets (true mean ``change``, sd ``sd``) inside ``+-band``."""
    return power_inside(n, change, sd, alpha, band)


def seeds_for(power_target: float, gap: float, sd: float, kind: str, rope: float,
              alpha_gap: float, most: int = MOST) -> float:
    """The fewest seeds (>= 3) at which :func:`claim_power` reaches ``power_target``; inf
    beyond ``most``."""
    return _smallest(power_target, lambda n: claim_power(n, gap, sd, kind, rope, alpha_gap), most)


def stability_seeds_for(power_target: float, change: float, sd: float, band: float,
                        most: int = MOST) -> float:
    """The fewest seeds (>= 3) at which :func:`stability_power` reaches ``power_target``; inf
    beyond ``most``."""
    return _smallest(power_target, lambda n: stability_power(n, change, sd, band), most)


# ---- a spec's claims sized from pilot studies (``mixerlab plan``) -----------------------------

TARGETS = (0.8, 0.9)
INFLATE = 1.5  # a pilot of 3-6 seeds estimates the sd loosely: also plan at 1.5 x its sd


def pilot_trials(folders) -> pd.DataFrame:
    """The compared trials of every pilot study (each arm at its chosen setting), with the
    folder in a ``pilot`` column; a folder given twice is read once."""
    frames = []
    for f in dict.fromkeys(map(str, folders)):
        df = compared_trials(Path(f))
        if "epochs" not in df:
            raise ConfigError(f"{f}: its trials have no 'epochs' column, and a pilot's gap is read at a "
                              "budget; give a study folder made by `mixerlab sweep`")
        frames.append(df.assign(pilot=f))
    return pd.concat(frames, ignore_index=True)


def _per_pilot(trials: pd.DataFrame, gap, metric: str, epochs: int) -> dict[str, pd.Series]:
    """Per pilot: ``a - b`` on the seeds both arms share at ``epochs`` (pilots with none left out)."""
    out = {}
    for pilot, df in trials.groupby("pilot", sort=False):
        d = paired_diffs(df[df["epochs"].astype(int) == epochs], gap.a, gap.b, metric)
        if len(d):
            out[pilot] = d
    return out


def _budgets_with(trials: pd.DataFrame, gap, metric: str) -> list[int]:
    """The epochs at which some pilot has both arms of ``gap`` on a shared seed."""
    epochs = sorted({int(e) for e in trials["epochs"].dropna()})
    return [e for e in epochs if _per_pilot(trials, gap, metric, e)]


def _repeats(trials: pd.DataFrame, gap, epochs: int) -> list[str]:
    """Notes on arms with several trials per seed (factors the gap does not name vary there)."""
    notes = []
    at = trials[trials["epochs"].astype(int) == epochs]
    for pilot, df in at.groupby("pilot", sort=False):
        for side in ("a", "b"):
            per_seed = select(df, getattr(gap, side)).groupby("seed").size()
            if len(per_seed) and per_seed.max() > 1:
                notes.append(f"{pilot}: arm {side} of '{gap.name}' has {per_seed.max()} trials per seed "
                             f"at {epochs} epochs (factors the gap does not name vary); paired on their mean")
    return notes


def pilot_gap(trials: pd.DataFrame, gap, metric: str, budget: int) -> dict | None:
    """A gap's seed-paired differences in the pilots: at ``budget`` where a pilot has both arms
    there, else at the largest epochs where one does; pooled over the pilots that have them.
    None when no pilot has both arms on a shared seed."""
    have = _budgets_with(trials, gap, metric)
    if not have:
        return None
    used = budget if budget in have else have[-1]
    per = _per_pilot(trials, gap, metric, used)
    return {"epochs": used, "diffs": pd.concat(per.values(), ignore_index=True),
            "pilots": {p: len(d) for p, d in per.items()}, "notes": _repeats(trials, gap, used)}


def pilot_change(trials: pd.DataFrame, gap, metric: str, budgets: list[int]) -> dict | None:
    """A gap's seed-paired change between two budgets in the pilots: the claim's two largest
    where a pilot has both on shared seeds, else the largest pair of budgets a pilot has;
    pooled over pilots. None when no pilot has the gap at two budgets on shared seeds."""
    have = _budgets_with(trials, gap, metric)
    pairs = [tuple(budgets[-2:])] if len(budgets) >= 2 else []
    pairs += [(have[i - 1], have[i]) for i in range(len(have) - 1, 0, -1)]
    for early, late in pairs:
        per = {}
        for pilot, d_late in _per_pilot(trials, gap, metric, late).items():
            d_early = _per_pilot(trials, gap, metric, early).get(pilot)
            shared = d_late.index.intersection(d_early.index) if d_early is not None else []
            if len(shared):
                per[pilot] = d_late[shared] - d_early[shared]
        if per:
            return {"epochs": (early, late), "diffs": pd.concat(per.values(), ignore_index=True),
                    "pilots": {p: len(d) for p, d in per.items()}}
    return None


def _sized(power, seeds, sd: float, n_planned: int) -> dict:
    """``power(n, sd=)`` at the planned seeds and ``seeds(target, sd=)`` for each target, at
    the pilot's sd and at 1.5 x it."""
    row = {f"power at {n_planned}": power(n_planned, sd=sd) if n_planned >= 2 else np.nan}
    for label, s in (("", sd), (f" sd x{INFLATE:g}", sd * INFLATE)):
        for t in TARGETS:
            row[f"n {t:.0%}{label}"] = seeds(t, sd=s)
    return row


def _pooled(found: dict) -> str:
    return " + ".join(f"{Path(p).name} ({n})" for p, n in found["pilots"].items())


def plan_claim(claim, budgets: list[int], trials: pd.DataFrame, n_planned: int):
    """One claim sized from the pilots ``trials``: (gap rows, stability rows, notes).

    Each gap's pilot mean and seed-paired sd give the power of the verdict the mean points to
    at ``n_planned`` seeds and the seeds for 80% and 90% (:func:`seeds_for`), at the claim's
    per-gap alpha; where a pilot has two budgets, the stability check's the same way."""
    alpha_gap, top = claim.alpha / len(claim.gaps), budgets[-1]
    gaps, stable, notes = [], [], []
    for gap in claim.gaps:
        where = f"claim {claim.name}, gap '{gap.name}'"
        found = pilot_gap(trials, gap, claim.metric, top)
        if found is None:
            raise ConfigError(f"{where}: no pilot has both arms on a shared seed; give --pilot a "
                              "study that ran both arms (ok trials, same seeds)")
        d = found["diffs"]
        if len(d) < 2:
            raise ConfigError(f"{where}: the pilots share only one seed of both arms (an sd needs "
                              "two); give a pilot with more seeds of both arms")
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        if found["epochs"] != top:
            notes.append(f"{where}: no pilot has it at the claim's largest budget ({top} epochs); "
                         f"used {found['epochs']} epochs, the largest a pilot has")
        if len(found["pilots"]) > 1:
            notes.append(f"{where}: differences pooled over {_pooled(found)}")
        notes += found["notes"]
        rule = {"gap": mean, "kind": claim.kind, "rope": claim.rope, "alpha_gap": alpha_gap}
        gaps.append({"claim": claim.name, "gap": gap.name,
                     "aims at": aimed_verdict(mean, claim.kind, claim.rope),
                     "pilot epochs": found["epochs"], "pilot n": len(d), "pilot gap": mean, "sd": sd,
                     "alpha/gap": alpha_gap,
                     **_sized(partial(claim_power, **rule), partial(seeds_for, **rule), sd, n_planned)})
        if len(budgets) < 2:
            continue
        change = pilot_change(trials, gap, claim.metric, budgets)
        if change is None:
            notes.append(f"{where}: no pilot has it at two budgets on shared seeds; stability not sized")
            continue
        c = change["diffs"]
        m, s = float(c.mean()), float(c.std(ddof=1)) if len(c) > 1 else np.nan
        early, late = change["epochs"]
        if (early, late) != tuple(budgets[-2:]):
            notes.append(f"{where}: stability sized on the change {early} -> {late} epochs (no pilot has "
                         f"{budgets[-2]} and {top} on shared seeds)")
        if len(change["pilots"]) > 1:
            notes.append(f"{where}: changes pooled over {_pooled(change)}")
        rule = {"change": m, "band": claim.stability_band}
        stable.append({"claim": claim.name, "gap": gap.name, "pilot epochs": f"{early} -> {late}",
                       "pilot n": len(c), "change": m, "sd": s, "band": claim.stability_band,
                       **_sized(partial(stability_power, **rule), partial(stability_seeds_for, **rule),
                                s, n_planned)})
    return gaps, stable, notes


def plan_claims(spec, trials: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Every claim of ``spec`` sized from the pilots ``trials`` (:func:`pilot_trials`):
    (gaps, stability, notes); the planned seeds are the claim's own, else the spec's."""
    from mixerlab.claims.check import claim_budgets

    gaps, stable, notes = [], [], []
    for claim in spec.claims or []:
        n_planned = len(claim.seeds) if claim.seeds else len(spec.max_seed_list)
        g, s, n = plan_claim(claim, claim_budgets(spec, claim), trials, n_planned)
        gaps += g
        stable += s
        notes += n
        if spec.adaptive is not None and claim.seeds is None:
            notes.append(f"claim {claim.name}: the study seeds adaptively, so its verdict uses the "
                         "anytime-valid interval, which needs more seeds than these fixed-n figures; "
                         "take adaptive.max at least the plan's n")
    return pd.DataFrame(gaps), pd.DataFrame(stable), notes
