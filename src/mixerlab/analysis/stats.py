"""Statistics with well-kept libraries: ANOVA with effect sizes (statsmodels), pairwise Welch
tests with Holm's correction (scipy + statsmodels), and rank correlation (scipy)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests


def _ok(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    d = df[df["status"] == "ok"] if "status" in df.columns else df
    return d.dropna(subset=[metric])


def anova(df: pd.DataFrame, factors, metric: str = "test_acc") -> pd.DataFrame:
    """Type-II ANOVA of ``metric`` on categorical ``factors`` (+ the first two's interaction
    when every cell has replicates). Columns: sum_sq, df, F, p, partial_eta_sq (SS_effect /
    (SS_effect + SS_error)) and eta_sq (SS_effect / SS_total, the share of all variance)."""
    d = _ok(df, metric)
    factors = [f for f in factors if d[f].nunique() > 1]
    if not factors or len(d) <= sum(d[f].nunique() - 1 for f in factors) + 1:
        return pd.DataFrame(columns=["term", "sum_sq", "df", "F", "p", "partial_eta_sq", "eta_sq"])
    terms = [f'C(Q("{f}"))' for f in factors]
    formula = f'Q("{metric}") ~ ' + " + ".join(terms)
    if len(factors) >= 2 and d.groupby(factors[:2]).size().min() >= 2:
        formula += f" + {terms[0]}:{terms[1]}"
    table = anova_lm(smf.ols(formula, data=d).fit(), typ=2)
    resid = table.loc["Residual", "sum_sq"]
    total = table["sum_sq"].sum()
    out = table.rename(columns={"PR(>F)": "p"}).reset_index(names="term")
    out["term"] = out["term"].str.replace(r'C\(Q\("(\w+)"\)\)', r"\1", regex=True)
    out["partial_eta_sq"] = np.where(out["term"] == "Residual", np.nan,
                                     out["sum_sq"] / (out["sum_sq"] + resid))
    out["eta_sq"] = out["sum_sq"] / total
    return out[["term", "sum_sq", "df", "F", "p", "partial_eta_sq", "eta_sq"]]


def welch(a, b, confidence: float = 0.95) -> dict:
    """Difference of means a - b, its Welch CI, and the Welch t-test p-value."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a.mean() - b.mean()
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "lo": np.nan, "hi": np.nan, "p": np.nan}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "lo": diff, "hi": diff, "p": 0.0 if diff else 1.0}
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    half = stats.t.ppf((1 + confidence) / 2, dof) * se
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "p": float(p)}


def holm(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def pairwise(df: pd.DataFrame, group: str = "variant", within: str | None = "patch_size",
             metric: str = "test_acc", alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of ``group`` levels at each level of ``within``; Holm across all of them."""
    d = _ok(df, metric)
    strata = d.groupby(within) if within and within in d.columns and d[within].nunique() > 1 \
        else [(None, d)]
    rows = []
    for level, sub in strata:
        for a, b in itertools.combinations(sorted(sub[group].dropna().unique(), key=str), 2):
            res = welch(sub.loc[sub[group] == a, metric], sub.loc[sub[group] == b, metric])
            rows.append({within or "stratum": level, "a": a, "b": b,
                         "n_a": int((sub[group] == a).sum()), "n_b": int((sub[group] == b).sum()),
                         **res})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p"])
        out["significant"] = out["p_holm"] < alpha
    return out


def early_vs_final(history: pd.DataFrame, trials: pd.DataFrame, epoch: int,
                   final: str = "best_val_acc") -> dict:
    """Spearman correlation between validation accuracy at ``epoch`` and the final metric:
    how well an early look (ASHA's) ranks the trials."""
    early = history[history["epoch"] == epoch].set_index("trial_id")["val_acc"]
    joined = trials.set_index("trial_id")[[final]].join(early.rename("early"), how="inner").dropna()
    if len(joined) < 3:
        return {"epoch": epoch, "n": len(joined), "rho": np.nan, "p": np.nan}
    rho, p = stats.spearmanr(joined["early"], joined[final])
    return {"epoch": epoch, "n": len(joined), "rho": float(rho), "p": float(p)}
