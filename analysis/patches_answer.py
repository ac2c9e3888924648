"""Are patches all you need? The platform's answer, combined over every finished study.

Built only on ``mixerlab.analysis``. For each study that varies the token mixer it asks
three questions and puts the numbers side by side:

1. How much of the variance in test accuracy does the mixer explain, and how much the
   patch size (ANOVA eta^2)?
2. How far is the identity control (no token mixing) from the best mixer? If patches
   were all you need, this gap would be small.
3. Among the real mixers (identity excluded), how large is the spread, and is the best
   significantly better than the runner-up after Holm correction?

    python analysis/patches_answer.py results/quick [results/mixer_patch results/layout ...]

Writes ``results/answer/answer.md`` and ``answer.png`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mixerlab import provenance  # noqa: E402
from mixerlab.analysis import (  # noqa: E402
    aggregate,
    anova,
    choose_nuisance,
    design_factors,
    factors_varied,
    load_spec,
    load_study,
    markdown_table,
    pairwise,
)
from mixerlab.analysis.plots import palette, save  # noqa: E402
from mixerlab.errors import ConfigError  # noqa: E402


def study_answer(df: pd.DataFrame) -> dict:
    factors = design_factors(df, [f for f in factors_varied(df)
                                  if f in ("variant", "layout", "patch_size", "kernel_size", "width")])
    effects = anova(df, factors).set_index("term") if factors else pd.DataFrame()
    share = effects["eta_sq"].to_dict() if len(effects) else {}
    means = aggregate(df, by=["variant"]).set_index("variant")["test_acc_mean"].sort_values(ascending=False)
    mixers = means.drop("identity", errors="ignore")
    pairs = pairwise(df[df["variant"] != "identity"], within=None)
    top = pairs[((pairs.a == mixers.index[0]) & (pairs.b == mixers.index[1])) |
                ((pairs.b == mixers.index[0]) & (pairs.a == mixers.index[1]))] if len(mixers) > 1 else pairs
    return {
        "study": df["study"].iloc[0], "trials": len(df), "ok": int((df["status"] == "ok").sum()),
        "eta_sq mixer": share.get("variant"), "eta_sq patch size": share.get("patch_size"),
        "best mixer": mixers.index[0] if len(mixers) else None,
        "best acc %": mixers.iloc[0] if len(mixers) else None,
        "identity gap (points)": (mixers.iloc[0] - means["identity"]) if "identity" in means and len(mixers) else None,
        "spread among mixers (points)": (mixers.iloc[0] - mixers.iloc[-1]) if len(mixers) > 1 else None,
        "best vs runner-up p (Holm)": top["p_holm"].iloc[0] if len(top) else None,
    }


def comparable(df: pd.DataFrame, spec: dict) -> list[pd.DataFrame]:
    """The trials a study's own report compares: each arm at its validation-chosen nuisance
    setting, one frame per capacity matching (named ``study (matched by params)``)."""
    if spec.get("nuisance"):
        df = choose_nuisance(df, list(spec["nuisance"]))
        df.attrs = {}
    if "match_by" in df.columns and df["match_by"].nunique() > 1:
        return [g.assign(study=f"{g['study'].iloc[0]} (matched by {by})")
                for by, g in df.groupby("match_by")]
    return [df]


def figure(frames: list[pd.DataFrame]) -> plt.Figure:
    fig, axes = plt.subplots(1, len(frames), figsize=(5 * len(frames) + 1.5, 4), squeeze=False, sharey=True)
    colors = palette(pd.concat(frames)["variant"].dropna())
    for ax, df in zip(axes[0], frames):
        agg = aggregate(df, by=["variant"]).sort_values("test_acc_mean")
        # Dots, not bars: the axis does not start at zero, and a bar's length would then
        # exaggerate the gaps between mixers.
        for y, row in enumerate(agg.itertuples()):
            ax.errorbar(row.test_acc_mean, y, xerr=[[row.test_acc_mean - row.test_acc_lo],
                                                    [row.test_acc_hi - row.test_acc_mean]],
                        fmt="o", color=colors[row.variant], markersize=8, capsize=4, elinewidth=2)
        ax.set_yticks(range(len(agg)), agg["variant"])
        ax.set_ylim(-0.5, len(agg) - 0.5)
        ax.set_xlim(max(0, agg["test_acc_lo"].min() - 5), min(100, agg["test_acc_hi"].max() + 2))
        ax.set_title(f"{df['study'].iloc[0]}: test accuracy by mixer")
        ax.set_xlabel("test accuracy (%), mean over patch sizes and seeds, 95% CI")
    fig.tight_layout()
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", nargs="+")
    p.add_argument("--out", default="results/answer")
    args = p.parse_args()
    frames = [f for s in args.studies for f in comparable(load_study(s), load_spec(s))]
    frames = [f for f in frames if "variant" in factors_varied(f)]
    if not frames:
        raise ConfigError("none of these studies varies the token mixer; give a study whose "
                          "grid varies 'mixer' (e.g. results/quick)")
    table = pd.DataFrame([study_answer(f) for f in frames])
    out = Path(args.out)
    save(figure(frames), out, "answer")
    lines = ["# Are patches all you need?", "",
             "Per study: share of test-accuracy variance explained by the mixer and by the patch size "
             "(ANOVA eta^2), the gap between the best mixer and the identity control, and the spread "
             "among real mixers.", "", markdown_table(table), "", "![answer](answer.png)", ""]
    for _, r in table.iterrows():
        mixer, patch = r["eta_sq mixer"], r["eta_sq patch size"]
        lines.append(
            f"- **{r['study']}**: the mixer explains {mixer:.0%} of the variance"
            + (f" and the patch size {patch:.0%}" if pd.notna(patch) else "")
            + (f"; removing token mixing altogether (identity) costs {r['identity gap (points)']:.1f} points"
               if pd.notna(r["identity gap (points)"]) else "")
            + (f"; among real mixers the spread is {r['spread among mixers (points)']:.1f} points "
               f"(best {r['best mixer']}, best vs runner-up Holm p={r['best vs runner-up p (Holm)']:.2g})"
               if pd.notna(r["spread among mixers (points)"]) else "") + ".")
    lines += ["", "Reading: patches are 'all you need' to the extent that the spread among real mixers is "
              "small next to the identity gap and the patch-size effect. Each study's own report states "
              "its limits (data set, seeds, training length)."]
    v = provenance.versions()
    lines += ["", "## Provenance", "",
              f"- command: `python analysis/patches_answer.py {' '.join(sys.argv[1:])}`",
              f"- made at {provenance.now()} from mixerlab {v['mixerlab_version']} "
              f"(commit {v['git_commit']}); each study's own command, seeds, device and "
              "versions are in its `provenance.json`:"]
    lines += [f"  - `{s}/provenance.json`" for s in args.studies]
    (out / "answer.md").write_text("\n".join(lines))
    print("\n".join(line for line in lines if line.startswith("- **")))
    print(f"wrote {out / 'answer.md'}")


if __name__ == "__main__":
    try:
        main()
    except ConfigError as err:  # not a study, a damaged table: one line, exit 2
        print(f"patches_answer: error: {err}", file=sys.stderr)
        sys.exit(2)
