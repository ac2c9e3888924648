"""What adaptive seeding saves: one study's design run two ways, the decisions and the cost.

    python benchmarks/adaptive_savings.py results/baselines results/baselines_adaptive
    python benchmarks/adaptive_savings.py results/layout_merge

With two folders, the first is the fixed design (the lr tuned on every seed, a fixed seed count), the
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

With one folder (an adaptive study with no fixed twin), the fixed design is the counterfactual
only: the seeds that same planning formula needs at the adaptive run's effects and spreads (for
the comparisons the adaptive run decided: an undecided one asks nothing of it), times
every arm and every nuisance setting (the way the committed fixed studies tune: every setting on
every seed), its trial seconds from the adaptive run's own tuning trials of each arm and setting.
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
from mixerlab.analysis.power import fixed_n

KEY = ["by", "comparison", "a", "b"]  # one comparison of a study (its matching, stratum and arms)


def _comparison(folder: Path):
    df = load_studies([folder])
    spec = study_spec(folder)
    return spec, df, compare(df, list(spec.nuisance or {}), spec.nuisance or {})


def _fixed_decisions(c, rope: float, alpha: float = 0.05) -> pd.DataFrame:
    rows = []
    pairs = [(s.by, *p) for s in c.strata for p in s.pair_groups()]
    for by, what, a, b, ta, tb in pairs:
        d = differences(ta, tb).to_numpy(float)
        n, mean, sd = len(d), d.mean(), d.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
        p = stats.ttest_1samp(d, 0).pvalue
        rows.append({"by": by, "comparison": what, "a": a, "b": b, "n": n, "diff": mean, "sd": sd,
                     "lo": mean - half, "hi": mean + half, "p": p})
    out = pd.DataFrame(rows)
    from mixerlab.analysis.stats import holm

    out["p_holm"] = holm(out["p"])
    out["decision"] = np.where(out["p_holm"] < alpha, "different",
                               np.where((out["lo"] >= -rope) & (out["hi"] <= rope), "equivalent", "undecided"))
    # Seeds a fixed-n paired t-test (Bonferroni over the comparisons, two-sided) needs for 80%
    # power at the observed effect and spread: the smallest n whose noncentral-t power reaches
    # 0.8 (the exact planning calculation; the normal approximation understates n badly at
    # 3-5 seeds, where the t quantile at alpha / 2m is 5 to 13).
    out["fixed_n_needed"] = [fixed_n(d, sd, alpha / len(out)) for d, sd in zip(out["diff"], out["sd"])]
    return out


def _cost(df: pd.DataFrame) -> dict:
    return {"trials": len(df), "trial-epochs": int(df["epochs"].sum()),
            "trial seconds": float(df["trial_time_s"].sum())}


def _adaptive_decisions(folder: str, fixed=None):
    """(spec, trials, comparison, adaptive decisions, fixed decisions) of an adaptive study;
    the fixed decisions are ``fixed``'s comparison's (a fixed twin) or else its own."""
    spec, df, c = _comparison(Path(folder))
    if spec.adaptive is None:
        print(f"{folder}: its spec has no adaptive seeds; give the adaptive study last", file=sys.stderr)
        return None
    a = spec.adaptive
    return spec, df, c, decisions(c, Rule(a.alpha, a.rope, a.max)), _fixed_decisions(fixed or c, a.rope)


def _fixed_reaching(need: int, df: pd.DataFrame, arms: list[str], epochs: int) -> dict:
    """Every arm at every nuisance setting on ``need`` seeds; seconds from ``df``'s trials."""
    per_setting = df.groupby(arms, dropna=False)["trial_time_s"].mean()  # NaN: a factor that does not apply
    return {"trials": len(per_setting) * need, "trial-epochs": len(per_setting) * need * epochs,
            "trial seconds": float(per_setting.sum() * need)}


def _two_stage_reaching(need: int, df: pd.DataFrame, tuning: pd.DataFrame, arms: list[str]) -> dict:
    """``need`` seeds of every arm after the study's own tuning stage: what two-stage tuning
    alone saves, so the adaptive seeding's own share is the rest."""
    measured = df[df["stage"] == "measure"] if "stage" in df else df
    per_arm = measured.groupby(arms, dropna=False)["trial_time_s"].mean()
    return {"trials": len(tuning) + len(per_arm) * need,
            "trial-epochs": int(tuning["epochs"].sum()) + len(per_arm) * need * int(measured["epochs"].iloc[0]),
            "trial seconds": float(tuning["trial_time_s"].sum() + per_arm.sum() * need)}


def _report_costs(costs: dict, adaptive_trials: int, versus: str, fixed_trials: int) -> None:
    print("\n" + pd.DataFrame(costs).round(0).to_string())
    print(f"\nadaptive trials / {versus} = {adaptive_trials / fixed_trials:.2f} "
          f"({1 - adaptive_trials / fixed_trials:.0%} fewer)")


def counterfactual(adaptive: str) -> int:
    got = _adaptive_decisions(adaptive)
    if got is None:
        return 2
    spec, df, c, ad, fd = got
    a = spec.adaptive
    table = fd[["by", "comparison", "a", "b", "n", "diff", "sd", "fixed_n_needed"]].merge(
        ad[["by", "comparison", "a", "b", "n_seeds", "lo", "hi", "decision", "reason"]], on=KEY)
    pd.set_option("display.width", 220)
    print(f"adaptive: {adaptive} (tuning on {len(spec.tuning_seed_list)} seed(s), seeds {a.min}-{a.max}, "
          f"ROPE {a.rope:g}, alpha {a.alpha:g}); fixed: counterfactual (every setting on every seed)\n")
    print(table.round(3).to_string(index=False))
    # A fixed design reaches the same decisions when it decides what the adaptive run decided;
    # an undecided comparison (max reached) asks nothing of it.
    decided_rows = table[table["decision"].isin(["different", "equivalent"])]
    need = int(decided_rows["fixed_n_needed"].max()) if len(decided_rows) else 3
    arms = [k for k in ("variant", "layout", "patch_size", "downsample") if k in df and df[k].notna().any()]
    tuning = df[df["stage"] == "tune"] if "stage" in df else df
    settings = arms + list(spec.nuisance or {})
    fixed = _fixed_reaching(need, tuning, settings, int(df["epochs"].iloc[0]))
    print(f"\n{len(decided_rows)} of {len(table)} comparisons decided; a fixed design reaching the same "
          f"decisions at every setting needs {need} seeds (the most any decided comparison needs)")
    two_stage = _two_stage_reaching(need, df, tuning, arms)
    _report_costs({"adaptive (as run)": _cost(df), f"fixed, every setting on {need} seeds": fixed,
                   f"fixed, two-stage tuning, then {need} seeds": two_stage},
                  len(df), "fixed", fixed["trials"])
    print(f"adaptive trials / fixed with two-stage tuning = {len(df) / two_stage['trials']:.2f}")
    return 0


def main(fixed: str, adaptive: str) -> int:
    fspec, fdf, fc = _comparison(Path(fixed))
    got = _adaptive_decisions(adaptive, fc)
    if got is None:
        return 2
    aspec, adf, ac, ad, fd = got
    a = aspec.adaptive
    table = fd.merge(ad[[*KEY, "n_seeds", "diff", "lo", "hi", "decision", "reason"]],
                     on=KEY, suffixes=(" fixed", " adaptive"))
    pd.set_option("display.width", 220)
    print(f"fixed: {fixed} ({len(fspec.max_seed_list)} seeds, every lr on every seed); adaptive: "
          f"{adaptive} (tuning on {len(aspec.tuning_seed_list)} seed(s), seeds {a.min}-{a.max}, "
          f"ROPE {a.rope:g}, alpha {a.alpha:g})\n")
    print(table.round(3).to_string(index=False))
    need = int(table["fixed_n_needed"].max())
    epochs = int(fdf["epochs"].iloc[0])
    same = (table["decision fixed"] == table["decision adaptive"]).sum()
    print(f"\nsame decision in {same} of {len(table)} comparisons")
    _report_costs({"fixed (as run)": _cost(fdf), "adaptive (as run)": _cost(adf),
                   f"fixed reaching every decision ({need} seeds)":
                       _fixed_reaching(need, fdf, ["variant", "lr"], epochs)},
                  len(adf), "fixed as run", len(fdf))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2:
        sys.exit(counterfactual(sys.argv[1]))
    if len(sys.argv) != 3:
        print("\n".join(line.strip() for line in __doc__.splitlines()[2:4]), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
