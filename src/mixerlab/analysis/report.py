"""The report: figures, tables and a verdict that answers the study's question with evidence.

Three steps, each its own function: the tables (:class:`StudyReport`: what is compared, from
:mod:`mixerlab.analysis.comparison`), the figures and the markdown drawn from them, then one
atomic write.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from mixerlab.analysis import plots
from mixerlab.analysis.aggregate import SOLVED
from mixerlab.analysis.comparison import Comparison, compare
from mixerlab.analysis.late_gains import convergence_table
from mixerlab.analysis.load import load_history, load_provenance, load_studies, study_spec
from mixerlab.analysis.report_text import (
    _choices_table,
    _efficiency,
    _isolation_markdown,
    _levels,
    _nuisance_lines,
    _term,
    convergence_lines,
    convergence_section,
    execution_line,
    factor_lines,
    layout_lines,
    markdown_table,
    sections,
    verdict,
)
from mixerlab.analysis.stats import early_vs_final
from mixerlab.record import LADDER
from mixerlab.results import atomic_write_csv, atomic_write_text
from mixerlab.spec import Spec

__all__ = ["StudyReport", "markdown_table", "study_report", "verdict", "write_report"]


@dataclass
class StudyReport:
    """Everything the report is drawn from: the trials, their comparison, spec and provenance."""

    df: pd.DataFrame
    history: pd.DataFrame
    spec: Spec
    prov: dict
    comparison: Comparison
    folder: Path | None = None  # the (first) study folder: its claims' registration

    @cached_property
    def claims(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The spec's claims decided (analysis.claims.decide_claims); empty without claims."""
        if not self.spec.claims or self.folder is None:
            return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
        from mixerlab.analysis.claims import decide_claims

        return decide_claims(self.folder, self.spec)

    @cached_property
    def decisions(self) -> pd.DataFrame | None:
        """Adaptive seeding's comparisons and why each stopped (None for fixed seeds)."""
        a = self.spec.adaptive
        if a is None:
            return None
        from mixerlab.analysis.decisions import Rule, decisions

        return decisions(self.comparison, Rule(a.alpha, a.rope, a.max))

    @cached_property
    def convergence(self) -> pd.DataFrame:
        """Late validation gain per compared arm (analysis.convergence), computed once."""
        c = self.comparison
        return convergence_table(c.chosen, self.history, c.keys)


def study_report(paths) -> StudyReport:
    """Load one or several study folders and compute their comparison once."""
    paths = [Path(p) for p in paths]
    df = load_studies(paths)
    spec = study_spec(paths[0])
    return StudyReport(df, load_history(paths), spec, load_provenance(paths[0]),
                       compare(df, list(spec.nuisance or {}), spec.nuisance or {}), paths[0])


# ---- figures --------------------------------------------------------------------------------


def figures(r: StudyReport) -> list[tuple[str, object, str]]:
    """(file name, figure, title) for every figure of the report."""
    c, figs = r.comparison, []
    claims, gaps, points = r.claims
    if len(claims):
        from mixerlab.analysis.forest import forest

        figs.append(("claims", forest(claims, gaps, points), "The claims: each gap's interval, seeds and ROPE"))
    several = len(c.strata) > 1
    for s in c.strata:
        sub, sfx, ttl = s.df, f"_by_{s.by}" if several else "", f" (matched by {s.by})" if several else ""
        for x in ("params", "macs", "infer_images_per_s", "train_time_s"):
            if x in sub.columns and sub.loc[sub.status == "ok", x].notna().any():
                figs.append((f"tradeoff_{x}{sfx}", plots.tradeoff(sub, x), f"Accuracy vs {plots.LABELS[x]}{ttl}"))
        if LADDER in sub.columns and sub[LADDER].notna().any():  # a budget ladder: every arm's budgets
            figs.append((f"tradeoff_compute{sfx}", plots.compute_curves(sub, s.keys),
                         f"Accuracy vs training compute, every budget of each arm's ladder{ttl}"))
        figs.append((f"effects{sfx}", plots.effects(sub, s.keys), f"Factor effects{ttl}"))
        if {"variant", "patch_size"} <= set(s.keys):
            figs.append((f"interaction{sfx}", plots.interaction(sub), f"Mixer x patch size{ttl}"))
    if len(r.history):
        curves = r.history[r.history["trial_id"].isin(c.chosen["trial_id"])] if c.nuisance else r.history
        figs.append(("learning_curves", plots.learning_curves(curves),
                     "Learning curves" + (" (the chosen settings)" if c.nuisance else "")))
    if c.nuisance and c.scientific:
        x = "variant" if "variant" in c.scientific else c.scientific[0]
        figs.append(("isolation", plots.isolation(c.tuned, c.chosen, c.nuisance, x, c.scientific),
                     f"Isolation plot: {x} at every {'/'.join(c.nuisance)} setting"))
    return figs


# ---- text -----------------------------------------------------------------------------------


def _says(r: StudyReport) -> list[tuple[str | None, list[str]]]:
    """The verdict's sentences per matching."""
    return [(s.by if len(r.comparison.strata) > 1 else None,
             verdict(s.df, s.effects, s.pairs, s.design, s.n_seeds) + factor_lines(s.factor_pairs)
             + layout_lines(s.layouts)) for s in r.comparison.strata]


def _limits(r: StudyReport) -> str:
    df, train, data = r.df, r.spec.train, r.spec.dataset
    return (f"Limits: one data set ({', '.join(sorted(df['dataset'].dropna().unique())) if 'dataset' in df else '?'}"
            f"{', training subset of ' + str(data['train_subset']) + ' images' if data.get('train_subset') else ''}), "
            f"{r.comparison.n_seeds} seed(s) per configuration, "
            f"{train.get('epochs', df['epochs'].max() if 'epochs' in df else '?')} "
            "epoch(s) of training, small models on "
            f"{', '.join(sorted(df['device_name'].dropna().unique())) if 'device_name' in df else '?'}. "
            "Differences between mixers may change with longer training, larger data or other scales.")


def _general(r: StudyReport) -> list[str]:
    """Verdict bullets about the design: factors that follow from others, the nuisance choice."""
    c, out = r.comparison, []
    s = c.strata[0]
    for f in s.keys:
        # A factor that follows from the others is not tested on its own: say so, not silently.
        if f not in s.design and f not in SOLVED and s.design:
            # Name the one factor it follows from where there is one (image size from the patch
            # size), else the design that determines it jointly.
            alone = [d for d in s.design if s.df.groupby(d)[f].nunique(dropna=False).max() <= 1]
            by = alone[:1] or s.design
            out.append(f"{_term(f).capitalize()} is not a separate factor in this design: it "
                       f"follows from {', '.join(_term(d) for d in by)}, so its effect "
                       f"is counted in {'that' if len(by) == 1 else 'theirs'}.")
    if c.nuisance:
        out.append(f"Each arm is compared at its own {', '.join(c.nuisance)} setting: the one with the best mean "
                   f"final-epoch validation accuracy over its seeds, among the settings that finished ok on "
                   "every seed (see 'Nuisance settings chosen per arm'); the test set played no part in the choice.")
        out += _nuisance_lines(c.choices, c.nuisance) + [f"Edge of the range: {w}." for w in c.edges]
    return out + convergence_lines(r.convergence, c.keys)


def _what_was_run(r: StudyReport) -> list[str]:
    df, c, spec, prov = r.df, r.comparison, r.spec, r.prov
    keys = c.keys
    solved = [f for f in keys if f in SOLVED and "match_by" in df]
    lines = ["## What was run", "",
             "- Factors varied: " + ", ".join(f"{f} ({_levels(df[f])})" for f in keys if f not in solved)]
    if solved:
        lines += ["- Solved by capacity matching, per variant (not factors of the design): "
                  + ", ".join(f"{f} ({_levels(df[f])})" for f in solved)]
    if c.nuisance:
        lines += ["- Nuisance factors, tuned per arm: " + ", ".join(
            f"{k} ({', '.join(map(str, v))})" for k, v in c.grid.items())]
    hw = prov.get("hardware", {})
    if LADDER in df.columns and df[LADDER].notna().any():
        lines += [f"- Budget ladders: {df[LADDER].nunique()} WSD run(s), one per arm and seed, each a row per "
                  f"budget ({_levels(df['epochs'])} epochs): the rows of one run share its stable phase"]
    lines += [f"- Trials: {len(df)} ({', '.join(f'{n} {s}' for s, n in df['status'].value_counts().items())}), "
              f"up to {c.n_seeds} seed(s) per configuration",
              f"- Data: {spec.dataset or {}}", f"- Recipe overrides: {spec.train or {}}; base model: {spec.model}",
              f"- Command: `{prov.get('command', '?')}`; wall time {prov.get('wall_time_s', '?')} s; "
              f"sweep efficiency {_efficiency(prov)}",
              f"- Hardware: {hw.get('cpu', '?')} ({hw.get('cpu_count', '?')} cores), GPUs: {hw.get('gpus') or 'none'}",
              execution_line(df),
              "- Versions: " + ", ".join(f"{k.replace('_version', '')} {v}" for k, v in prov.get("versions", {}).items()), ""]
    return lines


def _stages_text(r: StudyReport) -> str:
    """Who chose and who measured, in a two-stage study."""
    t, chosen = r.comparison.tuning, r.comparison.chosen
    epochs = ", ".join(map(str, sorted(t["epochs"].unique()))) if "epochs" in t else "?"
    return (f"Two-stage tuning: stage 1 ran every arm at every setting on {t['seed'].nunique()} tuning "
            f"seed(s) ({', '.join(map(str, sorted(t['seed'].unique())))}; {epochs} epoch(s); {len(t)} "
            f"trials) and chose; stage 2 measured each arm at its chosen setting on seeds "
            f"{', '.join(map(str, sorted(chosen['seed'].unique())))} ({len(chosen)} trials). Only "
            "stage 2's trials are compared: no tuning trial's test accuracy enters a verdict.")


def _nuisance_section(r: StudyReport, figs) -> list[str]:
    c = r.comparison
    if not c.nuisance:
        return []
    how = (_stages_text(r) if c.tuning is not None else
           "Every arm was trained at every setting on every seed.")
    lines = ["## Nuisance settings chosen per arm (by validation accuracy)", "",
             f"{how} An arm's setting is the one with the best "
             "mean final-epoch validation accuracy over the seeds (the final model is the one tested); "
             "a setting ASHA stopped (or that failed) on any seed is not eligible. The test accuracy "
             "is never read to choose. Everything below this section uses the chosen trials only.", "",
             markdown_table(_choices_table(c.choices)), "",
             "### Every setting (isolation table)", "", markdown_table(_isolation_markdown(c.isolation)), ""]
    if any(name == "isolation" for name, _, _ in figs):
        lines += ["![Isolation plot](isolation.png)", ""]
    return lines


def _claim_lines(r: StudyReport) -> list[str]:
    """The verdict's sentence per claim."""
    claims = r.claims[0]
    return [f"Claim {c.claim} ({c.kind}: {c.text}; {c.source}): **{c.verdict}** at {c.budgets.split(', ')[-1]} "
            f"epochs on {c.n_seeds} seeds (alpha {c.alpha:g}, ROPE +-{c.rope:g}; stability: {c.stability}; "
            f"{c.registration})." for c in claims.itertuples()]


def _claims_section(r: StudyReport) -> list[str]:
    claims, gaps, _ = r.claims
    if not len(claims):
        return []
    from mixerlab.analysis.claims import STABILITY_CONFIDENCE

    g = gaps.assign(diff=gaps["diff"].map(lambda v: f"{v:+.2f}"), sd=gaps["sd"].map(lambda v: f"{v:.2f}"),
                    interval=[f"[{lo:+.2f}, {hi:+.2f}] at {c:.2%}" for lo, hi, c in
                              zip(gaps["lo"], gaps["hi"], gaps["confidence"])])
    cols = ["claim", "kind", "verdict", "verdict_at_largest", "stability", "budgets", "n_seeds", "alpha",
            "rope", "band", "registration"]
    return ["## Claims", "",
            "Declared in the spec and registered in the study (`claims.json`) when its sweep started. "
            "Each gap a - b is paired by seed at the claim's largest budget, its interval at 1 - alpha / "
            "(gaps in the claim); the verdict is the one rule's (mixerlab/analysis/verdict.py). With two "
            "budgets or more, every gap's change between the two largest has a "
            f"{STABILITY_CONFIDENCE:.0%} interval that must lie inside +-band, else the claim is "
            "undecided (still moving). A claim not registered before any trial finished is not decided.",
            "", markdown_table(claims[cols]), "", "### Gaps", "",
            markdown_table(g[["claim", "gap", "budget", "n_seeds", "diff", "sd", "interval", "verdict"]
                             + [c for c in ("late_gain_a", "late_gain_b") if c in g]]), "",
            "Late gain a / b: each arm's mean validation gain over its last 20% of training, a "
            "diagnostic beside the gap (the anneal lifts it by itself); no verdict reads it.", "",
            "![The claims](claims.png)", ""]


def _adaptive_lines(r: StudyReport) -> list[str]:
    """The verdict's sentence on adaptive seeding."""
    d, a = r.decisions, r.spec.adaptive
    if d is None or not len(d):
        return []
    from mixerlab.analysis.decisions import decided_text

    return [f"Adaptive seeds: {decided_text(d)} by anytime-valid intervals (alpha {a.alpha:g} over "
            f"{len(d)} comparisons, ROPE +-{a.rope:g} points), taking {int(d['n_seeds'].min())} to "
            f"{int(d['n_seeds'].max())} seeds (see 'Adaptive seeds')."]


def _adaptive_section(r: StudyReport) -> list[str]:
    d, a = r.decisions, r.spec.adaptive
    if d is None:
        return []
    alpha = d["alpha"].iloc[0] if len(d) else a.alpha
    table = d.assign(interval=[f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(d["lo"], d["hi"])],
                     diff=d["diff"].map(lambda v: f"{v:+.2f}"),
                     stopped_at=d["stopped_at"].map(lambda v: "-" if pd.isna(v) else f"{int(v)} seeds"))
    cols = (["by"] if d["by"].notna().any() else []) + [
        "comparison", "a", "b", "n_seeds", "diff", "interval", "decision", "stopped_at", "reason"]
    return ["## Adaptive seeds", "",
            f"Every configuration ran {a.min} seeds; then, round by round, the arms of every comparison "
            f"still undecided got {a.step} more, up to {a.max}. A comparison is the seed-paired "
            "difference of test accuracy (a - b, points) the sections below test. Its interval is an "
            "anytime-valid confidence sequence for the mean difference (Lindon et al., arXiv:2210.08589; "
            "mixerlab/analysis/confidence_sequence.py), valid at every look at once, at alpha "
            f"{a.alpha:g}/{len(d)} = {alpha:.4f} each (Bonferroni over the study's comparisons, so the "
            "error rate across all of them is at most "
            f"{a.alpha:g}). Decided: *different* when it excludes 0, *equivalent* when it lies within "
            f"+-{a.rope:g} points. The fixed-sample t-tests below use the same trials but are not "
            "adjusted for the optional stopping: read the decisions here.", "",
            markdown_table(table[cols]), ""]


def _head(r: StudyReport, says_by, general, limits) -> list[str]:
    df = r.df
    question = r.spec.question or r.prov.get("question") or "(no question recorded)"
    lines = [f"# {', '.join(sorted(df['study'].unique()))}: report", "", f"**Question.** {question}", ""]
    if not df.attrs.get("complete", True):
        lines += [f"> **INCOMPLETE STUDY**: {len(df)} of {df.attrs.get('planned')} planned trials have "
                  "results. Numbers below are partial; re-run the sweep command to finish it.", ""]
    if len(says_by) == 1:
        lines += ["## Verdict", "", *[f"- {s}" for s in says_by[0][1] + general], f"- {limits}", ""]
    else:
        lines += ["## Verdict", "", *[f"- {s}" for s in general], f"- {limits}", ""]
        for by, ss in says_by:
            lines += [f"### Matched by {by}", "", *[f"- {s}" for s in ss], ""]
    return lines


def _tail(r: StudyReport, figs) -> list[str]:
    df, c, lines = r.df, r.comparison, []
    for s in c.strata:
        lines += sections(s, "##") if len(c.strata) == 1 else [f"## Matched by {s.by}", ""] + sections(s, "###")
    if r.spec.scheduler.type == "asha" and len(r.history):
        epochs = sorted(r.history["epoch"].unique())[:-1]
        lines += ["## Early vs final accuracy (ASHA)", "",
                  markdown_table(pd.DataFrame([early_vs_final(r.history, df, e) for e in epochs])), ""]
    lines += ["## Figures", ""] + [f"### {title}\n\n![{title}]({name}.png)\n" for name, _, title in figs]
    failed = df[df["status"] != "ok"]
    if len(failed):
        cols = [k for k in ("trial_id", "variant", "patch_size", "match_by", *c.nuisance, "seed", "status", "error")
                if k in failed.columns and (k != "match_by" or len(c.strata) > 1)]
        lines += ["## Trials that did not finish ok", "", markdown_table(failed[cols].fillna("-")), ""]
    return lines


def render(r: StudyReport, figs) -> tuple[str, str]:
    """The report's markdown, and the verdict as plain text (what `mixerlab analyze` prints)."""
    says_by, general, limits = _says(r), _general(r), _limits(r)
    general = _claim_lines(r) + _adaptive_lines(r) + general
    lines = (_head(r, says_by, general, limits) + _claims_section(r) + _what_was_run(r)
             + _nuisance_section(r, figs)
             + _adaptive_section(r) + convergence_section(r.convergence, r.comparison.keys)
             + _tail(r, figs))
    if len(says_by) == 1:
        says = says_by[0][1] + general
    else:
        says = [f"Matched by {by}: {s}" for by, ss in says_by for s in ss] + general
    return "\n".join(lines), "\n".join(says + [limits])


# ---- write ----------------------------------------------------------------------------------


def write_report(study_paths, out_dir=None) -> tuple[Path, str]:
    """Write ``report.md`` and its figures under ``out_dir`` (default: the first study's
    ``report/``); return the report's path and the verdict as text."""
    r = study_report(study_paths)
    out = Path(out_dir) if out_dir else Path(study_paths[0]) / "report"
    figs = figures(r)
    for name, fig, _ in figs:
        plots.save(fig, out, name)
    text, says = render(r, figs)
    claims, gaps, points = r.claims
    if len(claims):  # the claims' tables beside the report, for the answer and for readers
        atomic_write_csv(out / "claims.csv", claims)
        atomic_write_csv(out / "claim_gaps.csv", gaps)
        atomic_write_csv(out / "claim_points.csv", points)
    path = out / "report.md"
    atomic_write_text(path, text)
    return path, says
