"""Budgets a user can trust: how long the dry run takes, and how close its estimate came.

    python benchmarks/budgets.py [--results results]            # parts 1 and 2
    python benchmarks/budgets.py --study SPEC STUDY              # part 3, one finished study

1. The dry run of the largest spec in ``ablations/`` that this machine can time (most
   trials; GPU specs are not timed without a GPU), run as users run it:
   ``mixerlab sweep SPEC --dry-run``, wall time including start-up. Goal: at most 30 s.
2. Every committed study's sessions: the real wall time over the estimate the sweep
   recorded beside it in ``provenance.json`` (``wall_over_estimate``). Goal: within 25%
   (0.75 to 1.25). Sessions shorter than a minute (a resume that found little to do) say
   little about the estimate and are listed apart; so are sessions that were stopped and
   then resumed by the same command (their estimate covered trials they never ran; sweeps
   now record no estimate for a session that did not finish, older provenance still does).
3. One finished study against the estimate made now: every configuration of SPEC timed as
   ``mixerlab sweep SPEC --dry-run`` times it (run it on a quiet machine), then the trials'
   recorded ``trial_time_s`` over their estimate, per configuration and in all, and the
   study's wall time over the estimated wall. Part 2 judges the estimate a user saw; this
   says which configurations it gets wrong, and also covers studies made before sweeps
   recorded their estimate. Not in ``run.py``: it times every configuration of a study.

Every figure is a ratio of a recorded time to an estimate, or a wall time of this run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
GOAL_DRY_RUN_S = 30.0
GOAL_RATIO = (0.75, 1.25)
SHORT_SESSION_S = 60.0
# The columns that name a configuration in a study's trials table; seeds and lrs within one
# share its estimate, so part 3 averages over them.
CONFIG_KEYS = ("variant", "match_by", "layout", "patch_size", "stem")


def largest_cpu_spec(folder: Path = ROOT / "ablations") -> tuple[Path, int]:
    """The spec with the most trials among those that ask for no GPU (or any, on a GPU)."""
    import torch

    from mixerlab.spec import read_yaml
    from mixerlab.sweep import expand, load_spec

    best = None
    for path in sorted(folder.rglob("*.yaml")):
        raw = read_yaml(path)
        if (raw.get("resources") or {}).get("gpu") and not torch.cuda.is_available():
            continue
        data_dir = (raw.get("dataset") or {}).get("data_dir")
        if data_dir and not (path.parent / data_dir).is_dir():
            continue  # its data (ImageNet, linked in by the user) is not on this machine
        spec = load_spec(path)
        # The image shape only names the data set's geometry; the plan's size does not
        # depend on it (Fashion-MNIST: 28 px, 1 channel, 10 classes).
        n = len(expand(spec, (28, 1, 10), where=str(path)).trials)
        if best is None or n > best[1]:
            best = (path, n)
    return best


def dry_run_seconds(spec: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mixerlab", "sweep", str(spec), "--dry-run"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"dry run of {spec} failed: {proc.stderr.strip()[-300:]}")
    return wall


def session_ratios(results: Path) -> list[dict]:
    rows = []
    for prov in sorted(results.glob("*/provenance.json")):
        sessions = json.loads(prov.read_text()).get("sessions", [])
        for i, s in enumerate(sessions):
            if s.get("wall_over_estimate") is None:
                continue  # made before sweeps recorded their estimate, or on a cluster/GPU
            resumed = i + 1 < len(sessions) and sessions[i + 1].get("command") == s.get("command")
            rows.append({"study": prov.parent.name, "session": i + 1,
                         "wall_s": s["wall_time_s"], "estimate_s": s["estimate_wall_s"],
                         "ratio": s["wall_over_estimate"],
                         "short": s["wall_time_s"] < SHORT_SESSION_S, "interrupted": resumed})
    return rows


def estimate_now(spec_path) -> dict[str, float]:
    """Every trial's estimated seconds by trial id, as ``mixerlab sweep SPEC --dry-run``
    times them on this machine now."""
    from mixerlab.sweep.estimate import estimate_per_trial
    from mixerlab.sweep.runner import prepare

    spec, data, plan = prepare(spec_path)
    return estimate_per_trial(plan, data, spec.resources.cpu)


def study_ratios(trials: pd.DataFrame, estimates: dict[str, float], prov: dict) -> tuple[pd.DataFrame, dict]:
    """Part 3's figures: per configuration the mean recorded ``trial_time_s``, the estimate and
    their ratio, over the finished trials that have an estimate; and the study's totals.
    ``trials``: the study's trials table indexed by trial id; ``prov``: its provenance."""
    trials = trials.assign(estimate_s=pd.Series(estimates, dtype=float))
    done = trials[trials["status"] == "ok"].dropna(subset=["estimate_s"])
    done = done.assign(ratio=done["trial_time_s"] / done["estimate_s"])
    keys = [k for k in CONFIG_KEYS if k in done]
    by = done.groupby(keys, dropna=False)[["trial_time_s", "estimate_s", "ratio"]].mean()
    # The study ran this many trials at a time, so its wall is the summed estimate over that.
    slots = prov["sessions"][0]["concurrent_trials"]
    totals = {"trials": len(done),
              "sum_over_estimate": done["trial_time_s"].sum() / done["estimate_s"].sum(),
              "wall_s": prov["wall_time_s"], "estimate_wall_s": sum(estimates.values()) / slots}
    return by, totals


def check_study(spec_path, study: Path) -> tuple[pd.DataFrame, dict]:
    """Part 3 for the finished study in ``study`` of the spec ``spec_path``."""
    trials = pd.read_parquet(study / "trials.parquet").set_index("trial_id")
    prov = json.loads((study / "provenance.json").read_text())
    return study_ratios(trials, estimate_now(spec_path), prov)


def print_study(by: pd.DataFrame, totals: dict) -> None:
    """Part 3 as text: the table per configuration, then the totals."""
    from mixerlab.sweep.estimate import CONTENTION

    with pd.option_context("display.width", 200):
        print(by.round(2).to_string())
    wall, est_wall = totals["wall_s"], totals["estimate_wall_s"]
    print(f"\ntrials: {totals['trials']}; sum trial_time_s / sum estimate = "
          f"{totals['sum_over_estimate']:.3f} (CONTENTION {CONTENTION})")
    print(f"wall {wall:.0f} s, estimated {est_wall:.0f} s: wall / estimate = {wall / est_wall:.3f}")


def run(ctx) -> list[dict]:
    """Figure rows for benchmarks/run.py (``ctx.extra['results']``: the studies' folder)."""
    from figures import figure

    results = Path(ctx.extra.get("results", ROOT / "results"))
    # Smoke size times the README's small spec: finding the largest expands every spec (about
    # a minute of capacity matching), which a smoke run only has to show it can do.
    spec, n = largest_cpu_spec() if not ctx.quick else (ROOT / "ablations" / "quick.yaml", 24)
    wall = dry_run_seconds(spec)
    out = [figure("budgets", f"dry run of {spec.relative_to(ROOT)} ({n} trials)", round(wall, 1),
                  "s", f"goal <= {GOAL_DRY_RUN_S:g} s: {'met' if wall <= GOAL_DRY_RUN_S else 'missed'}")]
    lo, hi = GOAL_RATIO
    for r in session_ratios(results):
        judged = ("too short to judge" if r["short"] else
                  "stopped and resumed: not a check of the estimate" if r["interrupted"] else
                  f"goal {lo}-{hi}: {'met' if lo <= r['ratio'] <= hi else 'missed'}")
        out.append(figure("budgets", f"{r['study']} session {r['session']} wall / estimate",
                          r["ratio"], "ratio",
                          f"{r['wall_s']:.0f} s real vs {r['estimate_s']:.0f} s estimated; {judged}"))
    return out


def main(argv=None) -> None:
    from figures import Context, print_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--study", nargs=2, metavar=("SPEC", "STUDY"), type=Path,
                    help="part 3 only: the finished study STUDY of SPEC against the estimate made now")
    args = ap.parse_args(argv)
    if args.study:
        print_study(*check_study(*args.study))
        return
    print_rows(run(Context(extra={"results": args.results})))


if __name__ == "__main__":
    main()
