"""Claim verdicts: does the rule hold its error rate? A Monte-Carlo check of ``decide_claim``.

Every simulated study is **synthetic** (no training): two arms on the same seeds at two
budgets (10 and 30 epochs), with the seed-paired gap a - b at each budget

    d[budget, seed] = true gap + sd * (sqrt(rho) * u[seed] + sqrt(1 - rho) * e[budget, seed]),

u and e independent standard normals (u: what a seed shares across budgets). The trial table
is handed to the library's own :func:`mixerlab.analysis.claims.decide_claim` (not a copy of
its rule), once per claim. Defaults, in points of test accuracy:

- sd 0.5: a conservative planning sd of a seed-paired gap (mixer_confirm observed 0.30 at 30
  epochs, the budget study 0.30 at 10 and 0.52 at 3); with the spec's default ROPE of 1.0 a
  2-sd gap is one ROPE, so (c) measures direction, not the equivalence-first rule;
- rho 0.3: the budget study's correlation of a seed's gap between 3 and 10 epochs (pooled over
  its 12 gaps, 3 seeds each: 0.27), so a gap's change between budgets has sd 0.59;
- the stability band is the default ROPE / 2.

Printed, one row per case, each rate with its 95% Clopper-Pearson interval over the studies:

(a) ``beats`` at a true gap of 0: the rate of "agrees", which must be at most the claim's
    alpha. The rule checks equivalence first, so an interval above 0 but inside the ROPE is
    "equivalent", not "agrees": at a ROPE of 2 sd "agrees" is rare. The row "interval above 0"
    (the decisive interval's lower bound > 0) is what "agrees" becomes as the ROPE shrinks to
    0, the rule's worst case; a two-sided interval at 1 - alpha puts about alpha / 2 there;
(b) ``within`` at a true gap of 1.5 x ROPE: the rate of "agrees", at most alpha;
(c) power, for context: "agrees" for ``beats`` at 2 sd and ``within`` at 0, at one budget and
    at two with the stability check, so the check's cost is visible;
(d) (a) with the anytime-valid interval (``anytime=True``). The interval is a running
    intersection over the seeds, so "interval above 0" after the last seed means above 0 at
    *some* look: it bounds "agrees" under any rule that adds seeds after looking.

A one-budget row is ``verdict_at_largest`` of the two-budget call: the verdict before the
stability check, which is what ``decide_claim`` returns for a one-budget claim on the 30-epoch
trials (the test checks this). Rows at 3, 5 and 8 seeds read the first 3, 5 and 8 seeds of
the same studies. Exit 1 if an error rate's interval lies wholly above its alpha.

    .venv/bin/python benchmarks/claim_validity.py [--studies 500] [--seed 0] [--out FILE.csv]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

import mixerlab
from mixerlab import provenance
from mixerlab.analysis.claims import decide_claim
from mixerlab.claims import ClaimSpec

BUDGETS = [10, 30]  # epochs: T and 3T, as the stability rule has them
SEEDS = (3, 5, 8)  # seeds per arm (the tier sizes the studies here use)
ALPHAS = (0.05, 0.0125)  # a study's alpha, and one claim's quarter of it (mixer_claims)
REGISTERED = {"registered": True, "note": "synthetic: registered"}


@dataclass(frozen=True)
class Call:
    """One claim decided on every study: which part(s) of the table its verdicts fill."""

    part: str
    kind: str
    gap: str  # key of the true gap: "0", "1.5 x ROPE", "2 sd"
    alpha: float
    anytime: bool = False

    @property
    def error(self) -> bool:  # an error rate (bounded by alpha) or, else, a power
        return self.part != "c"


CALLS = ([Call("a", "beats", "0", a) for a in ALPHAS]
         + [Call("b", "within", "1.5 x ROPE", a) for a in ALPHAS]
         + [Call("c", "beats", "2 sd", 0.05), Call("c", "within", "0", 0.05)]
         + [Call("d", "beats", "0", a, anytime=True) for a in ALPHAS])


def true_gaps(sd: float, rope: float) -> dict[str, float]:
    return {"0": 0.0, "1.5 x ROPE": 1.5 * rope, "2 sd": 2 * sd}


def claim(call: Call, rope: float) -> ClaimSpec:
    return ClaimSpec(name=f"{call.part}-{call.kind}", text="synthetic", source="synthetic",
                     kind=call.kind, gaps=[{"a": {"mixer": "a"}, "b": {"mixer": "b"}}],
                     rope=rope, alpha=call.alpha, budgets=BUDGETS)


def simulate(rng, studies: int, gap: float, sd: float, rho: float) -> np.ndarray:
    """Synthetic seed-paired gaps: (studies, budgets, seeds)."""
    shape = (studies, len(BUDGETS), max(SEEDS))
    u = rng.standard_normal((studies, 1, max(SEEDS)))  # shared by a seed's budgets
    return gap + sd * (np.sqrt(rho) * u + np.sqrt(1 - rho) * rng.standard_normal(shape))


def trials(d: np.ndarray, base: np.ndarray) -> pd.DataFrame:
    """One synthetic study's trial table from its gaps ``d`` and arm-b accuracies ``base``,
    both (budgets, seeds): arm a = arm b + d on the same seed and budget."""
    nb, ns = d.shape
    b = base + np.array(BUDGETS, float)[:, None] / 10  # (budgets, seeds): longer is better
    acc = np.stack([b + d, b], axis=-1)  # (budgets, seeds, arm)
    return pd.DataFrame({"variant": np.tile(["a", "b"], nb * ns),
                         "epochs": np.repeat(BUDGETS, ns * 2),
                         "seed": np.tile(np.repeat(np.arange(ns), 2), nb),
                         "status": "ok", "test_acc": acc.ravel()})


def tally(studies: int, seed: int, sd: float, rope: float, rho: float) -> dict:
    """Counts per (call, seeds, event) over the synthetic studies."""
    rng = np.random.default_rng(seed)
    data = {k: simulate(rng, studies, g, sd, rho) for k, g in true_gaps(sd, rope).items()}
    base = 85 + rng.standard_normal((studies, len(BUDGETS), max(SEEDS)))
    claims = {c: claim(c, rope) for c in CALLS}
    counts: dict = {}
    for i in range(studies):
        for n in SEEDS:
            frames = {k: trials(d[i, :, :n], base[i, :, :n]) for k, d in data.items()}
            for c in CALLS:
                row, gaps, _ = decide_claim(frames[c.gap], claims[c], BUDGETS, REGISTERED, c.anytime)
                lo = gaps.loc[gaps["decides"], "lo"].iloc[0]
                for event, hit in (("one", row["verdict_at_largest"] == "agrees"),
                                   ("two", row["verdict"] == "agrees"),
                                   ("above 0", lo > 0)):
                    counts[c, n, event] = counts.get((c, n, event), 0) + bool(hit)
    return counts


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def table(counts: dict, studies: int, sd: float, rope: float, rho: float) -> pd.DataFrame:
    """One row per case: the rate, its 95% Clopper-Pearson interval and, for an error rate,
    whether the interval lies wholly above alpha (``fails``)."""
    gaps = true_gaps(sd, rope)
    events = {"one": ("30", "agrees"), "two": ("10, 30", "agrees (stable)"),
              "above 0": ("30", "interval above 0")}
    rows = []
    for c in CALLS:
        for event, (budgets, said) in events.items():
            if event == "above 0" and not (c.error and c.kind == "beats"):
                continue
            for n in SEEDS:
                k = counts[c, n, event]
                lo, hi = clopper_pearson(k, studies)
                rows.append({"part": c.part, "kind": c.kind, "true_gap": gaps[c.gap],
                             "true_gap_is": c.gap, "alpha": c.alpha, "n_seeds": n,
                             "budgets": budgets, "interval": "anytime-valid" if c.anytime else "paired t",
                             "event": said, "count": k, "studies": studies, "rate": k / studies,
                             "mc_lo": lo, "mc_hi": hi, "bound": c.alpha if c.error else np.nan,
                             "fails": bool(c.error and lo > c.alpha),
                             "sd": sd, "rope": rope, "band": rope / 2, "rho": rho})
    return pd.DataFrame(rows)


def render(t: pd.DataFrame) -> str:
    """The table as markdown."""
    lines = ["| part | claim | true gap (points) | alpha | seeds | budgets | interval | event | rate | "
             "95% MC interval | check |", "|---|---|---:|---:|---:|---|---|---|---:|---|---|"]
    for r in t.itertuples():
        check = ("power" if np.isnan(r.bound) else "FAIL: above alpha" if r.fails
                 else "<= alpha")
        gap = f"{r.true_gap:g}" + ("" if r.true_gap_is == "0" else f" ({r.true_gap_is})")
        lines.append(f"| {r.part} | {r.kind} | {gap} | {r.alpha:g} | "
                     f"{r.n_seeds} | {r.budgets} | {r.interval} | {r.event} | "
                     f"{r.rate:.4f} ({r.count}/{r.studies}) | {r.mc_lo:.4f} to {r.mc_hi:.4f} | {check} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=500, help="synthetic studies per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sd", type=float, default=0.5, help="sd of a seed-paired gap, points")
    ap.add_argument("--rope", type=float, default=1.0, help="ROPE, points (band: ROPE / 2)")
    ap.add_argument("--rho", type=float, default=0.3,
                    help="correlation of a seed's gap between the two budgets")
    ap.add_argument("--out", help="also write the table here as CSV")
    args = ap.parse_args(argv)
    if args.studies < 1 or not 0 <= args.rho <= 1 or args.sd <= 0 or args.rope <= 0:
        ap.error("need --studies >= 1, 0 <= --rho <= 1, --sd > 0 and --rope > 0")
    t0 = time.perf_counter()
    print(f"benchmarks/claim_validity.py: {provenance.cpu_model()}, {os.cpu_count()} cores; Python "
          f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"mixerlab {mixerlab.__version__} (commit {provenance.git_commit()}); "
          f"{args.studies:,} synthetic studies per case, seed {args.seed}")
    print(f"\nSynthetic seed-paired gaps: sd {args.sd:g} points, ROPE {args.rope:g}, stability band "
          f"{args.rope / 2:g}, correlation between budgets {args.rho:g}; budgets "
          f"{BUDGETS[0]} and {BUDGETS[1]} epochs (one budget: {BUDGETS[1]}); decided by "
          "mixerlab.analysis.claims.decide_claim. Rates of the event over the studies; the 95% "
          "interval is Clopper-Pearson; an error rate fails when that interval lies above alpha.\n")
    t = table(tally(args.studies, args.seed, args.sd, args.rope, args.rho),
              args.studies, args.sd, args.rope, args.rho)
    print(render(t))
    if args.out:
        t.to_csv(args.out, index=False)
    failed = int(t["fails"].sum())
    print(f"\n{failed} of {int(t['bound'].notna().sum())} error rates above alpha; "
          f"wall {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
