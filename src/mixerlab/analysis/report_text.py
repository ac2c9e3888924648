"""The report's text: tables as markdown and the verdict's sentences, each from the tables of a
:class:`~mixerlab.analysis.comparison.Comparison` (nothing here chooses, tests or writes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixerlab.analysis import plots
from mixerlab.analysis.aggregate import is_number, level_text, levels
from mixerlab.analysis.comparison import Stratum, stratum_factor
from mixerlab.analysis.nuisance import arm_label
from mixerlab.analysis.pareto import pareto_front
from mixerlab.analysis.stats import anova
from mixerlab.config import ModelConfig
from mixerlab.late_gain import STILL_CLIMBING
from mixerlab.models.mixers.registry import list_controls

# The layout the others are measured against: the skeleton's own (config's default).
BASE_LAYOUT = ModelConfig.model_fields["layout"].default


def _fmt(v, digits=2) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v):,}"
    return f"{v:.{digits}f}"


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured markdown table (numbers formatted for reading)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) if not isinstance(r[c], str) else r[c] for c in cols) + " |")
    return "\n".join(lines)


def _ci(r, m, digits=2) -> str:
    return f"{_fmt(r[f'{m}_mean'], digits)} ({_fmt(r[f'{m}_lo'], digits)} to {_fmt(r[f'{m}_hi'], digits)})"


def results_table(agg: pd.DataFrame, keys) -> pd.DataFrame:
    rows = []
    for _, r in agg.sort_values("test_acc_mean", ascending=False).iterrows():
        row = {k: str(r[k]) if not isinstance(r[k], float) or not np.isnan(r[k]) else "-" for k in keys}
        row.update({"test acc % (95% CI)": _ci(r, "test_acc"), "seeds ok": f"{r['n_ok']}/{r['n_trials']}",
                    "params": r["params_mean"], "MACs": r["macs_mean"],
                    "infer img/s": r.get("infer_images_per_s_mean", np.nan),
                    "train s": r.get("train_time_s_mean", np.nan)})
        rows.append(row)
    return pd.DataFrame(rows)


def _term(t: str) -> str:
    names = {"variant": "the token mixer", "patch_size": "patch size", "layout": "the layout"}
    if ":" in t:
        return "the interaction of " + " and ".join(names.get(x, x) for x in t.split(":"))
    return names.get(t, t.replace("_", " "))


def _tests_used(pairs: pd.DataFrame) -> str:
    """'paired t-tests', 'Welch t-tests' or '4 paired t-tests, 2 Welch t-tests'."""
    counts = pairs["test"].value_counts() if "test" in pairs else pd.Series({"Welch t": len(pairs)})
    if len(counts) == 1:
        return f"{counts.index[0]}-tests"
    return ", ".join(f"{n} {t}-tests" for t, n in counts.items())


def verdict(df: pd.DataFrame, effects: pd.DataFrame, pairs: pd.DataFrame, factors, n_seeds) -> list[str]:
    """Plain sentences, each with the numbers behind it."""
    if not len(effects):
        return [f"With {len(df)} trial(s) and the factors varied ({', '.join(factors) or 'none'}), "
                "there are not enough replicates for an analysis of variance; no effect can be "
                "claimed. Run more seeds."]
    out = _share_lines(effects, factors)
    out += _without_controls(df, factors, set(effects["term"]))
    if len(pairs):
        out += _pair_lines(df, pairs, stratum_factor(factors))
        n_sig = int(pairs["significant"].sum())
        out.append(f"{n_sig} of {len(pairs)} pairwise comparisons ({_tests_used(pairs)}) are significant at "
                   "5% after Holm correction.")
    return out


def _share_lines(effects: pd.DataFrame, factors) -> list[str]:
    """Each term's share of the variance; which of the mixer and the stratum explains more."""
    share = dict(zip(effects["term"], effects["eta_sq"]))
    partial = dict(zip(effects["term"], effects["partial_eta_sq"]))
    pvals = dict(zip(effects["term"], effects["p"]))
    parts = [f"{_term(t)} explains {_share(share[t])} of the variance in test accuracy (partial eta^2 "
             f"{partial[t]:.2f}, p={pvals[t]:.2g})" for t in share if t != "Residual"]
    out = ["Across the trials, " + "; ".join(parts) + f"; {_share(share.get('Residual', 0))} is "
           "left to seeds and noise."]
    stratum = stratum_factor(factors)
    if stratum in share and "variant" in share:
        bigger = _term(stratum) if share[stratum] > share["variant"] else "the token mixer"
        out.append(f"So on this evidence {bigger} matters more for accuracy "
                   f"({_share(share[stratum])} for {_term(stratum)} vs {_share(share['variant'])} for the mixer).")
    return out


def _without_controls(df: pd.DataFrame, factors, terms) -> list[str]:
    """The control can carry most of the mixer's share on its own; the paper's question is
    also whether the *kind* of token mixing matters once there is some."""
    controls = list_controls()
    mixing = df[~df["variant"].isin(controls)] if "variant" in df else df
    if "variant" not in terms or mixing["variant"].nunique() < 2 or len(mixing) >= len(df):
        return []
    sub = anova(mixing, factors).set_index("term")
    if "variant" not in sub.index:
        return []
    others = ", ".join(f"{_term(t)} {_share(sub.loc[t, 'eta_sq'])}" for t in sub.index
                       if t not in ("variant", "Residual"))
    return [f"Without the {'/'.join(sorted(set(df['variant']) & controls))} control, among "
            f"the mixers that do mix tokens ({', '.join(sorted(mixing['variant'].unique()))}), "
            f"the choice of mixer explains {_share(sub.loc['variant', 'eta_sq'])} of the variance "
            f"(p={sub.loc['variant', 'p']:.2g})" + (f"; {others}" if others else "") + "."]


def _pair_lines(df: pd.DataFrame, pairs: pd.DataFrame, stratum) -> list[str]:
    """Per stratum: the best mixer against the second, and the control's distance to the best."""
    out, ok, controls = [], df[df["status"] == "ok"], list_controls()
    within = stratum if stratum in pairs.columns else pairs.columns[0]
    # dropna=False: without a `within` factor the stratum column is None, one overall group.
    for level, sub in pairs.groupby(within, dropna=False):
        arms = ok[ok[within] == level] if within in ok.columns else ok
        means = arms.groupby("variant")["test_acc"].mean().sort_values(ascending=False)
        if len(means) < 2:
            continue
        best, second = means.index[0], means.index[1]
        row = sub[((sub["a"] == best) & (sub["b"] == second)) | ((sub["a"] == second) & (sub["b"] == best))]
        if not len(row):
            continue
        r = row.iloc[0]
        sign = 1 if r["a"] == best else -1
        lo, hi = sorted((sign * r["lo"], sign * r["hi"]))
        sig = "significant" if r["significant"] else "not significant"
        where = (f"At patch size {int(level)}" if within == "patch_size" else
                 f"In the {level} layout" if within == "layout" else "Overall")
        test = (f"paired t-test over {int(r.get('n_pairs', r['n_a']))} shared seeds" if r.get("test") == "paired t"
                else "Welch t-test")
        line = (f"{where}, {best} leads {second} by {sign * r['diff']:.2f} points (95% CI {lo:.2f} to "
                f"{hi:.2f}, {test}), {sig} after Holm correction (p={r['p_holm']:.2g})")
        for control in sorted(controls & set(means.index) - {best}):
            line += (f"; the {control} control (no token mixing) is {means[best] - means[control]:.2f} "
                     f"points behind {best}")
        out.append(line + ".")
    return out


def _share(x: float) -> str:
    """A variance share as a whole percentage that never rounds a real effect to 0% or 100%."""
    if 0 < x < 0.005:
        return "<1%"
    if 0.995 <= x < 1:
        return ">99%"
    return f"{x:.0%}"


def _levels(values: pd.Series) -> str:
    """A factor's levels, in their natural order, as text."""
    return ", ".join(map(level_text, levels(values)))


def _efficiency(prov: dict) -> str:
    """Sweep efficiency, or why there is none: it is defined for one uninterrupted session."""
    eff = prov.get("sweep_efficiency")
    if eff is not None:
        return str(eff)
    n = len(prov.get("sessions", []))
    return f"n/a ({n} sessions: resumed or extended)" if n > 1 else "n/a"


def _pairwise_heading(pairs: pd.DataFrame) -> str:
    tests = set(pairs["test"]) if "test" in pairs else {"Welch t"}
    if tests == {"Welch t"}:
        return "Welch t-test"
    if tests == {"paired t"}:
        return "paired t-test on seed-matched differences"
    return "paired t-test on the seeds both arms share, else Welch t-test"


def sections(c: Stratum, level: str) -> list[str]:
    """Results, Pareto fronts, effects and pairwise comparisons of one stratum."""
    keys, agg, effects, pairs, shown = c.keys, c.agg, c.effects, c.pairs, c.shown
    cols = list(keys) + [k for k in shown if k in agg]
    lines = [f"{level} Results (mean over seeds, 95% t-interval)", "", markdown_table(results_table(agg, cols)), ""]
    for x, label in (("params", "parameters"), ("infer_images_per_s", "inference throughput")):
        if f"{x}_mean" in agg and agg[f"{x}_mean"].notna().any():
            front = pareto_front(agg, f"{x}_mean", "test_acc_mean", x_better=plots.BETTER[x])
            for k in shown:  # recipe values such as lr=0.005 would read 0.01 at two decimals
                if k in front:
                    front[k] = front[k].astype(str)
            lines += [f"{level} Pareto front: accuracy vs {label}", "",
                      markdown_table(front[cols + [f"{x}_mean", "test_acc_mean"]].rename(
                          columns={f"{x}_mean": label, "test_acc_mean": "test acc %"})), ""]
    if len(effects):
        lines += [f"{level} Effects (type-II ANOVA of test accuracy)", "",
                  "eta^2 is the share of all variance a term explains; partial eta^2 is SS_term / (SS_term + SS_error).", "",
                  markdown_table(effects), ""]
    if len(pairs):
        lines += [f"{level} Pairwise comparisons ({_pairwise_heading(pairs)}, Holm-corrected over all pairs)", ""]
        if (pairs.get("test") == "paired t").any():
            lines += ["A seed fixes the data order and the augmentation stream for every arm (and the initial "
                      "weights of arms with the same model shape), so where two arms share their seeds the "
                      "test is on the seed-matched differences, which removes that shared variance.", ""]
        lines += [markdown_table(pairs.rename(columns={"diff": "a - b (points)", "lo": "CI lo", "hi": "CI hi"})), ""]
    fp = c.factor_pairs
    if len(fp):
        lines += [f"{level} Pairwise comparisons, one factor at a time ({_pairwise_heading(fp)}, "
                  "Holm-corrected within each factor)", "",
                  "Each row compares two levels of `factor` with every other factor held at the "
                  "levels in `at`.", "",
                  markdown_table(fp.rename(columns={"diff": "a - b (points)", "lo": "CI lo", "hi": "CI hi"})), ""]
    layouts = c.layouts
    if len(layouts):
        lines += [f"{level} Layout within each mixer ({_pairwise_heading(layouts)}, Holm-corrected over the mixers)", "",
                  markdown_table(layouts.rename(columns={"diff": "a - b (points)", "lo": "CI lo", "hi": "CI hi"})), ""]
    return lines


def factor_lines(fp: pd.DataFrame) -> list[str]:
    """Per factor and holding: its extreme levels compared (numeric factors: does more help;
    two named levels: the one against the other); then how many comparisons are significant."""
    out = []
    if not len(fp):
        return out
    for (f, at), sub in fp.groupby(["factor", "at"], sort=False):
        ordered = levels(set(sub["a"]) | set(sub["b"]))
        numeric = all(is_number(v) for v in ordered)
        if len(ordered) < 2 or not (numeric or len(ordered) == 2):
            continue  # several named levels (mixers): the table has every pair
        lo_lv, hi_lv = (ordered[0], ordered[-1]) if numeric else (ordered[-1], ordered[0])
        r = sub[((sub["a"] == hi_lv) & (sub["b"] == lo_lv)) | ((sub["a"] == lo_lv) & (sub["b"] == hi_lv))]
        if not len(r):
            continue
        r = r.iloc[0]
        sign = 1 if r["a"] == hi_lv else -1
        ci = sorted((sign * r["lo"], sign * r["hi"]))
        test = "paired" if r.get("test") == "paired t" else "Welch"
        where = "" if at == "all" else f" at {at}"
        out.append(f"{_term(f).capitalize()} {_fmt_level(hi_lv)} vs {_fmt_level(lo_lv)}{where}: "
                   f"{sign * r['diff']:+.2f} points (95% CI {ci[0]:.2f} to {ci[1]:.2f}, {test}), "
                   f"{'significant' if r['significant'] else 'not significant'} after Holm within "
                   f"{_term(f)} (p={r['p_holm']:.2g}).")
    for f, sub in fp.groupby("factor", sort=False):
        out.append(f"{int(sub['significant'].sum())} of {len(sub)} comparisons of {_term(f)} levels "
                   f"({_tests_used(sub)}) are significant at 5% after Holm correction.")
    return out


def _fmt_level(v) -> str:
    return f"{float(v):g}" if is_number(v) else str(v)


def layout_lines(layouts: pd.DataFrame) -> list[str]:
    """One verdict sentence per mixer: its other layout against the base (isotropic) one."""
    out = []
    for _, r in layouts.iterrows():
        sign = -1 if r["a"] == BASE_LAYOUT else 1  # report the other layout - the base one
        other, base = (r["b"], r["a"]) if sign < 0 else (r["a"], r["b"])
        lo, hi = sorted((sign * r["lo"], sign * r["hi"]))
        test = "paired t-test" if r.get("test") == "paired t" else "Welch t-test"
        sig = "significant" if r["significant"] else "not significant"
        out.append(f"For {r['variant']}, the {other} layout is {sign * r['diff']:+.2f} points against the "
                   f"{base} one (95% CI {lo:.2f} to {hi:.2f}, {test}), {sig} after Holm correction "
                   f"(p={r['p_holm']:.2g}).")
    return out


def _nuisance_lines(choices: pd.DataFrame, nuisance) -> list[str]:
    """Verdict bullets for arms compared on fewer seeds, or not at all (ASHA)."""
    out = []
    for _, r in choices.iterrows():
        if r["all_stopped"]:
            out.append(f"Every trial of {r['arm']} was stopped by ASHA or failed, at every "
                       f"{'/'.join(nuisance)} setting: it has no test accuracy and takes no part in the comparisons.")
        elif r["fallback"]:
            out.append(f"No {'/'.join(nuisance)} setting of {r['arm']} finished ok on every seed; it is compared "
                       f"at {r['setting']}, the setting with the most ok seeds ({r['n_ok']} of {r['n_trials']}), "
                       "so on fewer seeds than the other arms.")
    return out


def _choices_table(choices: pd.DataFrame) -> pd.DataFrame:
    note = np.where(choices["all_stopped"], "all stopped: no test accuracy",
                    np.where(choices["fallback"], "fallback: no setting ok on every seed", ""))
    return pd.DataFrame({"arm": choices["arm"], "chosen setting": choices["setting"],
                         "val acc % (mean over seeds)": choices["val_acc_mean"],
                         "seeds ok": [f"{a}/{b}" for a, b in zip(choices["n_ok"], choices["n_trials"])],
                         "settings eligible": [f"{a} of {b}" for a, b in zip(choices["n_eligible"], choices["n_settings"])],
                         "note": note})


def _isolation_markdown(iso: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"arm": iso["arm"], "setting": iso["setting"], "val acc %": iso["val_acc_mean"],
                         "test acc % (95% CI)": [_ci(r, "test_acc") for _, r in iso.iterrows()],
                         "seeds ok": [f"{a}/{b}" for a, b in zip(iso["n_ok"], iso["n_trials"])],
                         "chosen": np.where(iso["chosen"], "yes", ""), "edge": iso["edge"]})


def _arms(table: pd.DataFrame, keys) -> list[str]:
    return [arm_label(r, list(keys)) for _, r in table.iterrows()]


def convergence_lines(table: pd.DataFrame, keys) -> list[str]:
    """One verdict bullet: the arms still climbing at the end of training, or that none was."""
    measured = table[table["n"] > 0] if len(table) else table
    if not len(measured):
        return ["Convergence not measured: no arm ran two epochs or more (the late gain needs an "
                "earlier epoch to compare with)."]
    climbing = measured[measured["climbing"]]
    rule = (f"validation accuracy gained more than {STILL_CLIMBING:g} points over the last 20% of "
            "training, mean over seeds")
    if not len(climbing):
        return [f"Late gain (a diagnostic, never a gate): no arm's {rule}; largest "
                f"{measured['gain_mean'].max():+.2f}."]
    names = ", ".join(f"{a} {g:+.1f}" for a, g in zip(_arms(climbing, keys), climbing["gain_mean"]))
    return [f"Late gain (a diagnostic, never a gate): still rising when training ended ({rule}): {names}. "
            f"{len(climbing)} of {len(measured)} arms. The schedule's anneal lifts the last epochs by itself; "
            "whether a conclusion holds as training grows is asked of the claims, across budgets."]


def convergence_section(table: pd.DataFrame, keys) -> list[str]:
    if not len(table):
        return []
    shown = pd.DataFrame({"arm": _arms(table, keys),
                          "late gain, points (mean over seeds)": table["gain_mean"],
                          "min": table["gain_min"], "max": table["gain_max"],
                          "seeds": table["n"], "still climbing": np.where(table["climbing"], "yes", "")})
    return ["## Convergence (validation gain over the last 20% of training)", "",
            f"Validation accuracy after the last epoch minus after the epoch at 80% of training "
            f"(mixerlab.late_gain.late_gain), a diagnostic: an arm whose mean gain is above {STILL_CLIMBING:g} "
            "points was still rising. No verdict depends on it (a claim's stability is judged across "
            "budgets instead, mixerlab/analysis/claims.py). The schedule anneals the learning rate over this stretch, which lifts "
            "accuracy by itself: a large gain says the curve was still rising, not why.", "",
            markdown_table(shown), ""]


def execution_line(df: pd.DataFrame) -> str:
    """How the trials ran (mixerlab/execution.py): each variant's way, with its trial count."""
    if "precision" not in df.columns or df["precision"].isna().all():
        return "- How the trials ran: as before ways were chosen (fp32 on CPU, bf16 autocast on CUDA)"
    ran = df.dropna(subset=["precision"])
    layout = ran["channels_last"].map({True: "channels_last", False: "nchw"})
    kernel = ran["attention_kernel"].where(ran["attention_kernel"] != "fused", "")
    way = (ran["precision"] + " " + layout + " " + kernel).str.strip() + " (" + ran["execution"] + ")"
    counts = way.groupby(ran["variant"], sort=False).value_counts()
    return "- How the trials ran (per variant; measured = fastest of its candidates): " + "; ".join(
        f"{v}: {w} x{n}" for (v, w), n in counts.items())
