"""What adaptive seeding saves: one study's design run two ways, the decisions and the cost.

    python benchmarks/adaptive_savings.py results/baselines results/baselines_adaptive

The first folder is the fixed design (the lr tuned on every seed, a fixed seed count), the
second the same arms, data and recipe with two-stage tuning and adaptive seeds. For every
comparison of the study (the report's seed-paired pairs) it prints the fixed design's
decision (its 95% paired t interval with Holm's correction across the comparisons: *different*
when Holm's p < 0.05, *equivalent* when the interval lies inside the adaptive spec's ROPE) beside
the adaptive one's (anytime-valid interval, seeds taken, why it stopped), then the cost of
each: trials, trial-epochs (the unit of training work, independent of machine load) and
recorded trial seconds (these depend on the load each study ran under: see their
provenance). The fixed design that reaches *every* adaptive decision needs, for each
comparison, the seeds a fixed-n Bonferroni t-test at the same alpha would need at the
observed effect and spread; the largest of those, times every arm and lr, is its cost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mixerlab.analysis.comparison import compare
from mixerlab.analysis.decisions import Rule, decisions, differences
from mixerlab.analysis.load import load_studies, study_spec


def _comparison(folder: Path):
    df = load_studies([folder])
    spec = study_spec(folder)
    return spec, df, compare(df, list(spec.nuisance or {}), spec.nuisance or {})


def _fixed_decisions(c, rope: float, alpha: float = 0.05) -> pd.DataFrame:
    rows = []
    pairs = [p for s in c.strata for p in s.pair_groups()]
    for what, a, b, ta, tb in pairs:
        d = differences(ta, tb).to_numpy(float)
        n, mean, sd = len(d), d.mean(), d.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
        p = stats.ttest_1samp(d, 0).pvalue
        rows.append({"comparison": what, "a": a, "b": b, "n": n, "diff": mean, "sd": sd,
                     "lo": mean - half, "hi": mean + half, "p": p})
    out = pd.DataFrame(rows)
    from mixerlab.analysis.stats import holm

    out["p_holm"] = holm(out["p"])
    out["decision"] = np.where(out["p_holm"] < alpha, "different",
                               np.where((out["lo"] >= -rope) & (out["hi"] <= rope), "equivalent", "undecided"))
    # Seeds a fixed-n test (Bonferroni over the comparisons, two-sided, 80% power at the
    # observed effect and spread) needs to reach the decision: the usual planning formula.
    m = len(out)
    z = stats.norm.ppf(1 - alpha / (2 * m)) + stats.norm.ppf(0.8)
    out["fixed_n_needed"] = np.ceil((z * out["sd"] / out["diff"].abs().clip(lower=1e-9)) ** 2).clip(lower=3)  # a paired t-test needs 3 seeds for a finite interval at these alphas
    return out


def _cost(df: pd.DataFrame) -> dict:
    return {"trials": len(df), "trial-epochs": int(df["epochs"].sum()),
            "trial seconds": float(df["trial_time_s"].sum())}


def main(fixed: str, adaptive: str) -> int:
    fspec, fdf, fc = _comparison(Path(fixed))
    aspec, adf, ac = _comparison(Path(adaptive))
    if aspec.adaptive is None:
        print(f"{adaptive}: its spec has no adaptive seeds; give the adaptive study second", file=sys.stderr)
        return 2
    a = aspec.adaptive
    fd = _fixed_decisions(fc, a.rope)
    ad = decisions(ac, Rule(a.alpha, a.rope, a.max))
    table = fd.merge(ad[["a", "b", "n_seeds", "diff", "lo", "hi", "decision", "reason"]],
                     on=["a", "b"], suffixes=(" fixed", " adaptive"))
    pd.set_option("display.width", 220)
    print(f"fixed: {fixed} ({len(fspec.max_seed_list)} seeds, every lr on every seed); adaptive: "
          f"{adaptive} (tuning on {len(aspec.tuning_seed_list)} seed(s), seeds {a.min}-{a.max}, "
          f"ROPE {a.rope:g}, alpha {a.alpha:g})\n")
    print(table.round(3).to_string(index=False))
    n_arms_lr = fdf.groupby(["variant", "lr"]).ngroups
    need = int(table["fixed_n_needed"].max())
    epochs = int(fdf["epochs"].iloc[0])
    costs = pd.DataFrame({"fixed (as run)": _cost(fdf), "adaptive (as run)": _cost(adf),
                          f"fixed reaching every decision ({need} seeds)": {
                              "trials": n_arms_lr * need, "trial-epochs": n_arms_lr * need * epochs,
                              "trial seconds": float(fdf.groupby(["variant", "lr"])["trial_time_s"].mean().sum() * need)}})
    print("\n" + costs.round(0).to_string())
    same = (table["decision fixed"] == table["decision adaptive"]).sum()
    print(f"\nsame decision in {same} of {len(table)} comparisons; adaptive trials / fixed as run = "
          f"{len(adf) / len(fdf):.2f} ({1 - len(adf) / len(fdf):.0%} fewer)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
