"""The report: figures, tables and a verdict that answers the study's question with evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mixerlab.analysis import plots
from mixerlab.analysis.aggregate import (
    aggregate,
    design_factors,
    factors_varied,
    is_number,
    level_text,
    levels,
)
from mixerlab.analysis.load import load_history, load_provenance, load_spec, load_studies
from mixerlab.analysis.nuisance import (
    choose_nuisance,
    edge_warnings,
    isolation_table,
    nuisance_grid,
)
from mixerlab.analysis.pareto import pareto_front
from mixerlab.analysis.stats import anova, early_vs_final, factor_pairs, pairwise
from mixerlab.results import atomic_write_text

# Variants that do no learned token mixing: the paper's control (MetaFormer's IdentityFormer).
CONTROLS = {"identity"}


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
    out = []
    share = dict(zip(effects["term"], effects["eta_sq"])) if len(effects) else {}
    partial = dict(zip(effects["term"], effects["partial_eta_sq"])) if len(effects) else {}
    pvals = dict(zip(effects["term"], effects["p"])) if len(effects) else {}
    if not share:
        out.append(f"With {len(df)} trial(s) and the factors varied ({', '.join(factors) or 'none'}), "
                   "there are not enough replicates for an analysis of variance; no effect can be "
                   "claimed. Run more seeds.")
        return out
    parts = [f"{_term(t)} explains {_share(share[t])} of the variance in test accuracy (partial eta^2 "
             f"{partial[t]:.2f}, p={pvals[t]:.2g})" for t in share if t != "Residual"]
    out.append("Across the trials, " + "; ".join(parts) + f"; {_share(share.get('Residual', 0))} is "
               "left to seeds and noise.")
    stratum = _stratum(factors)
    if stratum in share and "variant" in share:
        bigger = _term(stratum) if share[stratum] > share["variant"] else "the token mixer"
        out.append(f"So on this evidence {bigger} matters more for accuracy "
                   f"({_share(share[stratum])} for {_term(stratum)} vs {_share(share['variant'])} for the mixer).")
    mixing = df[~df["variant"].isin(CONTROLS)] if "variant" in df else df
    if "variant" in share and mixing["variant"].nunique() >= 2 and len(mixing) < len(df):
        # The identity control can carry most of the mixer's share on its own; the paper's
        # question is also whether the *kind* of token mixing matters once there is some.
        sub = anova(mixing, factors).set_index("term")
        if "variant" in sub.index:
            others = ", ".join(f"{_term(t)} {_share(sub.loc[t, 'eta_sq'])}" for t in sub.index
                               if t not in ("variant", "Residual"))
            out.append(f"Without the {'/'.join(sorted(set(df['variant']) & CONTROLS))} control, among "
                       f"the mixers that do mix tokens ({', '.join(sorted(mixing['variant'].unique()))}), "
                       f"the choice of mixer explains {_share(sub.loc['variant', 'eta_sq'])} of the variance "
                       f"(p={sub.loc['variant', 'p']:.2g})" + (f"; {others}" if others else "") + ".")
    if len(pairs):
        ok = df[df["status"] == "ok"]
        within = stratum if stratum in pairs.columns else pairs.columns[0]
        # dropna=False: without a `within` factor the stratum column is None, one overall group.
        for level, sub in pairs.groupby(within, dropna=False):
            means = ok[ok[within] == level].groupby("variant")["test_acc"].mean().sort_values(ascending=False) \
                if within in ok.columns else ok.groupby("variant")["test_acc"].mean().sort_values(ascending=False)
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
            test = (f"paired t-test over {int(r['n_a'])} shared seeds" if r.get("test") == "paired t"
                    else "Welch t-test")
            line = (f"{where}, {best} leads {second} by {sign * r['diff']:.2f} points (95% CI {lo:.2f} to "
                    f"{hi:.2f}, {test}), {sig} after Holm correction (p={r['p_holm']:.2g})")
            if "identity" in means.index and best != "identity":
                line += (f"; the identity control (no token mixing) is {means[best] - means['identity']:.2f} "
                         f"points behind {best}")
            out.append(line + ".")
        n_sig = int(pairs["significant"].sum())
        out.append(f"{n_sig} of {len(pairs)} pairwise comparisons ({_tests_used(pairs)}) are significant at "
                   "5% after Holm correction.")
    return out


# The structural factors a mixer is compared within, in order: where the layout varies, the
# patch size usually follows from it (a pyramid's stem against isotropic patches).
STRATA = ("layout", "patch_size")


def _stratum(factors) -> str | None:
    """The factor the mixers are compared within: the first of STRATA that is a design factor."""
    return next((f for f in STRATA if f in factors), None)


# Model fields `match` solves for each variant: they vary in the table, but as a consequence of
# the variant, not as a factor the study chose.
SOLVED = ("width", "channel_mlp_ratio")


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


def _keys(df: pd.DataFrame, exclude=()) -> list[str]:
    """The varied factors, variant and the strata first, without ``exclude`` (nuisance, strata)."""
    factors = [f for f in factors_varied(df) if f not in exclude]
    first = ("variant", *STRATA)
    keys = [f for f in first if f in factors] + [f for f in factors if f not in first]
    return keys or ["variant"]


def _compare(df: pd.DataFrame, keys, shown=()) -> dict:
    """Everything the report says about one set of comparable trials (one matching)."""
    design = design_factors(df, keys)  # solved widths etc. are not factors of their own
    # Mixers compared within a stratum (the patch size, the layout) is the right comparison
    # only when nothing else varies; with other factors (kernel, depth, width, stem) or one
    # mixer, every factor is compared one at a time at fixed levels of the others instead,
    # so no comparison pools arms over a factor it does not name.
    one_at_a_time = "variant" not in design or any(f not in ("variant", *STRATA) for f in design)
    return {"df": df, "keys": keys, "agg": aggregate(df, by=list(keys) + [c for c in shown if c in df]),
            "effects": anova(df, design), "design": design,
            "pairs": pairwise(df, group="variant", within=_stratum(design))
            if "variant" in design and not one_at_a_time else pd.DataFrame(),
            "factor_pairs": factor_pairs(df, design) if one_at_a_time else pd.DataFrame(),
            # Layout studies ask the other way round too: for each mixer, pyramid vs isotropic.
            "layouts": pairwise(df, group="layout", within="variant")
            if {"variant", "layout"} <= set(design) else pd.DataFrame(),
            "n_seeds": int(df.groupby(keys, dropna=False).size().max()) if len(df) else 0}


def _pairwise_heading(pairs: pd.DataFrame) -> str:
    tests = set(pairs["test"]) if "test" in pairs else {"Welch t"}
    if tests == {"Welch t"}:
        return "Welch t-test"
    if tests == {"paired t"}:
        return "paired t-test on seed-matched differences"
    return "paired t-test where both arms share their seeds, else Welch t-test"


def _sections(c: dict, level: str, shown=()) -> list[str]:
    """Results, Pareto fronts, effects and pairwise comparisons of one ``_compare``."""
    keys, agg, effects, pairs = c["keys"], c["agg"], c["effects"], c["pairs"]
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
    fp = c.get("factor_pairs", pd.DataFrame())
    if len(fp):
        lines += [f"{level} Pairwise comparisons, one factor at a time ({_pairwise_heading(fp)}, "
                  "Holm-corrected within each factor)", "",
                  "Each row compares two levels of `factor` with every other factor held at the "
                  "levels in `at`.", "",
                  markdown_table(fp.rename(columns={"diff": "a - b (points)", "lo": "CI lo", "hi": "CI hi"})), ""]
    layouts = c.get("layouts", pd.DataFrame())
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
    """One verdict sentence per mixer: its pyramid against its isotropic layout."""
    out = []
    for _, r in layouts.iterrows():
        sign = 1 if r["a"] == "pyramid" else -1  # report pyramid - isotropic
        lo, hi = sorted((sign * r["lo"], sign * r["hi"]))
        test = "paired t-test" if r.get("test") == "paired t" else "Welch t-test"
        sig = "significant" if r["significant"] else "not significant"
        out.append(f"For {r['variant']}, the pyramid layout is {sign * r['diff']:+.2f} points against the "
                   f"isotropic one (95% CI {lo:.2f} to {hi:.2f}, {test}), {sig} after Holm correction "
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


def write_report(study_paths, out_dir=None) -> tuple[Path, str]:
    paths = [Path(p) for p in study_paths]
    df = load_studies(paths)
    history = load_history(paths)
    spec, prov = load_spec(paths[0]), load_provenance(paths[0])
    out = Path(out_dir) if out_dir else paths[0] / "report"
    grid = spec.get("nuisance") or {}
    nuisance = list(grid)

    # Nuisance factors: each arm at its own best recipe, chosen on validation, never on test.
    analysed, choices, iso, edges = df, None, None, []
    if nuisance:
        scientific = [f for f in factors_varied(df) if f not in nuisance]
        chosen = choose_nuisance(df, nuisance, scientific)
        choices = chosen.attrs["choices"]
        analysed = chosen.copy()
        analysed.attrs = {}  # attrs holding DataFrames break pd.concat in the plotting code
        iso = isolation_table(df, nuisance, scientific, grid=grid)
        edges = edge_warnings(choices, nuisance_grid(df, nuisance, grid))

    # Matching by several costs: each matching is its own comparison.
    if "match_by" in factors_varied(analysed):
        strata = [(by, analysed[analysed["match_by"] == by]) for by in sorted(analysed["match_by"].dropna().unique())]
    else:
        strata = [(None, analysed)]
    shown = tuple(nuisance)
    compared = [(by, _compare(sub, _keys(sub, exclude=(*nuisance, "match_by")), shown)) for by, sub in strata]
    keys = _keys(analysed, exclude=nuisance)
    n_seeds = max(c["n_seeds"] for _, c in compared)

    figs = []
    for by, c in compared:
        sub, sfx, ttl = c["df"], f"_by_{by}" if by else "", f" (matched by {by})" if by else ""
        for x in ("params", "macs", "infer_images_per_s", "train_time_s"):
            if f"{x}" in sub.columns and sub.loc[sub.status == "ok", x].notna().any():
                figs.append((f"tradeoff_{x}{sfx}", plots.tradeoff(sub, x), f"Accuracy vs {plots.LABELS[x]}{ttl}"))
        figs.append((f"effects{sfx}", plots.effects(sub, c["keys"]), f"Factor effects{ttl}"))
        if {"variant", "patch_size"} <= set(c["keys"]):
            figs.append((f"interaction{sfx}", plots.interaction(sub), f"Mixer x patch size{ttl}"))
    if len(history):
        curves = history[history["trial_id"].isin(analysed["trial_id"])] if nuisance else history
        figs.append(("learning_curves", plots.learning_curves(curves),
                     "Learning curves" + (" (the chosen settings)" if nuisance else "")))
    if nuisance and scientific:
        x = "variant" if "variant" in scientific else scientific[0]
        figs.append(("isolation", plots.isolation(df, nuisance, x, scientific),
                     f"Isolation plot: {x} at every {'/'.join(nuisance)} setting"))
    for name, fig, _ in figs:
        plots.save(fig, out, name)

    question = spec.get("question") or prov.get("question") or "(no question recorded)"
    says_by = [(by, verdict(c["df"], c["effects"], c["pairs"], c["design"], c["n_seeds"])
                 + factor_lines(c["factor_pairs"]) + layout_lines(c["layouts"])) for by, c in compared]
    train, data = spec.get("train", {}), spec.get("dataset", {})
    limits = (f"Limits: one data set ({', '.join(sorted(df['dataset'].dropna().unique())) if 'dataset' in df else '?'}"
              f"{', training subset of ' + str(data['train_subset']) + ' images' if data.get('train_subset') else ''}), "
              f"{n_seeds} seed(s) per configuration, {train.get('epochs', df['epochs'].max() if 'epochs' in df else '?')} "
              "epoch(s) of training, small models on "
              f"{', '.join(sorted(df['device_name'].dropna().unique())) if 'device_name' in df else '?'}. "
              "Differences between mixers may change with longer training, larger data or other scales.")
    general = []
    for _, c in compared[:1]:
        # A factor that follows from the others is not tested on its own: say so, not silently.
        for f in c["keys"]:
            if f not in c["design"] and f not in SOLVED and c["design"]:
                # Name the one factor it follows from where there is one (image size from the
                # patch size), else the design that determines it jointly.
                alone = [d for d in c["design"] if c["df"].groupby(d)[f].nunique(dropna=False).max() <= 1]
                by = alone[:1] or c["design"]
                general.append(f"{_term(f).capitalize()} is not a separate factor in this design: it "
                               f"follows from {', '.join(_term(d) for d in by)}, so its effect "
                               f"is counted in {'that' if len(by) == 1 else 'theirs'}.")
    if nuisance:
        general.append(f"Each arm is compared at its own {', '.join(nuisance)} setting: the one with the best mean "
                       f"final-epoch validation accuracy over its seeds, among the settings that finished ok on "
                       "every seed (see 'Nuisance settings chosen per arm'); the test set played no part in the choice.")
        general += _nuisance_lines(choices, nuisance) + [f"Edge of the range: {w}." for w in edges]
    lines = [f"# {', '.join(sorted(df['study'].unique()))}: report", "", f"**Question.** {question}", ""]
    if not df.attrs.get("complete", True):
        lines += [f"> **INCOMPLETE STUDY**: {len(df)} of {df.attrs.get('planned')} planned trials have "
                  "results. Numbers below are partial; re-run the sweep command to finish it.", ""]
    if len(compared) == 1:
        says = says_by[0][1] + general
        lines += ["## Verdict", "", *[f"- {s}" for s in says], f"- {limits}", ""]
    else:
        says = [f"Matched by {by}: {s}" for by, ss in says_by for s in ss] + general
        lines += ["## Verdict", "", *[f"- {s}" for s in general], f"- {limits}", ""]
        for by, ss in says_by:
            lines += [f"### Matched by {by}", "", *[f"- {s}" for s in ss], ""]
    lines += ["## What was run", ""]
    solved = [f for f in keys if f in SOLVED and "match_by" in df]
    lines += ["- Factors varied: " + ", ".join(f"{f} ({_levels(df[f])})" for f in keys if f not in solved)]
    if solved:
        lines += ["- Solved by capacity matching, per variant (not factors of the design): "
                  + ", ".join(f"{f} ({_levels(df[f])})" for f in solved)]
    if nuisance:
        lines += ["- Nuisance factors, tuned per arm: " + ", ".join(
            f"{k} ({', '.join(map(str, v))})" for k, v in nuisance_grid(df, nuisance, grid).items())]
    lines += [f"- Trials: {len(df)} ({', '.join(f'{n} {s}' for s, n in df['status'].value_counts().items())}), "
              f"up to {n_seeds} seed(s) per configuration",
              f"- Data: {data or {}}", f"- Recipe overrides: {train or {}}; base model: {spec.get('model', {})}",
              f"- Command: `{prov.get('command', '?')}`; wall time {prov.get('wall_time_s', '?')} s; "
              f"sweep efficiency {_efficiency(prov)}",
              f"- Hardware: {prov.get('hardware', {}).get('cpu', '?')} ({prov.get('hardware', {}).get('cpu_count', '?')} cores), "
              f"GPUs: {prov.get('hardware', {}).get('gpus') or 'none'}",
              "- Versions: " + ", ".join(f"{k.replace('_version', '')} {v}" for k, v in prov.get("versions", {}).items()), ""]
    if nuisance:
        lines += ["## Nuisance settings chosen per arm (by validation accuracy)", "",
                  "Every arm was trained at every setting on every seed. Its setting is the one with the best "
                  "mean final-epoch validation accuracy over the seeds (the final model is the one tested); "
                  "a setting ASHA stopped (or that failed) on any seed is not eligible. The test accuracy "
                  "is never read to choose. Everything below this section uses the chosen trials only.", "",
                  markdown_table(_choices_table(choices)), "",
                  "### Every setting (isolation table)", "", markdown_table(_isolation_markdown(iso)), ""]
        if any(name == "isolation" for name, _, _ in figs):
            lines += ["![Isolation plot](isolation.png)", ""]
    for by, c in compared:
        if by is None:
            lines += _sections(c, "##", shown)
        else:
            lines += [f"## Matched by {by}", ""] + _sections(c, "###", shown)
    if spec.get("scheduler", {}).get("type") == "asha" and len(history):
        lines += ["## Early vs final accuracy (ASHA)", "",
                  markdown_table(pd.DataFrame([early_vs_final(history, df, e) for e in sorted(history["epoch"].unique())[:-1]])), ""]
    lines += ["## Figures", ""] + [f"### {title}\n\n![{title}]({name}.png)\n" for name, _, title in figs]
    failed = df[df["status"] != "ok"]
    if len(failed):
        cols = [c for c in ("trial_id", "variant", "patch_size", "match_by", *nuisance, "seed", "status", "error")
                if c in failed.columns and (c != "match_by" or len(compared) > 1)]
        lines += ["## Trials that did not finish ok", "", markdown_table(failed[cols].fillna("-")), ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path, "\n".join(says + [limits])
