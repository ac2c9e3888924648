"""The report: figures, tables and a verdict that answers the study's question with evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mixerlab.analysis import plots
from mixerlab.analysis.aggregate import aggregate, factors_varied
from mixerlab.analysis.load import load_history, load_provenance, load_spec, load_studies
from mixerlab.analysis.pareto import pareto_front
from mixerlab.analysis.stats import anova, early_vs_final, pairwise
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
    names = {"variant": "the token mixer", "patch_size": "patch size"}
    if ":" in t:
        return "the interaction of " + " and ".join(names.get(x, x) for x in t.split(":"))
    return names.get(t, t.replace("_", " "))


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
    parts = [f"{_term(t)} explains {share[t]:.0%} of the variance in test accuracy (partial eta^2 "
             f"{partial[t]:.2f}, p={pvals[t]:.2g})" for t in share if t != "Residual"]
    out.append("Across the trials, " + "; ".join(parts) + f"; {share.get('Residual', 0):.0%} is "
               "left to seeds and noise.")
    if "patch_size" in share and "variant" in share:
        bigger = "patch size" if share["patch_size"] > share["variant"] else "the token mixer"
        out.append(f"So on this evidence {bigger} matters more for accuracy "
                   f"({share['patch_size']:.0%} for patch size vs {share['variant']:.0%} for the mixer).")
    mixing = df[~df["variant"].isin(CONTROLS)] if "variant" in df else df
    if "variant" in share and mixing["variant"].nunique() >= 2 and len(mixing) < len(df):
        # The identity control can carry most of the mixer's share on its own; the paper's
        # question is also whether the *kind* of token mixing matters once there is some.
        sub = anova(mixing, factors).set_index("term")
        if "variant" in sub.index:
            others = ", ".join(f"{_term(t)} {sub.loc[t, 'eta_sq']:.0%}" for t in sub.index
                               if t not in ("variant", "Residual"))
            out.append(f"Without the {'/'.join(sorted(set(df['variant']) & CONTROLS))} control, among "
                       f"the mixers that do mix tokens ({', '.join(sorted(mixing['variant'].unique()))}), "
                       f"the choice of mixer explains {sub.loc['variant', 'eta_sq']:.0%} of the variance "
                       f"(p={sub.loc['variant', 'p']:.2g})" + (f"; {others}" if others else "") + ".")
    if len(pairs):
        ok = df[df["status"] == "ok"]
        within = "patch_size" if "patch_size" in pairs.columns else pairs.columns[0]
        for level, sub in pairs.groupby(within):
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
            where = f"At patch size {int(level)}" if within == "patch_size" else "Overall"
            line = (f"{where}, {best} leads {second} by {sign * r['diff']:.2f} points (95% CI {lo:.2f} to "
                    f"{hi:.2f}), {sig} after Holm correction (p={r['p_holm']:.2g})")
            if "identity" in means.index and best != "identity":
                line += (f"; the identity control (no token mixing) is {means[best] - means['identity']:.2f} "
                         f"points behind {best}")
            out.append(line + ".")
        n_sig = int(pairs["significant"].sum())
        out.append(f"{n_sig} of {len(pairs)} pairwise comparisons are significant at 5% after Holm correction.")
    return out


def write_report(study_paths, out_dir=None) -> tuple[Path, str]:
    paths = [Path(p) for p in study_paths]
    df = load_studies(paths)
    history = load_history(paths)
    spec, prov = load_spec(paths[0]), load_provenance(paths[0])
    out = Path(out_dir) if out_dir else paths[0] / "report"
    factors = factors_varied(df)
    keys = [f for f in ("variant", "patch_size") if f in factors] + [f for f in factors if f not in ("variant", "patch_size")]
    keys = keys or ["variant"]
    agg = aggregate(df, by=keys)
    effects = anova(df, keys)
    pairs = pairwise(df, group="variant", within="patch_size" if "patch_size" in factors else None) \
        if "variant" in factors else pd.DataFrame()
    n_seeds = int(df.groupby(keys, dropna=False).size().max()) if len(df) else 0

    figs = []
    for x in ("params", "macs", "infer_images_per_s", "train_time_s"):
        if f"{x}" in df.columns and df.loc[df.status == "ok", x].notna().any():
            figs.append((f"tradeoff_{x}", plots.tradeoff(df, x), f"Accuracy vs {plots.LABELS[x]}"))
    figs.append(("effects", plots.effects(df, keys), "Factor effects"))
    if {"variant", "patch_size"} <= set(factors):
        figs.append(("interaction", plots.interaction(df), "Mixer x patch size"))
    if len(history):
        figs.append(("learning_curves", plots.learning_curves(history), "Learning curves"))
    for name, fig, _ in figs:
        plots.save(fig, out, name)

    question = spec.get("question") or prov.get("question") or "(no question recorded)"
    says = verdict(df, effects, pairs, keys, n_seeds)
    train, data = spec.get("train", {}), spec.get("dataset", {})
    limits = (f"Limits: one data set ({', '.join(sorted(df['dataset'].dropna().unique())) if 'dataset' in df else '?'}"
              f"{', training subset of ' + str(data['train_subset']) + ' images' if data.get('train_subset') else ''}), "
              f"{n_seeds} seed(s) per configuration, {train.get('epochs', df['epochs'].max() if 'epochs' in df else '?')} "
              "epoch(s) of training, small models on "
              f"{', '.join(sorted(df['device_name'].dropna().unique())) if 'device_name' in df else '?'}. "
              "Differences between mixers may change with longer training, larger data or other scales.")
    lines = [f"# {', '.join(sorted(df['study'].unique()))}: report", "", f"**Question.** {question}", ""]
    if not df.attrs.get("complete", True):
        lines += [f"> **INCOMPLETE STUDY**: {len(df)} of {df.attrs.get('planned')} planned trials have "
                  "results. Numbers below are partial; re-run the sweep command to finish it.", ""]
    lines += ["## Verdict", "", *[f"- {s}" for s in says], f"- {limits}", ""]
    lines += ["## What was run", ""]
    lines += ["- Factors varied: " + (", ".join(f"{f} ({', '.join(map(str, sorted(df[f].dropna().unique(), key=str)))})" for f in keys)),
              f"- Trials: {len(df)} ({', '.join(f'{n} {s}' for s, n in df['status'].value_counts().items())}), "
              f"up to {n_seeds} seed(s) per configuration",
              f"- Data: {data or {}}", f"- Recipe overrides: {train or {}}; base model: {spec.get('model', {})}",
              f"- Command: `{prov.get('command', '?')}`; wall time {prov.get('wall_time_s', '?')} s; "
              f"sweep efficiency {prov.get('sweep_efficiency', 'n/a')}",
              f"- Hardware: {prov.get('hardware', {}).get('cpu', '?')} ({prov.get('hardware', {}).get('cpu_count', '?')} cores), "
              f"GPUs: {prov.get('hardware', {}).get('gpus') or 'none'}",
              "- Versions: " + ", ".join(f"{k.replace('_version', '')} {v}" for k, v in prov.get("versions", {}).items()), ""]
    lines += ["## Results (mean over seeds, 95% t-interval)", "", markdown_table(results_table(agg, keys)), ""]
    for x, label in (("params", "parameters"), ("infer_images_per_s", "inference throughput")):
        if f"{x}_mean" in agg and agg[f"{x}_mean"].notna().any():
            front = pareto_front(agg, f"{x}_mean", "test_acc_mean", x_better=plots.BETTER[x])
            lines += [f"## Pareto front: accuracy vs {label}", "",
                      markdown_table(front[keys + [f"{x}_mean", "test_acc_mean"]].rename(
                          columns={f"{x}_mean": label, "test_acc_mean": "test acc %"})), ""]
    if len(effects):
        lines += ["## Effects (type-II ANOVA of test accuracy)", "",
                  "eta^2 is the share of all variance a term explains; partial eta^2 is SS_term / (SS_term + SS_error).", "",
                  markdown_table(effects), ""]
    if len(pairs):
        lines += ["## Pairwise comparisons (Welch t-test, Holm-corrected over all pairs)", "",
                  markdown_table(pairs.rename(columns={"diff": "a - b (points)", "lo": "CI lo", "hi": "CI hi"})), ""]
    if spec.get("scheduler", {}).get("type") == "asha" and len(history):
        lines += ["## Early vs final accuracy (ASHA)", "",
                  markdown_table(pd.DataFrame([early_vs_final(history, df, e) for e in sorted(history["epoch"].unique())[:-1]])), ""]
    lines += ["## Figures", ""] + [f"### {title}\n\n![{title}]({name}.png)\n" for name, _, title in figs]
    failed = df[df["status"] != "ok"]
    if len(failed):
        lines += ["## Trials that did not finish ok", "",
                  markdown_table(failed[["trial_id", "variant", "patch_size", "seed", "status", "error"]].fillna("-")), ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path, "\n".join(says + [limits])
