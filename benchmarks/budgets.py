"""Budgets a user can trust: how long the dry run takes, and how close its estimate came.

    python benchmarks/budgets.py [--results results]

1. The dry run of the largest spec in ``ablations/`` that this machine can time (most
   trials; GPU specs are not timed without a GPU), run as users run it:
   ``mixerlab sweep SPEC --dry-run``, wall time including start-up. Goal: at most 30 s.
2. Every committed study's sessions: the real wall time over the estimate the sweep
   recorded beside it in ``provenance.json`` (``wall_over_estimate``). Goal: within 25%
   (0.75 to 1.25). Sessions shorter than a minute (a resume that found little to do) say
   little about the estimate and are listed apart; so are sessions that were stopped and
   then resumed by the same command (their estimate covered trials they never ran; sweeps
   now record no estimate for a session that did not finish, older provenance still does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_DRY_RUN_S = 30.0
GOAL_RATIO = (0.75, 1.25)
SHORT_SESSION_S = 60.0


def largest_cpu_spec(folder: Path = ROOT / "ablations") -> tuple[Path, int]:
    """The spec with the most trials among those that ask for no GPU (or any, on a GPU)."""
    import torch

    from mixerlab.sweep import expand, load_spec
    from mixerlab.sweep.spec import read_yaml

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
    args = ap.parse_args(argv)
    print_rows(run(Context(extra={"results": args.results})))


if __name__ == "__main__":
    main()
