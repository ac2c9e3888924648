"""Figures: each function takes a DataFrame and returns a matplotlib Figure.

One colour per variant, the same in every figure (and every study: the known mixers have
fixed colours); one marker per patch size; error bars are 95% CIs over seeds.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from mixerlab.analysis.aggregate import (  # noqa: E402
    SOLVED,
    aggregate,
    design_factors,
    level_text,
    training_compute,
)
from mixerlab.analysis.effects import factor_effects, interaction_table  # noqa: E402
from mixerlab.analysis.nuisance import arm_label, setting_label  # noqa: E402
from mixerlab.analysis.pareto import pareto_front  # noqa: E402

_TAB = sns.color_palette("tab10")
FIXED = {"conv": _TAB[0], "attention": _TAB[1], "mlp": _TAB[2], "pool": _TAB[4],
         "identity": _TAB[7], "random": _TAB[5]}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LABELS = {
    "params": "parameters", "macs": "MACs per image (forward)",
    "infer_images_per_s": "inference throughput (images/s)", "train_time_s": "training time (s)",
    "test_acc": "test accuracy (%)", "best_val_acc": "best validation accuracy (%)",
    "val_acc": "validation accuracy (%)", "patch_size": "patch size (px)",
    "kernel_size": "kernel size (px)", "depth": "depth (blocks)", "width": "width (channels)",
    "compute": "training compute (forward MACs x images seen)",
}
# Higher is better for throughput; lower for cost.
BETTER = {"params": "lower", "macs": "lower", "train_time_s": "lower", "infer_images_per_s": "higher"}

sns.set_theme(style="whitegrid", context="notebook")


def palette(variants) -> dict:
    others = [c for c in sns.color_palette("Set2", 8) + sns.color_palette("Dark2", 8)]
    out, i = {}, 0
    for v in sorted(map(str, set(variants))):
        if v in FIXED:
            out[v] = FIXED[v]
        else:
            out[v] = others[i % len(others)]
            i += 1
    return out


def _markers(levels) -> dict:
    return {lv: MARKERS[i % len(MARKERS)] for i, lv in enumerate(sorted(set(levels)))}


def _trade_off_axes(fig, ax, x: str, y: str, what: str):
    """Labels, the title "<y> vs <x> (<what>)" and the legend of a trade-off figure."""
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.set_title(f"{LABELS.get(y, y).split(' (')[0]} vs {LABELS.get(x, x).split(' (')[0]} ({what})")
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def _legend_outside(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                  fontsize=9)


def tradeoff(df: pd.DataFrame, x: str, y: str = "test_acc") -> plt.Figure:
    """Accuracy against a cost, per configuration (mean over seeds), with the Pareto front."""
    agg = aggregate(df, by=[c for c in ("variant", "patch_size") if c in df.columns])
    agg = agg.dropna(subset=[f"{x}_mean", f"{y}_mean"])
    colors = palette(df["variant"].dropna())
    marks = _markers(agg["patch_size"].dropna()) if "patch_size" in agg else {}
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for _, r in agg.iterrows():
        yerr = np.array([[r[f"{y}_mean"] - r[f"{y}_lo"]], [r[f"{y}_hi"] - r[f"{y}_mean"]]])
        ax.errorbar(r[f"{x}_mean"], r[f"{y}_mean"], yerr=None if np.isnan(yerr).any() else yerr,
                    fmt=marks.get(r.get("patch_size"), "o"), color=colors[str(r["variant"])],
                    ms=8, capsize=3, mec="white", mew=0.8)
    front = pareto_front(agg, f"{x}_mean", f"{y}_mean", x_better=BETTER.get(x, "lower"))
    if len(front) > 1:
        ax.step(front[f"{x}_mean"], front[f"{y}_mean"], where="post" if BETTER.get(x) != "higher"
                else "pre", color="0.3", lw=1, ls="--", label="Pareto front")
    ax.scatter(front[f"{x}_mean"], front[f"{y}_mean"], s=220, facecolors="none", edgecolors="0.2",
               lw=1.2, label="on the front" if len(front) else None)
    values = agg[f"{x}_mean"]
    if len(values) and values.min() > 0 and values.max() / values.min() > 10:
        ax.set_xscale("log")
    for v, c in colors.items():
        ax.plot([], [], "o", color=c, label=v)
    for p, m in marks.items():
        ax.plot([], [], m, color="0.4", label=f"patch {int(p)}")
    return _trade_off_axes(fig, ax, x, y, "mean of seeds, 95% CI")


def compute_curves(df: pd.DataFrame, arms, y: str = "test_acc") -> plt.Figure:
    """Accuracy against training compute (forward MACs x images seen, from each row's MACs and
    ``epochs`` x training images: :func:`~mixerlab.analysis.aggregate.training_compute`), one
    line per arm through its budgets: the mean over seeds, with the seeds' min-max as a band.
    ``arms``: the columns that name an arm (its budget, ``epochs``, is the line's points).
    Drawn for a budget ladder (``train.budgets``), whose budgets are the rows of one run per
    arm and seed; on a log axis where the budgets span more than 10x."""
    ok = df[df["status"] == "ok"].assign(compute=training_compute(df))
    ok = ok.dropna(subset=["compute", y, "epochs"])
    arms = [a for a in arms if a in ok.columns and a != "epochs"] or ["variant"]
    colors = palette(df["variant"].dropna()) if arms == ["variant"] else {}
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for key, g in ok.groupby(arms, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = arm_label(dict(zip(arms, key)), arms)
        pts = g.groupby("epochs").agg(x=("compute", "mean"), mean=(y, "mean"), lo=(y, "min"),
                                      hi=(y, "max")).sort_values("x")
        (line,) = ax.plot(pts["x"], pts["mean"], marker="o", color=colors.get(str(key[0])), label=label)
        ax.fill_between(pts["x"], pts["lo"], pts["hi"], color=line.get_color(), alpha=0.18, lw=0)
        for epochs, r in pts.iterrows():
            ax.annotate(f"{int(epochs)} ep", (r["x"], r["mean"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="0.35")
    if len(ok) and ok["compute"].max() / ok["compute"].min() > 10:
        ax.set_xscale("log")
    return _trade_off_axes(fig, ax, "compute", y, "mean of seeds, band: min-max")


def effects(df: pd.DataFrame, factors, metric: str = "test_acc") -> plt.Figure:
    """Mean accuracy per level of each varied factor, with 95% CIs."""
    factors = list(factors)
    fig, axes = plt.subplots(1, len(factors), figsize=(3.6 * len(factors) + 0.8, 3.8),
                             sharey=True, squeeze=False)
    ok = df[df["status"] == "ok"]
    for ax, f in zip(axes[0], factors):
        # Levels only: trials the factor does not apply to (NaN: a reference architecture's
        # patch size) are not a level of it.
        agg = factor_effects(ok[ok[f].notna()], f, metric).sort_values(f)
        xs = agg[f].map(level_text)
        colors = [palette(df["variant"].dropna()).get(v, "0.3") for v in xs] if f == "variant" else "0.25"
        ax.errorbar(xs, agg[f"{metric}_mean"],
                    yerr=[agg[f"{metric}_mean"] - agg[f"{metric}_lo"], agg[f"{metric}_hi"] - agg[f"{metric}_mean"]],
                    fmt="none", ecolor="0.4", capsize=4)
        ax.scatter(xs, agg[f"{metric}_mean"], c=colors, s=60, zorder=3)
        ax.set_xlabel(LABELS.get(f, f))
        ax.set_title(f"effect of {LABELS.get(f, f).split(' (')[0]}")
    axes[0][0].set_ylabel(f"mean {LABELS.get(metric, metric)}")
    fig.suptitle("Factor effects (means over all other factors and seeds, 95% CI)", fontsize=11)
    fig.tight_layout()
    return fig


def interaction(df: pd.DataFrame, metric: str = "test_acc") -> plt.Figure:
    """Variant x patch size: lines with CIs (left) and a heat map of means (right). Reference
    architectures (no ``patch_size`` of mixerlab's) are left out."""
    df = df[df["patch_size"].notna()]
    agg = aggregate(df, by=["variant", "patch_size"], metrics=(metric,))
    colors = palette(df["variant"].dropna())
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(11.5, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    for v, g in agg.groupby("variant"):
        g = g.sort_values("patch_size")
        ax.errorbar(g["patch_size"], g[f"{metric}_mean"],
                    yerr=[g[f"{metric}_mean"] - g[f"{metric}_lo"], g[f"{metric}_hi"] - g[f"{metric}_mean"]],
                    color=colors[str(v)], marker="o", capsize=3, label=str(v))
    ax.set_xticks(sorted(agg["patch_size"].unique()))
    ax.set_xlabel(LABELS["patch_size"])
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title("mixer x patch size (mean, 95% CI)")
    _legend_outside(ax)
    table = interaction_table(df, "variant", "patch_size", metric)
    sns.heatmap(table, annot=True, fmt=".1f", cmap="viridis", ax=hx,
                cbar_kws={"label": LABELS.get(metric, metric)})
    hx.set_xlabel(LABELS["patch_size"])
    hx.set_ylabel("variant")
    hx.tick_params(axis="y", rotation=0)
    hx.set_title("mean test accuracy (%)")
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Validation accuracy per epoch: mean over seeds with a 95% CI band, facet by patch size."""
    colors = palette(history["variant"].dropna())
    patches = sorted(history["patch_size"].dropna().unique()) if "patch_size" in history else [None]
    fig, axes = plt.subplots(1, len(patches), figsize=(4.2 * len(patches) + 1.5, 3.8),
                             sharey=True, squeeze=False)
    for ax, p in zip(axes[0], patches):
        sub = history if p is None else history[history["patch_size"] == p]
        sns.lineplot(sub, x="epoch", y="val_acc", hue="variant", palette=colors, ax=ax,
                     errorbar=("ci", 95), marker="o", legend=ax is axes[0][-1])
        ax.set_title(f"patch {int(p)}" if p is not None else "all")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(LABELS["val_acc"])
    _legend_outside(axes[0][-1])
    fig.suptitle("Learning curves (mean over seeds, 95% CI band)", fontsize=11)
    fig.tight_layout()
    return fig


def _chosen_line(ax, mine: pd.DataFrame, x: str, pos: dict, metric: str, label) -> None:
    """The bold line of an isolation plot: each arm of one panel at its chosen setting."""
    best = aggregate(mine, by=[x], metrics=(metric,))
    if f"{metric}_mean" not in best:  # no chosen trial in this panel yet
        return
    best = best.dropna(subset=[f"{metric}_mean"])
    best = best.sort_values(x, key=lambda c: c.map(pos))
    yerr = np.array([best[f"{metric}_mean"] - best[f"{metric}_lo"],
                     best[f"{metric}_hi"] - best[f"{metric}_mean"]])
    ax.errorbar([pos[v] for v in best[x]], best[f"{metric}_mean"], yerr=np.nan_to_num(yerr),
                color="0.1", lw=2.5, marker="o", ms=7, capsize=4, zorder=3, label=label)


def isolation(df: pd.DataFrame, chosen: pd.DataFrame, nuisance, x: str, scientific,
              metric: str = "test_acc") -> plt.Figure:
    """An isolation plot (Deep Learning Tuning Playbook): ``metric`` against the scientific
    factor ``x``, one thin line per nuisance setting (mean over seeds) and, bold, each arm at
    the setting chosen for it by validation accuracy, with 95% CIs. Where the bold line and the
    thin lines disagree, a comparison at one shared recipe would have told another story.
    One panel per combination of the other scientific factors (patch size, matching, ...).

    ``df``: every trial; ``chosen``: the rows of ``df`` the choice kept (analysis.comparison),
    so the plot draws the choice the report states instead of making its own."""
    nuisance, scientific = list(nuisance), list(scientific)
    if x not in scientific:
        raise ValueError(f"isolation: {x!r} is not one of the scientific factors {scientific}")
    # Panels by the other scientific factors, except those the rest determine: a width that
    # matching solved per variant follows from the variant, the patch size and the matching,
    # and panelling by it would leave one variant per panel.
    others = [f for f in scientific if f != x and f not in SOLVED] + [f for f in SOLVED if f in scientific and f != x]
    others = [f for f in design_factors(df, [x, *others]) if f != x]
    panels = list(df.groupby(others, dropna=False, sort=True)) if others else [(None, df)]
    levels = sorted(df[x].dropna().unique(), key=lambda v: (isinstance(v, str), v))
    pos = {v: i for i, v in enumerate(levels)}  # categorical positions: variants are names
    settings = df[nuisance].drop_duplicates().sort_values(nuisance).reset_index(drop=True)
    shades = sns.color_palette("crest", len(settings))
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 2.6, 3.8 * rows), sharey=True,
                             squeeze=False)
    for ax, (key, sub) in zip(axes.flat, panels):
        for (_, setting), color in zip(settings.iterrows(), shades):
            mask = np.logical_and.reduce([(sub[k] == setting[k]) | (sub[k].isna() & pd.isna(setting[k]))
                                          for k in nuisance])
            agg = aggregate(sub[mask], by=[x], metrics=(metric,))
            if f"{metric}_mean" not in agg:  # no trial of this setting here yet (a study in parts)
                continue
            agg = agg.dropna(subset=[f"{metric}_mean"])
            ax.plot([pos[v] for v in agg[x]], agg[f"{metric}_mean"], lw=1, alpha=0.8, color=color,
                    marker=".", label=setting_label(setting, nuisance) if ax is axes.flat[0] else None)
        _chosen_line(ax, chosen.loc[chosen.index.intersection(sub.index)], x, pos, metric,
                     "best setting per arm (chosen by val acc), 95% CI" if ax is axes.flat[0] else None)
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.set_xlim(-0.4, len(levels) - 0.6)
        ax.set_xlabel(LABELS.get(x, x))
        if key is not None:
            key = key if isinstance(key, tuple) else (key,)
            ax.set_title(arm_label(dict(zip(others, key)), others), fontsize=10)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(LABELS.get(metric, metric))
    # The labels live on the first panel; the legend goes beside the last one of the first row.
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes[0][cols - 1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1),
                             frameon=False, fontsize=8)
    fig.suptitle(f"Isolation plot: {LABELS.get(metric, metric).split(' (')[0]} vs "
                 f"{LABELS.get(x, x).split(' (')[0]} per {', '.join(nuisance)} setting (mean of seeds)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, outdir: Path, name: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.png", outdir / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths
