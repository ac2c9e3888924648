"""Statistics with well-kept libraries: ANOVA with effect sizes (statsmodels), pairwise paired or
Welch t-tests with Holm's correction (scipy + statsmodels), and rank correlation (scipy).

Why paired tests: in mixerlab a seed fixes the data order and the augmentation stream for every
arm (and the initial weights of arms with the same model shape), so two arms trained on the same
seeds share part of their seed-to-seed variation. The seed-matched difference cancels that
shared part; a Welch test treats it as noise and gives a wider interval. (Paired comparison
design: Montgomery, Design and Analysis of Experiments, sec. 2.5; data order, augmentation and
initialisation as sources of variance between runs: Bouthillier et al., "Accounting for Variance
in Machine Learning Benchmarks", MLSys 2021.)
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm


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


class _TypeTwo:
    """``anova``'s eta^2 column for row subsets of one data set, by least squares on a design
    matrix built once: each term's type-II sum of squares is the drop in residual sum of
    squares when it enters the model of every term not containing it (with the interaction
    A:B of ``anova``'s first two factors, A is tested beside the other main effects, A:B last).
    For a full-rank design this is the same number statsmodels' ``anova_lm(typ=2)`` reaches by
    its Wald test (tests/test_analysis.py checks it), at about 1/50 of the time, which the
    bootstrap's hundreds of refits need. :meth:`of` gives ``None`` (refit with statsmodels)
    for a rank-deficient design or a factor with missing values."""

    def __init__(self, y, blocks: dict, order: list[str]):
        self.y, self.blocks, self.order = y, blocks, order

    @classmethod
    def of(cls, d: pd.DataFrame, factors: list[str], metric: str, base: pd.DataFrame):
        if not factors or d[factors].isna().any().any():
            return None
        blocks = {}
        for f in factors:
            codes, levels = pd.factorize(d[f], sort=True)
            blocks[f] = np.eye(len(levels))[codes][:, 1:]  # treatment coding, as patsy's C()
        order = list(factors)
        if len(base) - 1 > len(factors):  # anova added the first two factors' interaction
            a, b = blocks[factors[0]], blocks[factors[1]]
            name = f"{factors[0]}:{factors[1]}"
            blocks[name] = (a[:, :, None] * b[:, None, :]).reshape(len(d), -1)
            order.append(name)
        if list(base["term"]) != order + ["Residual"]:
            return None
        fast = cls(d[metric].to_numpy(float), blocks, order)
        full = fast._x(order, np.arange(len(d)))
        if np.linalg.matrix_rank(full) < full.shape[1]:
            return None
        return fast

    def _x(self, terms, rows) -> np.ndarray:
        return np.column_stack([np.ones(len(rows))] + [self.blocks[t][rows] for t in terms])

    def _rss(self, terms, rows) -> float:
        x, y = self._x(terms, rows), self.y[rows]
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        r = y - x @ beta
        return float(r @ r)

    def eta_sq(self, rows) -> pd.Series:
        inter = [t for t in self.order if ":" in t]
        mains = [t for t in self.order if ":" not in t]
        full = self._rss(self.order, rows)
        ss = {}
        for t in mains:
            inside = bool(inter) and t in inter[0].split(":")
            # the model of every term not containing t, with and without t
            others = [u for u in self.order if u != t and not (inside and u in inter)]
            ss[t] = self._rss(others, rows) - self._rss(others + [t], rows)
        if inter:
            ss[inter[0]] = self._rss(mains, rows) - full
        ss["Residual"] = full
        total = sum(ss.values())
        return pd.Series({t: v / total for t, v in ss.items()}, name="eta_sq")


def eta_sq_interval(df: pd.DataFrame, factors, metric: str = "test_acc", n_boot: int = 400,
                    confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """``anova``'s eta^2 per term with a percentile bootstrap interval.

    Each replicate resamples the trials within every cell of ``factors`` (so the design, and
    every term, survives) and refits the ANOVA. With three seeds per cell the resampled cells
    vary less than new seeds would, so the interval is, if anything, too narrow: a share whose
    interval still excludes another's is a clear difference, overlapping ones are not resolved.
    Columns: term, eta_sq, lo, hi, n_boot.
    """
    d = _ok(df, metric)
    base = anova(d, factors, metric)
    if not len(base):
        return pd.DataFrame(columns=["term", "eta_sq", "lo", "hi", "n_boot"])
    cells = [f for f in factors if f in d.columns and d[f].nunique() > 1]
    groups = [g.index.to_numpy() for _, g in d.groupby(cells, dropna=False)]
    rng = np.random.default_rng(seed)
    fast = _TypeTwo.of(d, cells, metric, base)
    draws = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        if fast is not None:
            draws.append(fast.eta_sq(d.index.get_indexer(idx)))
        else:
            draws.append(anova(d.loc[idx].reset_index(drop=True), factors, metric).set_index("term")["eta_sq"])
    boot = pd.concat(draws, axis=1)
    q = (1 - confidence) / 2
    out = base[["term", "eta_sq"]].copy()
    out["lo"] = out["term"].map(boot.quantile(q, axis=1))
    out["hi"] = out["term"].map(boot.quantile(1 - q, axis=1))
    out["n_boot"] = n_boot
    return out.reset_index(drop=True)


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


def paired(a_by_seed, b_by_seed, confidence: float = 0.95) -> dict:
    """Mean of the seed-matched differences a - b, its t CI, and the paired t-test p-value.

    Two Series indexed by seed are aligned on their common seeds; plain sequences must already
    be in matching order. Same keys as ``welch`` (plus ``n_pairs``), so rows mix freely.
    """
    if isinstance(a_by_seed, pd.Series) and isinstance(b_by_seed, pd.Series):
        both = pd.concat({"a": a_by_seed, "b": b_by_seed}, axis=1, join="inner").dropna()
        a, b = both["a"].to_numpy(float), both["b"].to_numpy(float)
    else:
        a, b = np.asarray(a_by_seed, float), np.asarray(b_by_seed, float)
        if len(a) != len(b):
            raise ValueError(f"paired: {len(a)} vs {len(b)} values; a paired test needs one value "
                             "per seed in each arm")
    d = a - b
    diff = d.mean() if len(d) else np.nan
    if len(d) < 2:
        return {"diff": diff, "lo": np.nan, "hi": np.nan, "p": np.nan, "n_pairs": len(d)}
    sd = d.std(ddof=1)
    if sd == 0:
        return {"diff": diff, "lo": diff, "hi": diff, "p": 0.0 if diff else 1.0, "n_pairs": len(d)}
    half = stats.t.ppf((1 + confidence) / 2, len(d) - 1) * sd / np.sqrt(len(d))
    p = stats.ttest_rel(a, b).pvalue
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "p": float(p), "n_pairs": len(d)}


# ``pairwise`` has an argument named ``paired``; this alias keeps the function reachable there.
paired_test = paired


def _by_seed(arm: pd.DataFrame, metric: str) -> pd.Series | None:
    """The arm's metric indexed by seed, or None when it does not hold one trial per seed."""
    if "seed" not in arm.columns or arm["seed"].duplicated().any():
        return None
    return arm.set_index("seed")[metric]


def holm(pvalues, weights=None) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979); NaN entries stay NaN and are not counted.

    The i-th smallest of m p-values becomes max over j <= i of (m - j + 1) p_(j), capped at 1:
    the same numbers as statsmodels' ``multipletests(method="holm")``, written out because
    that function runs a full ``gc.collect()`` on every call (0.4 s with torch loaded), and
    reports and every adaptive round call this dozens of times.

    ``weights`` (positive, one per p-value) give the weighted Holm procedure of the same paper:
    the tests are ordered by p / w and the j-th becomes max over k <= j of p_(k) / w_(k) times
    the weight of the tests not yet rejected before it (sum of w_(l), l >= k). Equal weights
    give the plain procedure."""
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q = p[ok]
        w = np.ones_like(q) if weights is None else np.asarray(weights, float)[ok]
        if (w <= 0).any():
            raise ValueError("holm: every weight must be positive")
        order = np.argsort(q / w, kind="stable")
        left = np.cumsum(w[order][::-1])[::-1]  # the weight of the tests from k on
        adjusted = np.minimum(np.maximum.accumulate(q[order] / w[order] * left), 1.0)
        back = np.empty(len(q))
        back[order] = adjusted
        out[ok] = back
    return out


def pair_groups(df: pd.DataFrame, group: str = "variant", within: str | None = "patch_size",
                metric: str = "test_acc"):
    """The pairs :func:`pairwise` tests, as (level of ``within``, a, b, arm a's trials, arm b's
    trials): every pair of ``group`` levels at each level of ``within``, ok trials only. The
    adaptive seeding of a sweep (analysis/decisions.py) decides the same pairs."""
    d = _ok(df, metric)
    strata = d.groupby(within) if within and within in d.columns and d[within].nunique() > 1 \
        else [(None, d)]
    for level, sub in strata:
        for a, b in itertools.combinations(sorted(sub[group].dropna().unique(), key=str), 2):
            yield level, a, b, sub[sub[group] == a], sub[sub[group] == b]


def seed_paired(arm_a: pd.DataFrame, arm_b: pd.DataFrame, metric: str = "test_acc") -> bool:
    """Whether two arms can be compared seed by seed: one ok trial per seed in each, and either
    the same seed set (two seeds or more) or at least three seeds in common. The second case is
    an adaptive sweep's (one arm took more seeds than the other: the paired test reads the seeds
    both have, which keeps the pairing an unpaired test would throw away)."""
    sa, sb = _by_seed(arm_a, metric), _by_seed(arm_b, metric)
    if sa is None or sb is None:
        return False
    shared = len(set(sa.index) & set(sb.index))
    return (set(sa.index) == set(sb.index) and shared >= 2) or shared >= 3


def pairwise(df: pd.DataFrame, group: str = "variant", within: str | None = "patch_size",
             metric: str = "test_acc", alpha: float = 0.05, paired: bool | None = None) -> pd.DataFrame:
    """Every pair of ``group`` levels at each level of ``within``; Holm across all of them.

    ``paired``: None (auto) uses the paired t-test, on the seeds both arms have, when
    :func:`seed_paired` says they pair, else Welch's; True insists on pairing (ValueError when the
    seeds do not match); False always uses Welch's. The ``test`` column says which was used.
    """
    rows = []
    for level, a, b, arm_a, arm_b in pair_groups(df, group, within, metric):
        shared = seed_paired(arm_a, arm_b, metric)
        if paired and not shared:
            raise ValueError(f"pairwise: {a} and {b}{'' if level is None else f' at {within}={level}'} "
                             "do not share their seeds (one ok trial per seed in each); use "
                             "paired=None or False for Welch's test")
        use_paired = shared if paired is None else paired
        if use_paired:
            res = paired_test(_by_seed(arm_a, metric), _by_seed(arm_b, metric))
        else:
            res = welch(arm_a[metric], arm_b[metric])
        n_pairs = res.pop("n_pairs", np.nan)
        rows.append({within or "stratum": level, "a": a, "b": b,
                     "n_a": len(arm_a), "n_b": len(arm_b), "n_pairs": n_pairs,
                     "test": "paired t" if use_paired else "Welch t", **res})
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


def at_levels(d: pd.DataFrame, factor: str, factors) -> pd.Series:
    """For one-factor-at-a-time comparisons of ``factor``: the levels the other ``factors``
    are held at, as one label per trial ("patch_size=4, depth=8")."""
    others = [g for g in factors if g != factor and g in d.columns]
    if not others:
        return pd.Series("all", index=d.index)
    # A factor that does not apply (NaN: kernel_size of attention, every factor of a
    # reference architecture) reads "n/a", so such arms still get a stratum of their own.
    return (d[others].map(lambda v: "n/a" if pd.isna(v) else str(v)).radd([f"{g}=" for g in others])
            .agg(", ".join, axis=1))


def factor_pair_groups(df: pd.DataFrame, factors, metric: str = "test_acc"):
    """The pairs :func:`factor_pairs` tests, as (factor, at, a, b, arm a, arm b)."""
    d = _ok(df, metric)
    for f in factors:
        if f not in d.columns or d[f].nunique() < 2:
            continue
        at = at_levels(d, f, factors)
        for level, a, b, arm_a, arm_b in pair_groups(d.assign(at=at.values), f, "at", metric):
            yield f, (at.iloc[0] if level is None else level), a, b, arm_a, arm_b


def factor_pairs(df: pd.DataFrame, factors, metric: str = "test_acc", alpha: float = 0.05) -> pd.DataFrame:
    """One factor at a time: every pair of levels of each factor at each combination of the
    other factors (where both arms exist), so no comparison pools over a second factor.

    Holm's correction runs within each factor's family of comparisons (one question per
    factor: "does the kernel size matter", "does the stem matter"). ``at`` names the levels
    the other factors are held at; the test is paired where the two arms share their seeds.
    """
    d = _ok(df, metric)
    frames = []
    for f in factors:
        if f not in d.columns or d[f].nunique() < 2:
            continue
        at = at_levels(d, f, factors)
        pairs = pairwise(d.assign(at=at.values), group=f, within="at", metric=metric, alpha=alpha)
        if not len(pairs):
            continue
        pairs = pairs.rename(columns={"stratum": "at"})
        if "at" not in pairs or pairs["at"].isna().all():
            pairs["at"] = at.iloc[0]
        pairs["p_holm"] = holm(pairs["p"])
        pairs["significant"] = pairs["p_holm"] < alpha
        frames.append(pairs.assign(factor=f))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["factor", "at"] + [c for c in out.columns if c not in ("factor", "at")]]
