"""How well the dry run's estimate predicts a finished study: per configuration and in all.

    python benchmarks/estimate_check.py ablations/mixer_patch.yaml results/mixer_patch

Times every configuration as `mixerlab sweep SPEC --dry-run` does (run it on a quiet
machine), then divides the trials' recorded ``trial_time_s`` by the estimate, per
configuration and over the whole study, and the study's wall time by the estimated wall.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from mixerlab.sweep.estimate import CONTENTION, estimate_per_trial
from mixerlab.sweep.runner import prepare


def main(spec_path: str, study: str) -> None:
    spec, data, plan = prepare(spec_path)
    est = estimate_per_trial(plan, data, spec.resources.cpu)
    trials = pd.read_parquet(Path(study) / "trials.parquet").set_index("trial_id")
    trials["estimate_s"] = pd.Series(est)
    trials = trials[trials["status"] == "ok"].dropna(subset=["estimate_s"])
    trials["ratio"] = trials["trial_time_s"] / trials["estimate_s"]
    keys = [k for k in ("variant", "match_by", "layout", "patch_size", "stem") if k in trials]
    by = trials.groupby(keys, dropna=False)[["trial_time_s", "estimate_s", "ratio"]].mean()
    pd.set_option("display.width", 200)
    print(by.round(2).to_string())
    prov = json.loads((Path(study) / "provenance.json").read_text())
    slots = prov["sessions"][0]["concurrent_trials"]
    wall = prov["wall_time_s"]
    est_wall = sum(est.values()) / slots
    print(f"\ntrials: {len(trials)}; sum trial_time_s / sum estimate = "
          f"{trials['trial_time_s'].sum() / trials['estimate_s'].sum():.3f} (CONTENTION {CONTENTION})")
    print(f"wall {wall:.0f} s, estimated {est_wall:.0f} s: wall / estimate = {wall / est_wall:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
