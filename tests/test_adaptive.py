"""Two-stage tuning and adaptive seeds: the decisions (synthetic tables), the rounds a driver
plans from a real spec's plan (synthetic records), the spec's seeds and fingerprints, and one
real end-to-end sweep on a tiny Fashion-MNIST subset.

Tables built here are named ``synthetic_*``: made up in the test, no training behind them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_controlled import load_committed

from mixerlab.analysis.comparison import Stratum, compare
from mixerlab.analysis.confidence_sequence import confidence_sequence, decide
from mixerlab.analysis.decisions import Rule, decisions, differences
from mixerlab.config import HOW_FIELDS
from mixerlab.errors import ConfigError
from mixerlab.sweep import expand, load_spec, rounds
from mixerlab.sweep.study import MARKER, Study

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fashion = pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")


# == decisions on synthetic tables (no Ray, no training) ===================================
def synthetic_trials(test_acc: dict[str, list[float]]) -> pd.DataFrame:
    """One ok trial per arm (variant) and seed 0..n-1, with the given test accuracies."""
    rows = [{"trial_id": f"{arm}-{seed}", "status": "ok", "variant": arm, "seed": seed,
             "test_acc": acc, "val_acc": acc}
            for arm, accs in test_acc.items() for seed, acc in enumerate(accs)]
    return pd.DataFrame(rows)


def first_seeds(df: pd.DataFrame, n: int) -> pd.DataFrame:
    return df[df["seed"] < n]


def one(decided: pd.DataFrame) -> pd.Series:
    assert len(decided) == 1, decided
    return decided.iloc[0]


RULE = Rule(alpha=0.05, rope=0.5, max_seeds=12)


def test_a_large_consistent_gap_is_different_and_stopped_at_is_the_first_deciding_seed():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1.0, 12)  # seed-to-seed variation both arms share (it cancels)
    synthetic = synthetic_trials({"conv": list(80 + shared + rng.normal(0, 0.3, 12)),
                                  "identity": list(70 + shared + rng.normal(0, 0.3, 12))})
    row = one(decisions(compare(synthetic), RULE))
    assert (row["a"], row["b"], row["comparison"]) == ("conv", "identity", "mixer")
    assert row["decision"] == row["reason"] == "different" and row["n_seeds"] == 12
    assert row["lo"] > 0 and 9 < row["diff"] < 11
    k = int(row["stopped_at"])
    assert 3 <= k <= 12
    # stopped_at is the first seed count at which it decided: one seed fewer, still open.
    assert one(decisions(compare(first_seeds(synthetic, k)), RULE))["decision"] == "different"
    before = one(decisions(compare(first_seeds(synthetic, k - 1)), RULE))
    assert before["decision"] == "undecided" and before["reason"] == "still running"
    assert pd.isna(before["stopped_at"])


def test_a_tiny_gap_with_small_noise_and_enough_seeds_is_equivalent():
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 1.0, 12)
    synthetic = synthetic_trials({"conv": list(80 + shared + rng.normal(0, 0.03, 12)),
                                  "mlp": list(79.98 + shared + rng.normal(0, 0.03, 12))})
    row = one(decisions(compare(synthetic), RULE))
    assert row["decision"] == row["reason"] == "equivalent"
    assert -0.5 <= row["lo"] <= row["hi"] <= 0.5
    k = int(row["stopped_at"])
    assert one(decisions(compare(first_seeds(synthetic, k)), RULE))["decision"] == "equivalent"
    assert one(decisions(compare(first_seeds(synthetic, k - 1)), RULE))["decision"] == "undecided"


def test_a_noisy_comparison_stops_at_max_seeds_undecided():
    d = np.array([4.0, -3.0, 5.0, -4.0, 3.0, -2.0])  # mean 0.5, sd ~4: neither 0 nor the ROPE excluded
    synthetic = synthetic_trials({"conv": list(70 + d / 2), "identity": list(70 - d / 2)})
    rule = Rule(alpha=0.05, rope=0.5, max_seeds=6)
    row = one(decisions(compare(synthetic), rule))
    assert row["decision"] == "undecided" and row["reason"] == "max reached"
    assert row["n_seeds"] == 6 and pd.isna(row["stopped_at"])
    assert row["lo"] < 0 < row["hi"]
    # One seed short of max, the same comparison is still running.
    assert one(decisions(compare(first_seeds(synthetic, 5)), rule))["reason"] == "still running"


def test_alpha_is_split_over_the_comparisons():
    rng = np.random.default_rng(2)
    shared = rng.normal(0, 1.0, 8)
    accs = {"attention": 75 + shared + rng.normal(0, 1.0, 8),
            "conv": 80 + shared + rng.normal(0, 1.0, 8),
            "identity": 70 + shared + rng.normal(0, 1.0, 8)}
    synthetic = synthetic_trials({k: list(v) for k, v in accs.items()})
    decided = decisions(compare(synthetic), RULE)
    assert len(decided) == 3 and np.allclose(decided["alpha"], 0.05 / 3)
    for row in decided.itertuples():
        d = accs[row.a] - accs[row.b]
        lo, hi = confidence_sequence(d, 0.05 / 3)
        assert np.isclose(row.lo, lo[-1]) and np.isclose(row.hi, hi[-1])
        assert row.decision == decide(lo[-1], hi[-1], 0.5)
        # the same differences alone (alpha not split) give a narrower interval
        lo1, hi1 = confidence_sequence(d, 0.05)
        assert lo1[-1] > row.lo and hi1[-1] < row.hi


def test_differences_pair_by_seed_and_skip_unpaired_seeds():
    a = pd.DataFrame({"seed": [3, 1, 2, 5], "test_acc": [13.0, 11.0, 12.0, 15.0]})
    b = pd.DataFrame({"seed": [1, 2, 3, 4], "test_acc": [1.0, 2.0, 3.0, 4.0]})
    assert differences(a, b).to_dict() == {1: 10.0, 2: 10.0, 3: 10.0}


# -- Stratum.pair_groups yields what the report tests -------------------------------------
def synthetic_design(factors: dict[str, list], seeds: int = 3, **const) -> pd.DataFrame:
    """Every combination of ``factors`` x seeds, ok, with made-up accuracies."""
    rng = np.random.default_rng(len(factors))
    rows = []
    for combo in itertools.product(*factors.values()):
        for seed in range(seeds):
            row = {**dict(zip(factors, combo)), **const, "seed": seed, "status": "ok",
                   "test_acc": 70 + rng.normal(0, 2), "val_acc": 70 + rng.normal(0, 2)}
            rows.append(row)
    out = pd.DataFrame(rows)
    out["trial_id"] = [f"t{i}" for i in range(len(out))]
    if "kernel_size" in out:  # a factor that does not apply to attention: NaN, as in records
        out.loc[out["variant"] == "attention", "kernel_size"] = np.nan
        out = out.drop_duplicates(["variant", "kernel_size", "depth", "seed"]
                                  if "depth" in out else ["variant", "kernel_size", "seed"])
    return out


DESIGNS = {
    "mixers": dict(variant=["attention", "conv", "identity"]),
    "mixers-within-patch": dict(variant=["attention", "conv", "mlp"], patch_size=[4, 7]),
    "layouts": dict(variant=["conv", "identity"], layout=["isotropic", "pyramid"]),
    "one-at-a-time": dict(variant=["attention", "conv", "identity"], depth=[1, 2]),
    "factor-not-applying": dict(variant=["attention", "conv"], kernel_size=[3, 5], depth=[1, 2]),
    "matched-both-ways": dict(variant=["conv", "identity", "mlp"], match_by=["macs", "params"]),
}


def _tested(s: Stratum) -> list[tuple]:
    """(what, a, b, n_a, n_b) of every row of the report's three tables of ``s``."""
    out = []
    for _, r in s.pairs.iterrows():
        level = r[s.within] if s.within in r else r.get("stratum")
        what = "mixer" if level is None or pd.isna(level) else f"mixer at {s.within}={level}"
        out.append((what, r["a"], r["b"], r["n_a"], r["n_b"]))
    for _, r in s.factor_pairs.iterrows():
        out.append((f"{r['factor']} at {r['at']}", r["a"], r["b"], r["n_a"], r["n_b"]))
    for _, r in s.layouts.iterrows():
        out.append((f"layout of {r['variant']}", r["a"], r["b"], r["n_a"], r["n_b"]))
    return sorted(out, key=str)


@pytest.mark.parametrize("design", DESIGNS, ids=list(DESIGNS))
def test_pair_groups_are_exactly_the_pairs_the_report_tests(design):
    synthetic = synthetic_design(DESIGNS[design])
    strata = compare(synthetic).strata
    assert len(strata) == (2 if design == "matched-both-ways" else 1)
    for s in strata:
        groups = list(s.pair_groups())
        got = sorted(((what, a, b, len(ta), len(tb)) for what, a, b, ta, tb in groups), key=str)
        assert got == _tested(s) and got, (design, got, _tested(s))
        for what, a, b, ta, tb in groups:  # each side holds the trials of its own level only
            column = "layout" if what.startswith("layout") else (
                "variant" if what.startswith("mixer") else what.split(" at ")[0])
            assert set(ta[column]) == {a} and set(tb[column]) == {b}
            assert not set(ta["trial_id"]) & set(tb["trial_id"])


# == rounds planned from a real spec's plan, on synthetic records ==========================
SPEC = """\
name: {name}
question: Which mixer, each at its own lr?
dataset: {{name: synthetic, synthetic_size: 64}}
train: {{epochs: {epochs}, batch_size: 64, measure_throughput: false}}
model: {{depth: 1, width: 16, patch_size: 7}}
grid: {{mixer: {mixers}}}
nuisance: {{lr: [0.003, 0.3]}}
tuning: {{seeds: {tuning}}}
seeds: {seeds}
"""


def write_spec(folder: Path, name="r", mixers="[conv, identity, attention]", tuning=1,
               seeds="{min: 5, max: 7}", epochs=1) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, mixers=mixers, tuning=tuning, seeds=seeds, epochs=epochs))
    return path


def plan_of(spec):
    return expand(spec, (28, 1, 10))


def synthetic_records(trials, acc) -> pd.DataFrame:
    """The trial table a study of ``trials`` would hold: each trial's factors as its record
    carries them, ok, with ``acc(trial) -> (val_acc, test_acc)``."""
    rows = []
    for t in trials:
        cfg = t.config
        val, test = acc(t)
        rows.append({"trial_id": t.trial_id, "status": "ok", "variant": cfg.model.label,
                     **cfg.model.model_dump(), "dataset": cfg.data.name,
                     **cfg.train.model_dump(exclude=HOW_FIELDS),
                     "seed": cfg.seed, **t.extra, "val_acc": val, "test_acc": test})
    return pd.DataFrame(rows)


# Stage 1: conv's best val_acc is at lr 0.003, though lr 0.3 has by far the best test_acc
# (never read to choose); identity and attention choose lr 0.3.
TUNING = {("conv", 0.003): (80.0, 70.0), ("conv", 0.3): (60.0, 99.0),
          ("identity", 0.003): (50.0, 50.0), ("identity", 0.3): (55.0, 40.0),
          ("attention", 0.003): (40.0, 40.0), ("attention", 0.3): (45.0, 45.0)}
CHOSEN = {"conv": 0.003, "identity": 0.3, "attention": 0.3}


def tuning_acc(t):
    return TUNING[(t.config.model.mixer, t.config.train.lr)]


def measured(values: dict[str, list[float]]):
    """acc(trial) of stage 2: test accuracy by mixer and seed (1, 2, ...)."""
    def acc(t):
        v = values[t.config.model.mixer][t.config.seed - 1]
        return v, v
    return acc


# conv vs attention and identity vs attention: 30 points apart, decided; conv vs identity:
# a point apart with a few points of noise, undecided at 5 seeds.
UNDECIDED = {"conv": [90.0, 90.1, 89.9, 90.05, 89.95, 90.0, 90.0],
             "identity": [88.0, 91.0, 86.0, 92.0, 87.0, 89.0, 90.0],
             "attention": [60.0, 60.2, 59.8, 60.1, 59.9, 60.0, 60.0]}
DECIDED = {**UNDECIDED, "identity": [70.0, 70.1, 69.9, 70.05, 69.95, 70.0, 70.0]}


def stage_two(spec, plan):
    """Stage 1 finished (synthetic), stage 2 planned and joined to the plan."""
    table = synthetic_records(plan.trials, tuning_acc)
    trials, why = rounds.next_round(spec, plan, table)
    plan.add(trials)
    return table, trials, why


def test_stage_two_runs_each_arm_at_its_val_chosen_setting_on_the_seeds_after_tuning(tmp_path):
    spec = load_spec(write_spec(tmp_path, tuning=2))
    plan = plan_of(spec)
    assert len(plan.trials) == 3 * 2 * 2 and {t.extra["stage"] for t in plan.trials} == {"tune"}
    assert {t.config.seed for t in plan.trials} == {0, 1}
    table = synthetic_records(plan.trials, tuning_acc)
    # Not every tuning trial finished: nothing is planned yet.
    assert rounds.next_round(spec, plan, table.iloc[1:]) == ([], "")
    trials, why = rounds.next_round(spec, plan, table)
    assert why.startswith("stage 2: 3 arm(s)") and "2 tuning seed(s)" in why
    assert len(trials) == 3 * 5
    by_arm = {}
    for t in trials:
        by_arm.setdefault(t.config.model.mixer, set()).add(t.config.train.lr)
        assert t.extra["stage"] == "measure" and t.extra["round"] == 1
        assert t.config.train.epochs == 1
    assert {m: lrs for m, lrs in by_arm.items()} == {m: {lr} for m, lr in CHOSEN.items()}
    assert 0.3 not in by_arm["conv"]  # best test_acc in stage 1, not best val_acc: not chosen
    assert sorted({t.config.seed for t in trials}) == [2, 3, 4, 5, 6]  # after tuning seeds 0, 1
    ids = {t.trial_id for t in plan.trials}
    assert not ids & {t.trial_id for t in trials}  # no trial is in both stages


def test_an_adaptive_round_adds_the_next_seed_only_to_arms_of_undecided_comparisons(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    plan = plan_of(spec)
    tuning_table, first, _ = stage_two(spec, plan)
    assert len(first) == 3 * 5 and sorted({t.config.seed for t in first}) == [1, 2, 3, 4, 5]
    table = pd.concat([tuning_table, synthetic_records(first, measured(UNDECIDED))], ignore_index=True)
    decided = rounds.decision_table(spec, table).set_index(["a", "b"])
    assert decided.loc[("conv", "identity"), "reason"] == "still running"
    assert decided.loc[("attention", "conv"), "decision"] == "different"
    assert decided.loc[("attention", "identity"), "decision"] == "different"
    trials, why = rounds.next_round(spec, plan, table)
    assert why.startswith("2/3 comparisons decided (2 different)") and "2 arm(s)" in why
    assert sorted((t.config.model.mixer, t.config.seed) for t in trials) == [("conv", 6), ("identity", 6)]
    for t in trials:  # at the arm's chosen setting, in the next round
        assert t.config.train.lr == CHOSEN[t.config.model.mixer]
        assert t.extra == {"stage": "measure", "round": 2}
    plan.add(trials)
    # Once every comparison is decided, nothing more.
    done = pd.concat([tuning_table, synthetic_records(plan.trials[len(tuning_table):], measured(DECIDED))],
                     ignore_index=True)
    assert rounds.next_round(spec, plan, done)[0] == []
    # And at max seeds, an undecided comparison gets nothing more either.
    capped = load_spec(write_spec(tmp_path, name="capped", seeds="{min: 5, max: 5}"))
    cplan = plan_of(capped)
    ctable, cfirst, _ = stage_two(capped, cplan)
    ctable = pd.concat([ctable, synthetic_records(cfirst, measured(UNDECIDED))], ignore_index=True)
    reasons = rounds.decision_table(capped, ctable).set_index(["a", "b"])["reason"]
    assert reasons[("conv", "identity")] == "max reached"
    assert rounds.next_round(capped, cplan, ctable)[0] == []


def saved_stage_two(tmp_path):
    """A real spec's plan whose stage 2 (planned on synthetic tuning records) is saved in a
    study folder: (spec, plan, study, tuning records, stage-2 trials)."""
    spec = load_spec(write_spec(tmp_path))
    plan = plan_of(spec)
    study = Study(tmp_path / "study")
    study.path.mkdir()
    tuning_table, first, why = stage_two(spec, plan)
    rounds.save(study, plan, first, why)
    return spec, plan, study, tuning_table, first


def test_saved_rounds_are_restored_as_the_same_trials(tmp_path):
    spec, plan, study, tuning_table, first = saved_stage_two(tmp_path)
    table = pd.concat([tuning_table, synthetic_records(first, measured(UNDECIDED))], ignore_index=True)
    second, why = rounds.next_round(spec, plan, table)
    rounds.save(study, plan, second, why)
    plan.add(second)
    saved = json.loads((study.path / rounds.ROUNDS).read_text())
    assert [r["round"] for r in saved] == [1, 2]
    assert [t["trial_id"] for r in saved for t in r["trials"]] == [t.trial_id for t in first + second]

    fresh = plan_of(load_spec(write_spec(tmp_path)))
    assert rounds.restore(fresh, study) == 2
    assert [t.trial_id for t in fresh.trials] == [t.trial_id for t in plan.trials]
    assert [t.extra for t in fresh.trials] == [t.extra for t in plan.trials]
    assert [t.config for t in fresh.trials] == [t.config for t in plan.trials]
    assert fresh.origin == plan.origin
    # Restored twice (a second resume in one process): nothing is added twice.
    rounds.restore(fresh, study)
    assert len(fresh.trials) == len(plan.trials)


def test_rounds_of_another_spec_are_refused(tmp_path):
    spec, plan, study, _, _ = saved_stage_two(tmp_path)
    other = load_spec(write_spec(tmp_path, name="r2", epochs=2))  # same shape, other trials
    with pytest.raises(ConfigError, match="the spec changed. Use --new-study"):
        rounds.restore(plan_of(other), study)
    (study.path / rounds.ROUNDS).write_text("[{")
    with pytest.raises(ConfigError, match="rounds.json: unreadable"):
        rounds.restore(plan_of(spec), study)


# == the spec: seeds and fingerprints ======================================================
def committed_studies() -> list[tuple[Path, Study]]:
    """(spec, its study under results/) of every committed spec that has one."""
    import yaml

    out = subprocess.run(["git", "ls-files", "ablations"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    pairs = []
    for p in out:
        if p.endswith(".yaml"):
            study = Study(ROOT / "results" / str(yaml.safe_load((ROOT / p).read_text())["name"]))
            if study.marker is not None:
                pairs.append((ROOT / p, study))
    return pairs


def test_committed_studies_keep_their_fingerprint(tmp_path):
    """The new fields (seeds forms, tuning) change no existing study's fingerprint: each
    committed spec with a study under results/ still matches the fingerprint its marker holds
    (read only), in the current form or the older full-dump form a study made then carries."""
    studies = committed_studies()
    assert len(studies) >= 5, f"only {len(studies)} committed studies found under results/ ({MARKER})"
    for path, study in studies:
        spec = load_committed(path, tmp_path)  # a spec over a folder the clone lacks, too
        assert study.marker["fingerprint"] in spec.fingerprints(), (path.name, study.marker)
        if spec.tuning or spec.adaptive:
            continue  # a study made with the new fields (baselines_adaptive): its own form
        d = spec.model_dump(mode="json", exclude_defaults=True)
        assert "tuning" not in d and isinstance(d["seeds"], list)


def test_the_older_full_dump_fingerprint_leaves_the_new_fields_out(tmp_path):
    from mixerlab.spec import _SCHEDULING

    path = tmp_path / "old.yaml"
    path.write_text("name: old\nquestion: q?\ndataset: {name: synthetic}\n"
                    "grid: {mixer: [conv, identity]}\nseeds: 2\n")
    spec = load_spec(path)
    # As studies recorded it: claims, a field added since, was not in that form.
    full = spec.model_dump(mode="json", exclude=_SCHEDULING | {"tuning", "claims"})
    legacy = hashlib.sha1(json.dumps(full, sort_keys=True).encode()).hexdigest()[:12]
    assert spec.fingerprints() == {spec.fingerprint(), legacy}


@pytest.mark.parametrize("seeds,tuning,nuisance,tuned,first,every", [
    ("3", None, None, [], [0, 1, 2], [0, 1, 2]),
    ("[5, 9]", None, None, [], [5, 9], [5, 9]),
    ("3", 2, "{lr: [0.01, 0.1]}", [0, 1], [2, 3, 4], [2, 3, 4]),
    ("[4, 7]", 2, "{lr: [0.01, 0.1]}", [0, 1], [4, 7], [4, 7]),
    ("{min: 3, max: 5}", None, None, [], [0, 1, 2], [0, 1, 2, 3, 4]),
    ("{min: 3, max: 5}", 2, "{lr: [0.01, 0.1]}", [0, 1], [2, 3, 4], [2, 3, 4, 5, 6]),
    ("{min: 4, max: 4}", 1, "{lr: [0.01, 0.1]}", [0], [1, 2, 3, 4], [1, 2, 3, 4]),
])
def test_seed_numbering(seeds, tuning, nuisance, tuned, first, every, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nquestion: q?\ndataset: {name: synthetic}\ngrid: {mixer: [conv]}\n"
                    f"seeds: {seeds}\n" + (f"nuisance: {nuisance}\n" if nuisance else "")
                    + (f"tuning: {{seeds: {tuning}}}\n" if tuning else ""))
    spec = load_spec(path)
    assert spec.tuning_seed_list == tuned
    assert spec.seed_list == first and spec.max_seed_list == every
    assert bool(spec.adaptive) == seeds.startswith("{")
    plan = plan_of(spec)  # stage 1's trials: tuning seeds, else the first seeds
    assert sorted({t.config.seed for t in plan.trials}) == (tuned or first)


def test_adaptive_and_tuning_change_the_fingerprint(tmp_path):
    base = "name: f\nquestion: q?\ndataset: {name: synthetic}\ngrid: {mixer: [conv, identity]}\n"
    prints = set()
    for extra in ("seeds: 3\n", "seeds: {min: 3, max: 3}\n", "seeds: {min: 3, max: 4}\n",
                  "seeds: 3\nnuisance: {lr: [0.01, 0.1]}\n",
                  "seeds: 3\nnuisance: {lr: [0.01, 0.1]}\ntuning: {seeds: 1}\n"):
        path = tmp_path / "f.yaml"
        path.write_text(base + extra)
        prints.add(load_spec(path).fingerprint())
    assert len(prints) == 5


# == one real two-stage adaptive study, end to end =========================================
E2E = """\
name: e2e
question: Does the mixer matter, each at its own lr?
dataset: {name: fashion-mnist, train_subset: 256, val_fraction: 0.02}
train: {epochs: 1, batch_size: 64, measure_throughput: false}
model: {depth: 1, width: 16}
grid: {mixer: [conv, identity], patch_size: [7]}
nuisance: {lr: [0.003, 0.3]}
tuning: {seeds: 1}
seeds: {min: 3, max: 4}
resources: {cpu: 1}
execution: {precision: fp32, memory_format: channels_last, attention_kernel: fused}
"""


def mixerlab(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "mixerlab", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ})


def markdown_rows(text: str, heading: str) -> list[dict]:
    """The first markdown table under ``heading`` as dicts."""
    lines = text.split(heading, 1)[1].splitlines()
    table = [ln for ln in itertools.dropwhile(lambda ln: not ln.startswith("|"), lines)]
    table = list(itertools.takewhile(lambda ln: ln.startswith("|"), table))
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


@needs_fashion
@pytest.mark.slow
def test_two_stage_adaptive_study_end_to_end(tmp_path):
    spec = tmp_path / "e2e.yaml"
    spec.write_text(E2E)
    dry = mixerlab("sweep", spec, "--dry-run", "--results", tmp_path / "results")
    assert dry.returncode == 0, dry.stderr
    assert "stage 1 (tuning): 2 configuration(s)" in dry.stdout and "stage 2 (measured)" in dry.stdout
    assert re.search(r"estimated cost: [\d.,]+ trial-minutes at least .*, [\d.,]+ at most", dry.stdout), dry.stdout
    assert not (tmp_path / "results").exists()

    run = mixerlab("sweep", spec, "--results", tmp_path / "results")
    assert run.returncode == 0, run.stderr
    study = tmp_path / "results" / "e2e"
    trials = pd.read_parquet(study / "trials.parquet")
    assert trials["trial_id"].is_unique
    tune = trials[trials["stage"] == "tune"]
    assert len(tune) == 2 * 2 * 1 and set(tune["seed"]) == {0}
    assert sorted(map(tuple, tune[["mixer", "lr"]].values.tolist())) == [
        ("conv", 0.003), ("conv", 0.3), ("identity", 0.003), ("identity", 0.3)]
    stage2 = trials[trials["stage"] == "measure"]
    assert len(tune) + len(stage2) == len(trials)
    assert (stage2.groupby("mixer")["lr"].nunique() == 1).all() and set(stage2["mixer"]) == {"conv", "identity"}
    assert stage2["seed"].min() == 1 and stage2["seed"].max() <= 4
    for mixer, g in stage2.groupby("mixer"):  # seeds 1.. without gaps, each once
        assert sorted(g["seed"]) == list(range(1, len(g) + 1)), (mixer, sorted(g["seed"]))
    # the setting stage 2 ran is the one stage 1's validation accuracy chose
    ok = tune[tune["status"] == "ok"]
    best = ok.loc[ok.groupby("mixer")["val_acc"].idxmax()].set_index("mixer")["lr"]
    assert stage2.groupby("mixer")["lr"].first().to_dict() == best.to_dict()

    saved = json.loads((study / "rounds.json").read_text())
    listed = [t["trial_id"] for r in saved for t in r["trials"]]
    assert len(listed) == len(set(listed)) and set(listed) == set(stage2["trial_id"])
    assert saved[0]["round"] == 1 and saved[0]["why"].startswith("stage 2")
    assert set(stage2["round"]) == {r["round"] for r in saved}
    assert re.search(r"trials \d+/\d+ done.*\| \d+/\d+ comparisons decided", run.stderr), run.stderr[-3000:]

    report = mixerlab("analyze", study)
    assert report.returncode == 0, report.stderr
    text = (study / "report" / "report.md").read_text()
    assert "## Adaptive seeds" in text and "Adaptive seeds: " in report.stdout
    rows = markdown_rows(text, "## Adaptive seeds")
    assert len(rows) == 1, rows  # conv vs identity, the one comparison
    (row,) = rows
    assert row["reason"] in {"different", "equivalent", "max reached"}, row
    assert int(row["n_seeds"]) == stage2.groupby("mixer").size().min()
    assert (row["reason"] == "max reached") == (int(row["n_seeds"]) == 4 and row["decision"] == "undecided")
    assert "Two-stage tuning: stage 1 ran every arm at every setting on 1 tuning seed(s)" in text


def test_extend_refuses_a_study_with_later_rounds(tmp_path):
    """--extend would renumber the arms a rounds.json names: one clear error instead."""
    from mixerlab.errors import ConfigError
    from mixerlab.sweep.resume import _check_extension
    from mixerlab.sweep.study import Study

    study = Study(tmp_path / "s")
    study.records_dir.mkdir(parents=True)
    (study.path / "rounds.json").write_text("[]")
    with pytest.raises(ConfigError, match="later rounds"):
        _check_extension(study, None)
    (study.path / "rounds.json").unlink()
    from mixerlab.sweep.trials import Plan

    _check_extension(study, Plan([], [], 0))  # no rounds, no records: an extension is fine


def test_layout_comparisons_do_not_pool_the_pyramids_down_sampling():
    """Synthetic trial table: isotropic against each pyramid down-sampling separately (a
    factor only the pyramid has), and the two down-samplings against each other once."""
    import numpy as np

    from mixerlab.analysis.comparison import compare

    rng = np.random.default_rng(0)
    arms = [("isotropic", None, 4, 92), ("pyramid", "conv3", 2, 28), ("pyramid", "merge2", 2, 32)]
    rows = [dict(trial_id=f"{v}-{layout}-{ds}-{seed}", study="synthetic", status="ok", variant=v,
                 layout=layout, downsample=ds, patch_size=p, width=w, seed=seed, lr=0.01,
                 test_acc=80 + rng.normal(), val_acc=80.0, epochs=10, match_by="params")
            for v in ("attention", "identity") for layout, ds, p, w in arms for seed in range(5)]
    s = compare(pd.DataFrame(rows)).strata[0]
    assert s.design == ["variant", "layout", "downsample"]  # width (solved) is not a factor
    pairs = [(what, a, b, len(ta), len(tb)) for what, a, b, ta, tb in s.pair_groups()]
    layout = [p for p in pairs if p[0].startswith("layout")]
    assert {(p[1], p[2]) for p in layout} == {("isotropic", "pyramid (downsample conv3)"),
                                             ("isotropic", "pyramid (downsample merge2)")}
    assert all(p[3] == p[4] == 5 for p in pairs)  # no arm pools two down-samplings
    assert sum(p[0].startswith("downsample") for p in pairs) == 2
    assert len(s.layouts) == 4 and set(s.layouts["n_b"]) == {5}
