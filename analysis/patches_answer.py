"""Are patches all you need? The platform's answer: the primary claims' verdicts, then every
committed study described.

This script only says which studies make the answer; everything it computes is the library's.

1. **Verdicts** (:mod:`mixerlab.analysis.answer`): the primary claims of the confirmatory
   studies given, each declared in its study's spec, registered before its data and decided
   by its own study (``mixerlab.analysis.claims``) at the alpha its spec states. A
   confirmatory study not run yet is given as its spec (``--pending``) and listed as such.
   The figure is their forest plot (``answer.png``).
2. **Findings**: one registered function per question (mixer or patch size, what any token
   mixing buys, layout, stem, kernel, pixels, fixed token grid, references, capacity). Each
   reads the studies it needs and states this evidence with seed-paired 95% CIs next to the
   published result it relates to. They describe, with no verdict and no alpha.
3. **Overview**: for each study that varies the token mixer, the share of test-accuracy
   variance the mixer and the patch size explain (ANOVA eta^2, with bootstrap intervals),
   the identity control's gap to the best mixer and the spread among real mixers.
4. **Accuracy against MACs**: every mixer, patch size and layout, one panel per study.

    python analysis/patches_answer.py results/quick ... results/pixels_rf_short \
        --pending ablations/mixer_claims.yaml --out results/answer --readme README.md

Writes ``answer.md``, ``answer.png``/``.svg`` (the forest plot), ``accuracy_vs_macs.png``/``.svg``,
``claims.csv`` (one row per primary claim), ``gaps.csv`` (their gaps per budget),
``points.csv`` (per seed) and ``findings.csv`` under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mixerlab import provenance  # noqa: E402
from mixerlab.analysis import (  # noqa: E402
    aggregate,
    compare,
    design_factors,
    eta_sq_interval,
    factors_varied,
    holm,
    load_history,
    load_study,
    markdown_table,
    paired,
    pairwise,
    study_spec,
)
from mixerlab.analysis.answer import alpha_text, primary_claims, verdict_table  # noqa: E402
from mixerlab.analysis.comparison import Comparison  # noqa: E402
from mixerlab.analysis.forest import forest  # noqa: E402
from mixerlab.analysis.late_gains import trial_gains  # noqa: E402
from mixerlab.analysis.plots import palette, save  # noqa: E402
from mixerlab.errors import ConfigError  # noqa: E402
from mixerlab.results import atomic_write_csv, atomic_write_text  # noqa: E402

# Study 11 (pixels_rf) seeded adaptively: seeds 1-6 were fixed before any look, so a fixed-n
# 95% interval describes those; seeds its rule added are in its own (anytime-valid) report.
PIXELS_RF_FIXED_SEEDS = (1, 2, 3, 4, 5, 6)

# Rank-deficient designs are named in the overview's text; statsmodels' warning adds nothing.
warnings.filterwarnings("ignore", message="The design matrix is rank-deficient")

# ---- the studies, each at its report's comparison ------------------------------------------


def comparison(df: pd.DataFrame, spec) -> Comparison:
    """A study's own report's comparison (mixerlab.analysis.compare: each arm at its
    validation-chosen nuisance setting); its ``frames()`` are the compared trials, ok trials
    only, one frame per capacity matching (named ``study (matched by params)``)."""
    nuisance = spec.nuisance or {}
    return compare(df, list(nuisance), nuisance)


def arm(df: pd.DataFrame, **at) -> pd.Series:
    """Test accuracy by seed of the trials matching ``at`` (factor=value)."""
    sel = df
    for k, v in at.items():
        sel = sel[sel[k] == v]
    return sel.set_index("seed")["test_acc"].sort_index()


def gap(df: pd.DataFrame, a: dict, b: dict) -> dict:
    """Seed-paired difference a - b (points) with its 95% CI and p."""
    sa, sb = arm(df, **a), arm(df, **b)
    if sa.empty or sb.empty:
        return {"diff": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan, "n_pairs": 0}
    return paired(sa, sb)


def gaps(df: pd.DataFrame, pairs: dict) -> tuple[dict, dict]:
    """``gap`` for every named (a, b) pair, and their Holm-corrected p-values by name."""
    g = {name: gap(df, a, b) for name, (a, b) in pairs.items()}
    return g, dict(zip(g, holm([d["p"] for d in g.values()])))


def pts(d: dict, p: float | None = None) -> str:
    """'+1.3 points (95% CI 0.4 to 2.1)' from a ``gap`` result."""
    if not np.isfinite(d["diff"]):
        return "n/a"
    s = f"{d['diff']:+.1f} ({d['lo']:+.1f} to {d['hi']:+.1f})"
    return s + (f", Holm p={p:.2g}" if p is not None else "")


def mean(df: pd.DataFrame, **at) -> float:
    return float(arm(df, **at).mean())


# ---- findings: a small registry, one function per question ---------------------------------

Finding = Callable[[dict], dict]
# (question, studies it reads, the ConvMixer paper's claim it tests or "", function)
FINDINGS: list[tuple[str, tuple[str, ...], str, Finding]] = []


def finding(topic: str, *studies: str, convmixer: str = "") -> Callable[[Finding], Finding]:
    def wrap(fn: Finding) -> Finding:
        FINDINGS.append((topic, studies, convmixer, fn))
        return fn
    return wrap


def shares(df: pd.DataFrame, factors) -> pd.DataFrame:
    return eta_sq_interval(df, design_factors(df, factors)).set_index("term")


def share_text(t: pd.DataFrame, term: str) -> str:
    if term not in t.index:
        return "n/a"
    r = t.loc[term]
    return f"{r.eta_sq:.0%} ({r.lo:.0%} to {r.hi:.0%})"


@finding("Mixer or patch size: which explains more of the accuracy?", "mixer_patch",
         convmixer="the patch representation, more than the mixer, does the work")
def mixer_or_patch(s: dict) -> dict:
    rows = []
    for name, df in s["mixer_patch"].items():
        t = shares(df, ["variant", "patch_size"])
        rows.append(f"{name}: mixer {share_text(t, 'variant')}, patch size 4 vs 7 "
                    f"{share_text(t, 'patch_size')}")
    for key in ("pixels", "fixed_grid"):
        if key in s:  # their balanced part: patch 2 and 4 (pixels' attention has no patch 1)
            df = next(iter(s[key].values()))
            sub = df[df["patch_size"].isin([2, 4])] if key == "pixels" else df
            t = shares(sub, ["variant", "patch_size", "stem"])
            rows.append(f"{key}{' (patch 2, 4)' if key == 'pixels' else ' (7x7 grid, the image resized with the patch)'}: mixer "
                        f"{share_text(t, 'variant')}, patch size {share_text(t, 'patch_size')}")
    return {"evidence": "; ".join(rows) + " (share of test-accuracy variance, eta^2, 95% bootstrap CI)",
            "published": "ConvMixer: the patch representation, not the mixer, does most of the work "
                         "(argued from ConvMixer's accuracy, not measured as a share; Trockman & Kolter, "
                         "arXiv:2201.09792)"}


@finding("What does any token mixing buy? Identity, random and pooling against conv", "baselines")
def baselines(s: dict) -> dict:
    df = next(iter(s["baselines"].values()))
    g, ph = gaps(df, {m: ({"variant": m}, {"variant": "identity"}) for m in ("conv", "pool", "random")})
    ev = "; ".join(f"{m} - identity {pts(g[m], ph[m])}" for m in g)
    ev += (f" (identity {mean(df, variant='identity'):.1f}%, random {mean(df, variant='random'):.1f}, "
           f"pooling {mean(df, variant='pool'):.1f}, conv {mean(df, variant='conv'):.1f})")
    return {"evidence": ev,
            "published": "MetaFormer baselines at S12, ImageNet-1k: identity 74.6%, random mixing 76.6 "
                         "(+2.0), pooling 78.0 (+3.4) (Yu et al., arXiv:2210.13452, Table 1)"}


@finding("Isotropic patches against a pyramid, at equal parameters", "layout")
def layout(s: dict) -> dict:
    df = next(iter(s["layout"].values()))
    mixers = sorted(df["variant"].unique())
    g, ph = gaps(df, {m: ({"variant": m, "layout": "pyramid"}, {"variant": m, "layout": "isotropic"})
                      for m in mixers})
    ev = "; ".join(f"{m} pyramid - isotropic {pts(g[m], ph[m])}" for m in mixers)
    real = [m for m in mixers if m != "identity"]
    best = {lay: max(mean(df, variant=m, layout=lay) for m in real) for lay in ("isotropic", "pyramid")}
    ident = {lay: best[lay] - mean(df, variant="identity", layout=lay) for lay in best} if "identity" in mixers else {}
    if ident:
        ev += (f"; the identity control trails the best mixer by {ident['isotropic']:.1f} points "
               f"(isotropic) and {ident['pyramid']:.1f} (pyramid)")
    return {"evidence": ev,
            "published": "ConvNeXt's isotropic models trail its hierarchical ones at similar size on ImageNet "
                         "(Liu et al., arXiv:2201.03545, the isotropic-ConvNeXt section); a pooling (pyramid) "
                         "ViT's gain over DeiT-S shrinks from several points without augmentation to about one "
                         "with DeiT's recipe (PiT, Heo et al., arXiv:2103.16302)"}


@finding("How much of the pyramid's lead is its down-sampling's own mixing?", "layout_merge")
def layout_merge(s: dict) -> dict:
    df = next(iter(s["layout_merge"].values()))
    rows = []
    for m in sorted(df["variant"].unique()):
        g, ph = gaps(df, {
            "conv3": ({"variant": m, "downsample": "conv3"}, {"variant": m, "layout": "isotropic"}),
            "merge2": ({"variant": m, "downsample": "merge2"}, {"variant": m, "layout": "isotropic"}),
            "mixing": ({"variant": m, "downsample": "conv3"}, {"variant": m, "downsample": "merge2"})})
        rows.append(f"{m}: pyramid - isotropic {pts(g['conv3'], ph['conv3'])} with 3x3 down-sampling, "
                    f"{pts(g['merge2'], ph['merge2'])} with a 2x2 merge; the 3x3's own mixing "
                    f"(conv3 - merge2) {pts(g['mixing'], ph['mixing'])}")
    return {"evidence": "; ".join(rows) + " (Holm within each mixer)",
            "published": "Swin's patch merging concatenates each 2x2 group of tokens and projects it "
                         "(Liu et al., arXiv:2103.14030, sec. 3.1); MetaFormer's IdentityFormer, whose "
                         "down-sampling is a 3x3 stride-2 convolution, reaches 74.6% on ImageNet-1k "
                         "without token mixing (Yu et al., arXiv:2210.13452, Table 1)"}


@finding("The stem: overlapping 3x3 convolutions against non-overlapping patches", "pixels")
def stem(s: dict) -> dict:
    df = next(iter(s["pixels"].values()))
    rows = []
    for m in ("attention", "conv", "identity"):
        for p in sorted(df.loc[df["variant"] == m, "patch_size"].unique()):
            d = gap(df, {"variant": m, "patch_size": p, "stem": "conv"}, {"variant": m, "patch_size": p, "stem": "patch"})
            rows.append((m, p, d))
    ph = holm([d["p"] for *_, d in rows])
    ev = "; ".join(f"{m} p{p} conv - patch stem {pts(d, q)}" for (m, p, d), q in zip(rows, ph))
    return {"evidence": ev,
            "published": "a convolutional stem over a patchify stem: +1 to 2 points for ViTs on ImageNet "
                         "(Xiao et al., arXiv:2106.14881)"}


@finding("Kernel size of the depthwise convolution", "kernel",
         convmixer="larger depthwise kernels are better (k3 to k9)")
def kernel(s: dict) -> dict:
    df = next(iter(s["kernel"].values()))
    lo_k, hi_k = int(df["kernel_size"].min()), int(df["kernel_size"].max())
    ps = sorted(df["patch_size"].unique())
    g = {p: gap(df, {"kernel_size": hi_k, "patch_size": p}, {"kernel_size": lo_k, "patch_size": p}) for p in ps}
    ev = "; ".join(f"patch {p}: k{hi_k} - k{lo_k} {pts(g[p])} ({mean(df, kernel_size=lo_k, patch_size=p):.1f}% "
                   f"to {mean(df, kernel_size=hi_k, patch_size=p):.1f})" for p in ps)
    return {"evidence": ev,
            "published": "ConvMixer-256/8 on CIFAR-10 at patch 1: k3 93.61%, k5 95.11, k7 95.72, k9 95.88 "
                         "(+2.27 from k3 to k9; Trockman & Kolter, arXiv:2201.09792)"}


@finding("Smaller patches at a fixed image: accuracy or only compute?", "pixels",
         convmixer="smaller patches are more accurate (p1 > p2 > p4 on CIFAR-10)")
def pixels(s: dict) -> dict:
    df = next(iter(s["pixels"].values()))
    rows = []
    for st in ("patch", "conv"):
        at = {"variant": "conv", "stem": st}
        acc = {p: mean(df, patch_size=p, **at) for p in (1, 2, 4)}
        macs = {p: float(df[(df["variant"] == "conv") & (df["stem"] == st) & (df["patch_size"] == p)]["macs"].iloc[0])
                for p in (1, 2, 4)}
        d14 = gap(df, {**at, "patch_size": 1}, {**at, "patch_size": 4})
        d12 = gap(df, {**at, "patch_size": 1}, {**at, "patch_size": 2})
        rows.append(f"conv, {st} stem: p1 {acc[1]:.1f}% ({macs[1] / macs[4]:.0f}x p4's MACs), p2 {acc[2]:.1f} "
                    f"({macs[2] / macs[4]:.1f}x), p4 {acc[4]:.1f}; p1 - p2 {pts(d12)}, p1 - p4 {pts(d14)}")
    return {"evidence": "; ".join(rows),
            "published": "ConvMixer-256/8 k9 on CIFAR-10: p1 96.03%, p2 95.23 (-0.80), p4 92.76 (-3.27): read "
                         "literally, smaller patches are better (Trockman & Kolter, arXiv:2201.09792); a "
                         "Transformer on single pixels is competitive with patches (Nguyen et al., "
                         "arXiv:2406.09415)"}


@finding("Smaller patches with the receptive field over the whole image (kernel 9, depth 8)", "pixels_rf",
         convmixer="smaller patches are more accurate (p1 > p2 > p4 on CIFAR-10)")
def pixels_rf(s: dict) -> dict:
    # The `pixels` study's conv (k5, depth 4) sees 17 tokens across: 17 px at patch 1, 68 px at
    # patch 4, so its patch sizes also differ in what a token can see. Here every arm sees the image.
    df = next(iter(s["pixels_rf"].values()))
    # The seeds fixed before any look, as in its claims: seeds its adaptive rule added are not
    # a fixed-n sample (the study's own report gives them anytime-valid intervals).
    df = df[df["seed"].isin(PIXELS_RF_FIXED_SEEDS)]
    ps = sorted(int(p) for p in df["patch_size"].unique())
    lo_p, hi_p = ps[0], ps[-1]
    macs = {p: float(df.loc[df["patch_size"] == p, "macs"].iloc[0]) for p in ps}
    acc = "; ".join(f"p{p} {mean(df, patch_size=p):.2f}% ({macs[p] / macs[hi_p]:.0f}x p{hi_p}'s MACs, "
                    f"late gain {df.loc[df['patch_size'] == p, 'late_gain'].mean():.1f})" for p in ps)
    pairs = {f"p{a} - p{b}": ({"patch_size": a}, {"patch_size": b})
             for a, b in [(p, hi_p) for p in ps if p != hi_p] + ([(lo_p, ps[1])] if len(ps) > 2 else [])}
    g, ph = gaps(df, pairs)
    seeds = sorted(int(x) for x in df["seed"].unique())
    return {"evidence": f"conv, k9, depth 8, width 32, {int(df['epochs'].iloc[0])} epochs, seeds "
                        f"{seeds[0]}-{seeds[-1]}: {acc}; "
                        + "; ".join(f"{k} {pts(g[k], ph[k])}" for k in g) + " (Holm within the study; "
                        "late gain: validation points gained over the last 20% of training)",
            "published": "ConvMixer-256/8 k9 on CIFAR-10: p1 96.03%, p2 95.23 (-0.80), p4 92.76 (-3.27) "
                         "(Trockman & Kolter, arXiv:2201.09792)"}


@finding("Smaller patches with the token grid held fixed (the input resized)", "fixed_grid")
def fixed_grid(s: dict) -> dict:
    df = next(iter(s["fixed_grid"].values()))
    rows = []
    lo_p, hi_p = int(df["patch_size"].min()), int(df["patch_size"].max())
    g, ph = gaps(df, {m: ({"variant": m, "patch_size": hi_p}, {"variant": m, "patch_size": lo_p})
                      for m in sorted(df["variant"].unique())})
    for m in g:
        size = lambda p: int(df.loc[df["patch_size"] == p, "image_size"].iloc[0])  # noqa: E731
        rows.append(f"{m}: p{hi_p} at {size(hi_p)} px - p{lo_p} at {size(lo_p)} px {pts(g[m], ph[m])}")
    return {"evidence": "; ".join(rows) + " (every arm 7x7 = 49 tokens)",
            "published": "the design of Nguyen et al.'s second sweep (arXiv:2406.09415), which separates the "
                         "information an image carries from the locality a patch imposes; no published "
                         "number at this scale"}


REFERENCE_PAIRS = {"convmixer_64_6_ks5_p2": "conv", "vit_64_6_h4_p4": "attention", "mixer_64_6_p4": "mlp"}


@finding("timm's reference architectures beside mixerlab's variants", "references",
         convmixer="ConvMixer beats ViT, MLP-Mixer and ResNet at similar size")
def references(s: dict) -> dict:
    df = next(iter(s["references"].values()))
    means = aggregate(df, by=["variant"]).set_index("variant")["test_acc_mean"]
    refs = [r for r in REFERENCE_PAIRS if r in means]
    ref_rank = sorted(refs, key=lambda r: -means[r])
    own_rank = sorted(refs, key=lambda r: -means.get(REFERENCE_PAIRS[r], np.nan))
    ev = "; ".join(f"{r} {means[r]:.1f}% (mixerlab {REFERENCE_PAIRS[r]} {means.get(REFERENCE_PAIRS[r], np.nan):.1f})"
                   for r in refs)
    cm = "convmixer_64_6_ks5_p2"
    if "resnet18" in means:
        ev += f"; resnet18 {means['resnet18']:.1f}%"
    ev += f"; timm's order {' > '.join(ref_rank)}, mixerlab's order of the same mixers " + \
          " > ".join(REFERENCE_PAIRS[r] for r in own_rank)
    others = [r for r in (*refs, "resnet18") if r != cm and r in means]
    g, ph = gaps(df, {r: ({"variant": cm}, {"variant": r}) for r in others})
    ev += "; " + "; ".join(f"ConvMixer - {r} {pts(g[r], ph[r])}" for r in others)
    if "resnet18" in means:
        params = aggregate(df, by=["variant"], metrics=("params",)).set_index("variant")["params_mean"]
        ev += f" (ResNet-18 has {params['resnet18'] / params[cm]:.0f}x ConvMixer's parameters)"
    return {"evidence": ev + " (one lr for all: the default recipe; see the study's limits)",
            "published": "ConvMixer outperforms ViT, MLP-Mixer and ResNet at similar parameter counts "
                         "(Trockman & Kolter, arXiv:2201.09792, abstract and Table 1)"}


@finding("Depth and width: where extra capacity stops paying", "depth_width")
def depth_width(s: dict) -> dict:
    df = next(iter(s["depth_width"].values()))
    rows = []
    for m in sorted(df["variant"].unique()):
        sub = df[df["variant"] == m]
        d = gap(sub, {"depth": int(sub["depth"].max()), "width": 64}, {"depth": int(sub["depth"].min()), "width": 64})
        w = gap(sub, {"width": int(sub["width"].max()), "depth": 4}, {"width": int(sub["width"].min()), "depth": 4})
        rows.append(f"{m}: depth {int(sub['depth'].min())} to {int(sub['depth'].max())} {pts(d)}, width "
                    f"{int(sub['width'].min())} to {int(sub['width'].max())} {pts(w)}")
    t = shares(df, ["variant", "depth", "width"])
    return {"evidence": "; ".join(rows) + f"; shares: mixer {share_text(t, 'variant')}, depth "
                        f"{share_text(t, 'depth')}, width {share_text(t, 'width')}",
            "published": "no comparable published number at this scale (ConvMixer's ImageNet models grow "
                         "with width and depth: Trockman & Kolter, arXiv:2201.09792, Table 1)"}


# ---- the overview ---------------------------------------------------------------------------


def study_answer(df: pd.DataFrame) -> dict:
    factors = design_factors(df, [f for f in factors_varied(df)
                                  if f in ("variant", "layout", "patch_size", "kernel_size", "width")])
    effects = eta_sq_interval(df, factors).set_index("term") if factors else pd.DataFrame()
    means = aggregate(df, by=["variant"]).set_index("variant")["test_acc_mean"].sort_values(ascending=False)
    mixers = means.drop("identity", errors="ignore")
    pairs = pairwise(df[df["variant"] != "identity"], within=None)
    top = pairs[((pairs.a == mixers.index[0]) & (pairs.b == mixers.index[1])) |
                ((pairs.b == mixers.index[0]) & (pairs.a == mixers.index[1]))] if len(mixers) > 1 else pairs
    return {
        "study": df["study"].iloc[0], "trials": len(df),
        "eta_sq mixer (95% CI)": share_text(effects, "variant") if len(effects) else "n/a",
        "eta_sq patch size (95% CI)": share_text(effects, "patch_size") if len(effects) else "n/a",
        "best mixer": mixers.index[0] if len(mixers) else None,
        "best acc %": round(mixers.iloc[0], 2) if len(mixers) else None,
        "identity gap (points)": round(mixers.iloc[0] - means["identity"], 2) if "identity" in means and len(mixers) else None,
        "spread among mixers (points)": round(mixers.iloc[0] - mixers.iloc[-1], 2) if len(mixers) > 1 else None,
        "best vs runner-up p (Holm)": f"{top['p_holm'].iloc[0]:.2g}" if len(top) else None,
    }


def _training_images(df: pd.DataFrame) -> pd.Series:
    """Images each trial trained on: its training subset, else the whole training split (NaN
    where the table does not say which data set)."""
    from mixerlab.config import DataConfig
    from mixerlab.data import load_dataset

    subset = df["train_subset"] if "train_subset" in df else pd.Series(np.nan, index=df.index)
    if "dataset" not in df or "val_fraction" not in df:
        return subset
    pools = {name: len(load_dataset(DataConfig(name=name, val_fraction=0.0)).train_y)
             for name in df.loc[subset.isna(), "dataset"].dropna().unique()}
    return subset.fillna(df["dataset"].map(pools) * (1 - df["val_fraction"])).round()


def _span(values: pd.Series, fmt=lambda v: f"{v:,.0f}") -> str:
    v = values.dropna()
    return "not recorded" if v.empty else fmt(v.min()) if v.min() == v.max() else f"{fmt(v.min())} to {fmt(v.max())}"


def limits_text(frames: list[pd.DataFrame]) -> str:
    """The Limits paragraph, its counts computed from the compared trials (none typed)."""
    df = pd.concat(frames, ignore_index=True)
    seeds = pd.concat([f.groupby([c for c in factors_varied(f) if c != "seed"] or ["variant"])["seed"].nunique()
                       for f in frames])
    col = lambda c: df[c] if c in df else pd.Series(dtype=float)  # noqa: E731
    names = ", ".join(sorted(col("dataset").dropna().unique())) or "data set not recorded"
    sides = ", ".join(f"{int(s)} px" for s in sorted(col("image_size").dropna().unique()))
    return (f"Data: {names}" + (f" ({sides})" if sides else "") + ". Models of "
            f"{_span(col('params') / 1e3, lambda v: f'{v:,.0f}k')} parameters; CPU-length training: "
            f"{_span(_training_images(df))} training images, {_span(col('epochs'))} epochs; "
            f"{_span(seeds)} seeds per compared arm ({len(df):,} compared trials in {len(frames)} "
            "comparisons). The published results are ImageNet or CIFAR-10 at full length: agreement "
            "in direction is what can be checked here, not the size of an effect.")


MARKERS = {1: "*", 2: "s", 4: "o", 7: "^"}
PANEL_TITLES = {"mixer_patch": "mixer x patch at equal capacity", "pixels": "patch size at 28 px, two stems",
                "fixed_grid": "a 7x7 grid from 7, 14, 28 px images", "layout": "isotropic vs pyramid"}


def macs_figure(panels: list[pd.DataFrame]) -> plt.Figure:
    """Accuracy against MACs: one point per arm (mean, 95% CI over seeds); colour the mixer,
    shape the patch size, hollow for the pyramid layout or the conv stem."""
    cols = 2 if len(panels) > 2 else len(panels)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols + 1.5, 4.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    colors = palette(pd.concat(panels)["variant"].dropna())
    for ax, df in zip(axes.flat, panels):
        by = [c for c in ("variant", "patch_size", "layout", "stem", "image_size") if c in df.columns]
        agg = aggregate(df, by=by)
        for r in agg.itertuples():
            hollow = getattr(r, "layout", "isotropic") == "pyramid" or getattr(r, "stem", "patch") == "conv"
            c = colors[r.variant]
            ax.errorbar(r.macs_mean, r.test_acc_mean, yerr=[[r.test_acc_mean - r.test_acc_lo],
                                                            [r.test_acc_hi - r.test_acc_mean]],
                        fmt=MARKERS.get(int(r.patch_size), "D"), color=c, mfc="white" if hollow else c,
                        markersize=9, capsize=3, elinewidth=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("MACs per image (log)")
        ax.set_ylabel("test accuracy (%)")
        name = df["study"].iloc[0]
        ax.set_title(f"{name}: {PANEL_TITLES.get(name.split(' ')[0], '')}", fontsize=10)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in colors.items()]
    handles += [plt.Line2D([], [], color="grey", marker=m, ls="", label=f"patch {p}") for p, m in MARKERS.items()]
    handles += [plt.Line2D([], [], color="grey", marker="o", mfc="white", ls="",
                           label="hollow: pyramid layout / conv stem")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("Accuracy against MACs for every mixer, patch size and layout (each arm at its chosen lr)")
    fig.tight_layout()
    return fig


# ---- main -----------------------------------------------------------------------------------


README_BEGIN = "<!-- patches_answer: begin (written by analysis/patches_answer.py --readme) -->"
README_END = "<!-- patches_answer: end -->"


def readme_text(path: Path) -> str:
    """``path``'s text, checked to hold the two markers once each, in order."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"--readme {path}: cannot read it ({err.strerror}); give the README to update") from None
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1 or \
            text.index(README_BEGIN) > text.index(README_END):
        raise ConfigError(f"--readme {path}: needs one line {README_BEGIN!r} and, after it, one line "
                          f"{README_END!r}; add them where the summary belongs")
    return text


def write_readme_block(path: Path, lines: list[str], command: str) -> None:
    """Replace the text between the two marker lines of ``path`` with the verdicts' block, so
    every number in the README's Findings is the script's, not typed."""
    head, rest = readme_text(path).split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    block = "\n".join([README_BEGIN, ""] + lines + ["", f"(`{command}`)", README_END])
    atomic_write_text(path, head + block + tail)


def verdict_lines(claims: pd.DataFrame, gaps: pd.DataFrame, figure: str, limits: str) -> list[str]:
    """The answer's opening: the verdict table, the forest plot, alpha and the limits."""
    if not len(claims):
        return ["No confirmatory study with primary claims was given: nothing is decided."]
    counts = claims["verdict"].value_counts()
    return ["Each primary claim is declared in its study's spec, registered before any of its trials "
            "finished and decided by its own study: each gap's seed-paired interval at the claim's "
            "largest budget (points of test accuracy, a - b), against the claim's ROPE; it stands only if "
            "the gap's change from the previous budget lies inside the stated band (90% interval).", "",
            markdown_table(verdict_table(claims, gaps)), "",
            f"Verdicts: {', '.join(f'{n} {v}' for v, n in counts.items())}. {alpha_text(claims)}", "",
            f"![The primary claims]({figure})", "", f"Limits: {limits}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", nargs="+", help="study folders (results/<name>)")
    p.add_argument("--pending", nargs="*", default=[], metavar="SPEC",
                   help="specs of confirmatory studies not run yet: their claims are listed as such")
    p.add_argument("--out", default="results/answer")
    p.add_argument("--readme", help="also write the verdicts' block into this file, between the "
                   f"lines {README_BEGIN!r} and {README_END!r} (e.g. README.md)")
    args = p.parse_args()
    if args.readme:
        readme_text(Path(args.readme))  # refused before anything is written
    studies: dict[str, dict[str, pd.DataFrame]] = {}
    for path in args.studies:
        df, spec = load_study(path), study_spec(path)
        history = load_history([path])
        # Each trial's late validation gain (its record's, or computed from its history): a
        # diagnostic the findings quote, never a gate.
        c = comparison(df, spec)
        studies[spec.name] = {f["study"].iloc[0]: f.assign(late_gain=trial_gains(f, history))
                              for f in c.frames()}
    claims, claim_gaps, points = primary_claims(args.studies, args.pending)
    frames = [f for by in studies.values() for f in by.values() if "variant" in factors_varied(f)]
    if not frames and not len(claims):
        raise ConfigError("none of these studies varies the token mixer or states claims; give a "
                          "study whose grid varies 'mixer' (e.g. results/quick) or a confirmatory study")
    out = Path(args.out)
    if len(claim_gaps):
        save(forest(claims, claim_gaps, points), out, "answer")
    panel_names = ("mixer_patch", "pixels", "fixed_grid", "layout")
    panels = [f for n in panel_names if n in studies for k, f in studies[n].items() if "macs" not in k]
    panels = panels or frames  # none of the program's studies given: every study that varies the mixer
    if panels:
        save(macs_figure(panels), out, "accuracy_vs_macs")

    rows = []
    for topic, needs, claim, fn in FINDINGS:
        missing = [n for n in needs if n not in studies]
        row = {"question": topic, "studies": ", ".join(needs), "convmixer_claim": claim}
        row.update({"evidence": "not committed: " + ", ".join(missing), "published": ""}
                   if missing else fn(studies))
        rows.append(row)
    findings = pd.DataFrame(rows)
    atomic_write_csv(out / "findings.csv", findings)
    atomic_write_csv(out / "claims.csv", claims)
    atomic_write_csv(out / "gaps.csv", claim_gaps)
    atomic_write_csv(out / "points.csv", points)

    # The verdicts' limits are those of the studies that decide them (and the studies they read).
    deciding = set(claims["study"]) | {n for w in claims.get("with_studies", pd.Series(dtype=str)).dropna()
                                       for n in str(w).split(", ") if n} if len(claims) else set()
    claim_frames = [f for n in deciding if n in studies for f in studies[n].values()]
    limits = limits_text(claim_frames or frames) if (claim_frames or frames) else "see each study's report."
    opening = verdict_lines(claims, claim_gaps, "answer.png", limits)
    lines = ["# Are patches all you need?", "", "## The verdicts: primary claims", ""] + opening + [""]
    if len(claims):
        lines += ["### Each claim", ""]
        for c in claims.itertuples():
            lines += [f"- **{c.claim}** ({c.study}; {c.kind}; {c.source}): {c.text}. Verdict **{c.verdict}**"
                      + (f" (at the largest budget: {c.verdict_at_largest}; stability: {c.stability})"
                         if c.verdict_at_largest else "") + f". {c.registration}."]
        lines.append("")
    table = pd.DataFrame([study_answer(f) for f in frames])
    lines += ["## Findings next to the published results (descriptive: 95% intervals, no verdict)", ""]
    for r in findings.itertuples():
        lines += [f"### {r.question}", "", f"- **This evidence** ({r.studies}): {r.evidence}."]
        if r.published:
            lines += [f"- **Published**: {r.published}."]
        lines.append("")
    if panels:
        lines += ["## Accuracy against MACs", "", "![accuracy against MACs](accuracy_vs_macs.png)", "",
                  "One panel per study: their training subsets, epochs and widths differ, so accuracies "
                  "compare within a panel, not across panels.", ""]
    if len(table):
        lines += ["## Overview per study", "",
                  "Share of test-accuracy variance explained by the mixer and by the patch size (ANOVA "
                  "eta^2, 95% bootstrap interval over trials resampled within cells), the gap between the "
                  "best mixer and the identity control, and the spread among real mixers.", "",
                  markdown_table(table), "",
                  "Studies whose design is not a full product (pixels: no attention at patch 1; "
                  "depth_width: depth at one width, width at one depth) give a rank-deficient ANOVA: their "
                  "shares here are indicative, and the findings above use their balanced parts or paired "
                  "differences instead. The eta^2 intervals resample the few trials of each cell and "
                  "are, if anything, too narrow.", ""]
    command = f"python analysis/patches_answer.py {' '.join(sys.argv[1:])}"
    v = provenance.versions()
    lines += ["## Provenance", "",
              f"- command: `{command}`",
              f"- made at {provenance.now()} from mixerlab {v['mixerlab_version']} "
              f"(commit {v['git_commit']}); each study's own command, seeds, device and "
              "versions are in its `provenance.json`, each confirmatory study's registered claims in "
              "its `claims.json`:"]
    lines += [f"  - `{s}/provenance.json`" for s in args.studies]
    atomic_write_text(out / "answer.md", "\n".join(lines) + "\n")
    if args.readme:
        write_readme_block(Path(args.readme), verdict_lines(claims, claim_gaps, "results/answer/answer.png", limits),
                           command)
    for r in claims.itertuples():
        print(f"- {r.claim}: {r.verdict}")
    print(f"wrote {out / 'answer.md'}")


if __name__ == "__main__":
    try:
        main()
    except ConfigError as err:  # not a study, a damaged table: one line, exit 2
        print(f"patches_answer: error: {err}", file=sys.stderr)
        sys.exit(2)
