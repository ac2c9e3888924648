"""A budget ladder's rows against separate runs of each budget: is it the same science, and
what did it save?

    python analysis/ladder_vs_separate.py results/wsd_validation results/mixer_confirm

Each ok row of the ladder study (``train.budgets``: one WSD run per arm and seed, a row per
budget, mixerlab/record.py) is paired with the ok trial of the separate study that has its
variant, seed, lr and epochs (the separate study's tuning-stage trials left out). Per arm and
budget: the seed-paired difference of test accuracy, ladder - separate, with its paired t
interval at ``--confidence`` (90%: an equivalence test at 5%, Schuirmann 1987), and a
verdict against ``--margin`` (points):

- ``equivalent``: the interval lies within +-margin;
- ``loses``: the interval lies wholly below 0 (the ladder is less accurate);
- ``gains``: the interval lies wholly above 0;
- ``undecided``: none of these (or fewer than two seeds).

The ladder is equivalent overall only if every arm and budget is (an intersection-union test:
all must hold, so no correction for their number). Arms or budgets whose seeds are not all in
yet are marked ``incomplete`` and enter no overall verdict.

Cost, from the ladder study itself: a rung's ``train_time_s`` is its stable prefix's (the
main branch's epochs up to the budget's cool-down start) plus its cool-down branch's, which is
what a WSD run of that budget alone would train. So per ladder run, training seconds as a
ladder (the largest budget's run plus each branch) against as separate runs (every budget's
run in full), and the same for the whole trial (``trial_time_s``, evaluations included: the
separate runs would also train the shared prefixes again). Beside them, for scale only, the
separate study's own trial times (another session: other load). And the sweep's sessions
with the dry run's estimate against their wall time (``provenance.json``).

Writes ``ladder_vs_separate.md`` and ``ladder_vs_separate.csv`` into the ladder study's folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mixerlab import provenance
from mixerlab.analysis import load_history, load_study, markdown_table
from mixerlab.analysis.claims import t_interval
from mixerlab.analysis.load import study_spec
from mixerlab.config import cooldown_epochs
from mixerlab.errors import ConfigError
from mixerlab.record import LADDER
from mixerlab.results import atomic_write_csv, atomic_write_text

KEYS = ["variant", "seed", "lr", "epochs"]


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["status"] == "ok"]
    return out[out["stage"] != "tune"] if "stage" in out else out


def pair(ladder: pd.DataFrame, separate: pd.DataFrame) -> pd.DataFrame:
    """One row per ladder row with its twin among the separate runs (same variant, seed, lr
    and epochs): test and validation accuracy of each, and the difference ladder - separate."""
    if LADDER not in ladder.columns or ladder[LADDER].isna().all():
        raise ConfigError("the first study has no budget ladder (no `ladder` column); give the "
                          "study that ran `train.budgets` first, the separate runs second")
    cols = KEYS + ["trial_id", "test_acc", "val_acc"]
    joined = _ok(ladder)[cols + [LADDER]].merge(_ok(separate)[cols], on=KEYS, suffixes=("_ladder", "_separate"))
    if not len(joined):
        raise ConfigError("no ladder row has a twin (same variant, seed, lr and epochs) in the "
                          "second study; give a study of separate runs of the same arms, seeds and budgets")
    joined["test_diff"] = joined["test_acc_ladder"] - joined["test_acc_separate"]
    joined["val_diff"] = joined["val_acc_ladder"] - joined["val_acc_separate"]
    return joined.sort_values(KEYS).reset_index(drop=True)


def verdict(lo: float, hi: float, margin: float) -> str:
    """The verdict of one interval against the equivalence margin (see the module's doc)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "undecided"
    if -margin <= lo and hi <= margin:
        return "equivalent"
    if hi < 0:
        return "loses"
    if lo > 0:
        return "gains"
    return "undecided"


def decide(pairs: pd.DataFrame, n_seeds: int | None, margin: float, confidence: float) -> pd.DataFrame:
    """Per arm and budget: seeds paired (of the ``n_seeds`` the ladder study plans; None: those
    paired), the mean test difference with its paired t interval, the mean validation
    difference, and the verdict."""
    rows = []
    for (variant, epochs), g in pairs.groupby(["variant", "epochs"]):
        t = t_interval(g["test_diff"], confidence)
        n_planned = n_seeds or len(g)
        complete = len(g) >= n_planned
        rows.append({"variant": variant, "epochs": int(epochs), "seeds": f"{len(g)} of {n_planned}",
                     "test_diff": t["diff"], "sd": t["sd"], "lo": t["lo"], "hi": t["hi"],
                     "val_diff": float(g["val_diff"].mean()),
                     "verdict": verdict(t["lo"], t["hi"], margin) if complete else "incomplete"})
    return pd.DataFrame(rows)


def overall(table: pd.DataFrame) -> str:
    """Equivalent only if every arm and budget is; a loss anywhere is reported as one."""
    v = set(table["verdict"])
    if "loses" in v:
        return "loses accuracy (at least one arm and budget lies wholly below 0)"
    if "incomplete" in v:
        return "not decided yet (some arms and budgets have not all their seeds)"
    if v == {"equivalent"}:
        return "equivalent (every arm and budget within the margin)"
    return "not shown equivalent (at least one arm and budget is not within the margin)"


def _prefix_s(history: pd.DataFrame, run_id: str, start: int) -> float:
    """Seconds the main branch of ``run_id`` trained up to epoch ``start`` (its stable prefix)."""
    h = history[(history["trial_id"] == run_id) & (history["epoch"] <= start)]
    return float(h["epoch_time_s"].sum())


def cost(ladder: pd.DataFrame, history: pd.DataFrame, separate: pd.DataFrame) -> pd.DataFrame:
    """Per ladder run: training and trial seconds as a ladder against as separate runs of each
    budget (see the module's doc), their ratios, and the separate study's own trial seconds."""
    ok = _ok(ladder)
    sep = _ok(separate).set_index(KEYS)
    rows = []
    for run_id, g in ok.groupby(LADDER):
        top = g[g["trial_id"] == run_id]
        if len(top) != 1:
            continue  # the run has not finished its largest budget: no cost yet
        top = top.iloc[0]
        rungs = g[g["trial_id"] != run_id]
        prefixes = sum(_prefix_s(history, run_id, int(r.epochs) - cooldown_epochs(int(r.epochs), float(r.cooldown_fraction)))
                       for r in rungs.itertuples())
        train_separate = top["train_time_s"] + float(rungs["train_time_s"].sum())
        train_ladder = train_separate - prefixes
        twins = [sep["trial_time_s"].get((r.variant, r.seed, r.lr, r.epochs), np.nan) for r in g.itertuples()]
        rows.append({"variant": top["variant"], "seed": int(top["seed"]), "ladder": run_id,
                     "budgets": ", ".join(str(int(e)) for e in sorted(g["epochs"])),
                     "train_min_ladder": train_ladder / 60, "train_min_separate": train_separate / 60,
                     "train_ratio": train_ladder / train_separate,
                     "trial_min_ladder": top["trial_time_s"] / 60,
                     "trial_min_separate": (top["trial_time_s"] + prefixes) / 60,
                     "trial_ratio": top["trial_time_s"] / (top["trial_time_s"] + prefixes),
                     "twins_trial_min": float(np.sum(twins)) / 60 if np.all(np.isfinite(twins)) else np.nan})
    return pd.DataFrame(rows).sort_values(["variant", "seed"]).reset_index(drop=True) if rows else pd.DataFrame(rows)


def sessions(folder: Path) -> pd.DataFrame:
    """The sweep's sessions: wall time against the dry run's estimate (provenance.json)."""
    f = folder / "provenance.json"
    if not f.exists():
        return pd.DataFrame()
    keep = ["started_at", "wall_time_s", "concurrent_trials", "estimate_wall_s", "wall_over_estimate"]
    rows = json.loads(f.read_text()).get("sessions", [])
    return pd.DataFrame([{k: s.get(k) for k in keep} for s in rows])


def report(a: Path, b: Path, args, pairs, table, costs, sess) -> list[str]:
    shown = pairs.drop(columns=[LADDER]).rename(columns={"trial_id_ladder": "ladder row",
                                                         "trial_id_separate": "separate trial"})
    pct = f"{args.confidence:.0%}"
    lines = [f"# {a.name}: budget ladder against separate runs ({b.name})", "",
             f"Each ladder row of `{a}` beside the separate run of `{b}` with its variant, seed, lr and "
             f"epochs. Differences are ladder - separate, in points of accuracy; intervals are {pct} paired "
             f"t intervals; margin +-{args.margin:g} points.", "",
             f"**Overall: {overall(table)}.**", "", "## Per arm and budget", "",
             markdown_table(table.round(3)), "", "## Pairs", "", markdown_table(shown.round(3)), ""]
    if len(costs):
        tot = costs[["train_min_ladder", "train_min_separate", "trial_min_ladder", "trial_min_separate"]].sum()
        lines += ["## Cost", "",
                  "Minutes per ladder run: training as a ladder (the largest budget's run plus each "
                  "smaller budget's cool-down branch) against as separate runs of every budget (each "
                  "rung's own training time: its stable prefix and its cool-down), and the same for "
                  "the whole trial, evaluations included. `twins_trial_min`: the separate study's own "
                  "trials at these budgets (another session, other load: for scale only).", "",
                  markdown_table(costs.round(3)), "",
                  f"All runs: training {tot['train_min_ladder']:.1f} against {tot['train_min_separate']:.1f} "
                  f"minutes ({tot['train_min_ladder'] / tot['train_min_separate']:.3f}x); trials "
                  f"{tot['trial_min_ladder']:.1f} against {tot['trial_min_separate']:.1f} minutes "
                  f"({tot['trial_min_ladder'] / tot['trial_min_separate']:.3f}x).", ""]
    if len(sess):
        lines += ["## The dry run's estimate against the wall time", "",
                  "Each session of the sweep (`provenance.json`): its wall time and the dry run's "
                  "estimate of the trials it ran, shared among its slots.", "", markdown_table(sess), ""]
    lines += ["## Provenance", "",
              f"- command: `python analysis/ladder_vs_separate.py {args.ladder} {args.separate}"
              + (f" --margin {args.margin:g}" if args.margin != 0.5 else "")
              + (f" --confidence {args.confidence:g}" if args.confidence != 0.9 else "") + "`",
              f"- made at {provenance.now()} (commit {provenance.versions()['git_commit']}); each study's "
              "command, seeds, device and versions are in its `provenance.json`", ""]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ladder", help="the study that ran a budget ladder (results/<name>)")
    p.add_argument("separate", help="the study of separate runs of the same arms, seeds and budgets")
    p.add_argument("--margin", type=float, default=0.5, help="equivalence margin, points (default 0.5)")
    p.add_argument("--confidence", type=float, default=0.9, help="interval level (default 0.90)")
    args = p.parse_args()
    if not (0 < args.confidence < 1) or args.margin <= 0:
        raise ConfigError("--confidence must lie between 0 and 1 and --margin be positive, "
                          "e.g. --confidence 0.9 --margin 0.5")
    a, b = Path(args.ladder), Path(args.separate)
    ladder, separate = load_study(a), load_study(b)
    pairs = pair(ladder, separate)
    table = decide(pairs, len(study_spec(a).seed_list) or None, args.margin, args.confidence)
    costs = cost(ladder, load_history([a]), separate)
    lines = report(a, b, args, pairs, table, costs, sessions(a))
    atomic_write_csv(a / "ladder_vs_separate.csv", table)
    atomic_write_text(a / "ladder_vs_separate.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    except ConfigError as err:
        print(f"ladder_vs_separate: error: {err}", file=sys.stderr)
        sys.exit(2)
