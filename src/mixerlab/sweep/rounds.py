"""A study's later rounds: trials the driver plans from the records so far.

Two kinds, each a new round of trials of the same study (like ``--extend``):

- **stage 2 of two-stage tuning** (``tuning:``): once every tuning trial has finished, each
  arm's setting is chosen by the analysis's own choice (on validation accuracy; the same
  :func:`~mixerlab.analysis.comparison.compare` the report calls), and the study's seeds
  run at that setting only;
- **adaptive seeds** (``seeds: {min, max, ...}``): the comparisons the report makes are
  decided by :func:`~mixerlab.analysis.decisions.decisions`; every arm of a comparison still
  undecided gets the next ``step`` seeds, up to ``max``.

A round is written to ``<study>/rounds.json`` (atomically) before its trials start, so a
driver killed mid-round resumes that round as planned: its finished trials keep their
records, the others run, and nothing is re-planned from a partial round. Trials are named by
(arm, setting, seed) and re-made from the spec on resume; a file that no longer matches the
spec is refused rather than guessed at.
"""

from __future__ import annotations

import json

import pandas as pd

from mixerlab import provenance
from mixerlab.errors import ConfigError
from mixerlab.record import FINAL
from mixerlab.results import atomic_write_text
from mixerlab.spec import Spec
from mixerlab.sweep.study import Study
from mixerlab.sweep.trials import Plan, Trial

ROUNDS = "rounds.json"


def has_rounds(spec: Spec) -> bool:
    return bool(spec.tuning or spec.adaptive)


def load(study: Study) -> list[dict]:
    path = study.path / ROUNDS
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: unreadable ({err}); it lists the trials later rounds added. "
                          "Restore it from a copy, or move the study aside with --new-study") from None


def restore(plan: Plan, study: Study) -> int:
    """Join the trials of every saved round to ``plan``; returns the number of rounds."""
    saved = load(study)
    for rnd in saved:
        trials = []
        for t in rnd["trials"]:
            made = plan.make(t["arm"], t["setting"], t["seed"], **t["extra"])
            if made.trial_id != t["trial_id"]:
                raise ConfigError(f"{study.path / ROUNDS}: round {rnd['round']} names trial "
                                  f"{t['trial_id']}, which this spec makes as {made.trial_id}: the "
                                  "spec changed. Use --new-study, or give the spec another 'name'")
            trials.append(made)
        plan.add(trials)
    return len(saved)


def save(study: Study, plan: Plan, trials: list[Trial], why: str) -> None:
    """Record a round before its trials start."""
    saved = load(study)
    saved.append({"round": len(saved) + 1, "why": why, "planned_at": provenance.now(),
                  "trials": [{"trial_id": t.trial_id, "arm": plan.origin[t.trial_id][0],
                              "setting": plan.origin[t.trial_id][1], "seed": t.config.seed,
                              "extra": {k: v for k, v in t.extra.items() if k in ("stage", "round")}}
                             for t in trials]})
    atomic_write_text(study.path / ROUNDS, json.dumps(saved, indent=1))


def _finished(plan: Plan, table: pd.DataFrame) -> bool:
    done = set(table["trial_id"][table["status"].isin(FINAL)]) if len(table) else set()
    return all(t.trial_id in done for t in plan.trials)


def _comparison(spec: Spec, table: pd.DataFrame):
    from mixerlab.analysis.comparison import compare

    return compare(table, list(spec.nuisance or {}), spec.nuisance or {})


def _origins(plan: Plan, trial_ids) -> set[tuple[int, int]]:
    return {plan.origin[t] for t in trial_ids if t in plan.origin}


def next_round(spec: Spec, plan: Plan, table: pd.DataFrame) -> tuple[list[Trial], str]:
    """The trials of the next round (none when the study is complete) and why they run.
    Only called when every planned trial has finished."""
    if not has_rounds(spec) or not _finished(plan, table):
        return [], ""
    n = 1 + max((t.extra.get("round", 0) for t in plan.trials), default=0)
    measured = any(t.extra.get("stage") == "measure" for t in plan.trials)
    if spec.tuning and not measured:
        return _stage_two(spec, plan, table, n)
    if spec.adaptive:
        return _more_seeds(spec, plan, table, n)
    return [], ""


def _stage_two(spec: Spec, plan: Plan, table: pd.DataFrame, n: int) -> tuple[list[Trial], str]:
    chosen = _comparison(spec, table).chosen
    picks = sorted(_origins(plan, chosen["trial_id"]))
    trials = [plan.make(arm, setting, seed, stage="measure", round=n)
              for arm, setting in picks for seed in spec.seed_list]
    return trials, (f"stage 2: {len(picks)} arm(s) at the setting the {len(spec.tuning_seed_list)} "
                    f"tuning seed(s) chose, x {len(spec.seed_list)} seed(s)")


def decision_table(spec: Spec, table: pd.DataFrame) -> pd.DataFrame:
    """The study's comparisons and their decisions by the spec's adaptive rule."""
    from mixerlab.analysis.decisions import Rule, decisions

    a = spec.adaptive
    return decisions(_comparison(spec, table), Rule(a.alpha, a.rope, a.max))


def _more_seeds(spec: Spec, plan: Plan, table: pd.DataFrame, n: int) -> tuple[list[Trial], str]:
    a = spec.adaptive
    decided = decision_table(spec, table)
    want: dict[tuple[int, int], int] = {}
    for _, row in decided[decided["reason"] == "still running"].iterrows():
        target = min(row["n_seeds"] + a.step, a.max)
        for origin in _origins(plan, [*row["trials_a"], *row["trials_b"]]):
            want[origin] = max(want.get(origin, 0), target)
    known = {t.trial_id for t in plan.trials}
    trials = []
    for (arm, setting), target in sorted(want.items()):
        for seed in spec.max_seed_list[:target]:
            t = plan.make(arm, setting, seed, stage="measure", round=n)
            if t.trial_id not in known:  # a failed trial is not run again by a new round
                trials.append(t)
    from mixerlab.analysis.decisions import decided_text

    why = f"{decided_text(decided)}; {len(want)} arm(s) of the undecided get more seeds"
    return trials, why
