"""Budget ladders (``train.budgets`` with ``schedule: wsd``): one run per arm and seed, a row per
budget. The schedule, the rungs against runs of each budget alone, resume from every
checkpoint, the rows in the tables, the spec's checks, the dry run's cost, a claim and the
compute figure. Everything here trains on synthetic data (never a real result)."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mixerlab import record
from mixerlab.checkpoint import config_hash
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig, cooldown_epochs
from mixerlab.data import load_dataset
from mixerlab.schedule import lr_factor
from mixerlab.train import train

SYNTH = DataConfig(name="synthetic", synthetic_size=384)
COMPARED = ("val_acc", "val_loss", "test_acc", "test_loss", "train_loss", "best_val_acc", "epochs_run")


def small(seed: int = 3, **train_kw) -> TrialConfig:
    t = dict(batch_size=32, threads=1, measure_throughput=False, schedule="wsd")
    t.update(train_kw)
    return TrialConfig(model=ModelConfig(mixer="conv", patch_size=4, depth=1, width=16),
                       data=SYNTH, train=TrainConfig(**t), seed=seed)


@pytest.fixture(scope="module")
def synth():
    return load_dataset(SYNTH)


def same(a: dict, b: dict) -> bool:
    return [a[k] for k in COMPARED] == [b[k] for k in COMPARED] and \
        [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


# ---- the schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["1-sqrt", "linear"])
def test_wsd_warms_up_holds_then_cools_down_to_about_zero(shape):
    total, warmup, cool = 100, 10, 20
    f = [lr_factor("wsd", s, total, warmup, cool, shape) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0  # linear warm-up
    assert set(f[10:80]) == {1.0}  # stable
    assert f[80] == 1.0 and all(a > b for a, b in zip(f[80:], f[81:]))  # cool-down
    assert f[-1] < (0.23 if shape == "1-sqrt" else 0.06)  # 1 - sqrt(19/20), 1 - 19/20
    half = lr_factor("wsd", 90, total, warmup, cool, shape)  # halfway through the cool-down
    assert half == pytest.approx(1 - math.sqrt(0.5) if shape == "1-sqrt" else 0.5)


def test_cooldown_is_a_fifth_of_the_budget_in_whole_epochs():
    assert TrainConfig().cooldown_fraction == 0.2 and TrainConfig().cooldown_shape == "1-sqrt"
    assert [cooldown_epochs(b, 0.2) for b in (2, 3, 10, 30)] == [1, 1, 2, 6]
    t = TrainConfig(schedule="wsd", budgets=[3, 10, 30])
    assert t.epochs == 30 and t.ladder == [3, 10, 30]
    assert [t.cooldown_start(b) for b in t.ladder] == [2, 8, 24]
    assert t.epochs_trained == 30 + 2 + 1


def test_new_fields_at_their_defaults_leave_every_trial_id_as_it_was():
    """Committed trial ids hash the config with later fields at their defaults left out: the
    default trial's id is the one it had before WSD and ladders existed."""
    assert config_hash(TrialConfig()) == "79956e6d334f"  # as computed by the code before WSD
    wsd = TrialConfig(train=TrainConfig(schedule="wsd"))
    assert config_hash(wsd) == config_hash(TrialConfig(train=TrainConfig(schedule="wsd", cooldown_fraction=0.2)))
    assert config_hash(wsd) != config_hash(TrialConfig(train=TrainConfig(schedule="wsd", budgets=[5, 10])))


# ---- the rungs are the runs of each budget alone -----------------------------------------------


def test_each_rung_is_bit_identical_to_a_wsd_run_of_that_budget(synth):
    """Budgets 2 and 3 both branch at epoch 1 (cool-down of half the budget), 4 is the main."""
    lad = train(small(budgets=[2, 3, 4], cooldown_fraction=0.5), data=synth)
    assert [r["epochs"] for r in lad["rungs"]] == [2, 3] and lad["epochs"] == 4
    for rung in lad["rungs"]:
        alone = train(small(epochs=rung["epochs"], cooldown_fraction=0.5), data=synth)
        assert same(rung, alone), rung["epochs"]
    assert same(lad, train(small(epochs=4, cooldown_fraction=0.5), data=synth))
    assert lad["history"][-1]["lr"] == 0.0 and lad["rungs"][0]["history"][-1]["lr"] == 0.0
    assert "budgets" not in lad and lad["cooldown_shape"] == "1-sqrt"
    assert "cooldown_shape" not in train(small(epochs=1, schedule="onecycle"), data=synth)
    json.dumps(lad)  # serialisable as is


class Saved:
    """A checkpoint holding one state, as the trainable's files hold it (saved, then loaded)."""

    def __init__(self, state: bytes | None):
        self.state = state

    def load(self):
        return None if self.state is None else torch.load(io.BytesIO(self.state), weights_only=True)


def test_resume_from_every_checkpoint_loses_and_repeats_nothing(synth):
    """Budgets 4 and 6 at a cool-down of half: the branch to 4 runs epochs 3-4 from the stable
    state of epoch 2, so checkpoints are taken on the main branch, inside the branch, and at
    the stable state again once its rung is recorded. Resumed from each, the record is the
    uninterrupted one: every budget once, the same metrics."""
    cfg = small(budgets=[4, 6], cooldown_fraction=0.5)
    states: list[bytes] = []

    def keep(row, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        states.append(buf.getvalue())

    whole = train(cfg, data=synth, on_epoch=keep)
    inside = [s for s in states if "branch" in torch.load(io.BytesIO(s), weights_only=True)]
    assert len(states) == 6 + 2 + 1 and len(inside) == 2  # main epochs, branch epochs, after the rung
    for i, state in enumerate(states):
        got = train(cfg, data=synth, checkpoint=Saved(state))
        assert [r["epochs"] for r in got["rungs"]] == [4], i
        assert same(got["rungs"][0], whole["rungs"][0]) and same(got, whole), i
        assert got["resumed_from_epoch"] > 0
    resumed = train(cfg, data=synth, checkpoint=Saved(inside[0]))
    assert resumed["rungs"][0]["resumed_from_epoch"] == 3 and resumed["resumed_from_epoch"] == 2


def test_a_main_branch_that_diverges_ends_the_budgets_it_did_not_reach(synth):
    rec = train(small(budgets=[3, 4], lr=1e9, grad_clip=None), data=synth)
    assert rec["status"] == "diverged" and [r["status"] for r in rec["rungs"]] == ["diverged"]
    assert math.isnan(rec["rungs"][0]["test_acc"])


# ---- the tables: one row per budget ------------------------------------------------------------


def test_write_tables_gives_one_row_per_budget_with_its_own_id(tmp_path, synth):
    from mixerlab.sweep.study import Study

    rec = train(small(budgets=[2, 4]), data=synth)
    rec.update(trial_id="abc123def456", study="lad", match_by="params")
    study = Study(tmp_path / "lad")
    study.write_record(rec)
    trials = study.write_tables()
    assert trials["trial_id"].tolist() == ["abc123def456/e2", "abc123def456"]
    assert trials["ladder"].tolist() == ["abc123def456"] * 2 and trials["epochs"].tolist() == [2, 4]
    assert set(trials["study"]) == {"lad"} and set(trials["match_by"]) == {"params"}
    assert "rungs" not in trials.columns and "budgets" not in trials.columns
    history = pd.read_parquet(tmp_path / "lad" / "history.parquet")
    assert history.groupby("trial_id").size().to_dict() == {"abc123def456": 4, "abc123def456/e2": 2}
    from mixerlab.analysis.load import run_ids

    assert run_ids(trials).nunique() == 1  # one trial of the plan, two rows


def test_trackers_log_a_ladder_as_one_run_per_budget(tmp_path, synth):
    from types import SimpleNamespace

    from mixerlab.trackers.hub import Trackers

    logged = []
    fake = SimpleNamespace(destination="memory", log=logged.append)
    rec = train(small(budgets=[2, 4]), data=synth)
    rec.update(trial_id="abc123def456", study="lad")
    hub = Trackers({"fake": fake}, tmp_path / "ledger.jsonl", {"abc123def456": "g1"})
    assert hub.log(rec) == 1 and hub.log(rec) == 0  # once, then already logged
    assert [(r.trial_id, r.group) for r in logged] == [("abc123def456/e2", "g1/e2"), ("abc123def456", "g1")]
    assert [r.config["epochs"] for r in logged] == [2, 4] and "rungs" not in logged[1].labels


# ---- a claim decided on ladder rows -------------------------------------------------------------


def test_a_claim_is_decided_on_ladder_rows_like_separate_runs(synth):
    """Two arms x three seeds of ladders [2, 4] (real training, synthetic data): the claim reads
    each budget's rows and the change between budgets, seed-paired, as for separate runs."""
    from mixerlab.analysis.claims import decide_claim
    from mixerlab.claims import ClaimSpec

    rows = []
    for mixer in ("conv", "identity"):
        for seed in (0, 1, 2):
            cfg = small(seed=seed, budgets=[2, 4])
            cfg.model = cfg.model.model_copy(update={"mixer": mixer})
            rec = train(cfg, data=synth)
            rec.update(trial_id=f"{mixer}{seed}", study="lad")
            rows += record.rows(rec)
    df = pd.DataFrame(rows).drop(columns=["history"])
    claim = ClaimSpec(name="L", text="the mixer is within 100 points of none", source="synthetic test",
                      kind="within", rope=100.0, alpha=0.05, band=100.0, budgets=[2, 4],
                      gaps=[{"a": {"mixer": "conv"}, "b": {"mixer": "identity"}}])
    row, gaps, points = decide_claim(df, claim, [2, 4], {"registered": True, "note": "registered"})
    assert row["verdict"] == "agrees" and row["stability"] == "stable" and row["n_seeds"] == 3
    assert list(gaps["budget"]) == ["2 epochs", "4 epochs", "change 2 -> 4"]
    expected = (df[(df.variant == "conv") & (df.epochs == 2)].set_index("seed")["test_acc"]
                - df[(df.variant == "identity") & (df.epochs == 2)].set_index("seed")["test_acc"])
    assert points[points.epochs == 2].set_index("seed")["diff"].tolist() == expected.sort_index().tolist()


# ---- the picture: accuracy against training compute ---------------------------------------------


def _synthetic_ladder_rows(ladder: bool = True) -> pd.DataFrame:
    """Synthetic ladder rows (no training): conv and attention, budgets 10 and 30, three seeds."""
    rng = np.random.default_rng(0)
    rows = []
    for variant, base in (("conv", 90.0), ("attention", 87.0)):
        for seed in range(3):
            for epochs in (10, 30):
                tid = f"{variant}{seed}"
                rows.append({"trial_id": tid if epochs == 30 else f"{tid}/e{epochs}", "status": "ok",
                             "error": "", "variant": variant, "patch_size": 4, "seed": seed,
                             "epochs": epochs, "epochs_run": epochs, "macs": 5e6 if variant == "conv" else 6e6,
                             "params": 76000, "train_images_per_s": 1000.0, "train_time_s": 54.0 * epochs,
                             "test_acc": base + epochs / 30 + rng.normal(0, 0.2),
                             **({"ladder": tid} if ladder else {})})
    return pd.DataFrame(rows)


def test_training_compute_is_macs_times_epochs_times_training_images():
    from mixerlab.analysis.aggregate import training_compute

    df = _synthetic_ladder_rows()
    assert training_compute(df).tolist() == (df["macs"] * df["epochs"] * 54_000).tolist()


def test_a_ladder_studys_report_draws_accuracy_against_compute(tmp_path):
    from mixerlab.analysis import write_report

    for ladder in (True, False):
        folder = tmp_path / f"ladder_{ladder}"
        folder.mkdir()
        _synthetic_ladder_rows(ladder).to_parquet(folder / "trials.parquet")
        (folder / "spec.yaml").write_text("name: synth\nquestion: Which mixer, per unit of compute?\n")
        path, _ = write_report([folder])
        drawn = (path.parent / "tradeoff_compute.png").exists()
        assert drawn == ladder
    assert (tmp_path / "ladder_True" / "report" / "tradeoff_compute.png").stat().st_size > 10_000
    text = (tmp_path / "ladder_True" / "report" / "report.md").read_text()
    assert "Accuracy vs training compute" in text and "Budget ladders: 6 WSD run(s)" in text
    assert "(10, 30 epochs)" in text


# ---- the spec: bad ladders, the dry run's cost ---------------------------------------------------

GOOD = """\
name: lad
question: q?
dataset: {name: synthetic, synthetic_size: 64}
train: {schedule: wsd, budgets: [3, 10, 30]}
model: {depth: 1, width: 8}
grid: {mixer: [conv, attention]}
seeds: 1
"""

BAD = [
    ("not-increasing", GOOD.replace("[3, 10, 30]", "[10, 3, 30]"),
     "train.budgets: [10, 3, 30] is not strictly increasing; list each budget once, smallest first"),
    ("repeated", GOOD.replace("[3, 10, 30]", "[10, 10, 30]"), "is not strictly increasing"),
    ("shorter-than-warmup-and-cooldown", GOOD.replace("[3, 10, 30]", "[1, 10, 30]"),
     "train.budgets: budget 1 is shorter than its warm-up (1 epoch(s)) plus cool-down (1 epoch(s)); "
     "give budgets of at least 2 epochs, or shorten train.warmup_epochs"),
    ("onecycle", GOOD.replace("schedule: wsd", "schedule: onecycle"),
     "train.budgets: a budget ladder needs schedule: wsd (got onecycle)"),
    ("default-schedule", GOOD.replace("schedule: wsd, ", ""), "a budget ladder needs schedule: wsd"),
    ("grid-over-epochs", GOOD.replace("[conv, attention]}", "[conv, attention], epochs: [3, 30]}"),
     "grid.epochs: the ladder's budgets (train.budgets) are its epochs; remove grid.epochs"),
    ("grid-over-schedule", GOOD.replace("[conv, attention]}", "[conv, attention], schedule: [wsd, cosine]}"),
     "or remove train.budgets (at schedule=cosine)"),
    ("epochs-not-the-largest", GOOD.replace("schedule: wsd,", "schedule: wsd, epochs: 20,"),
     "train.epochs (20) is not the ladder's largest budget (30)"),
    ("not-a-list", GOOD.replace("[3, 10, 30]", "30"), "train.budgets: give a list of epochs"),
    ("with-asha", GOOD + "scheduler: {type: asha}\n", "scheduler: the 'asha' scheduler stops trials by epoch"),
    ("tuning-epochs", GOOD + "nuisance: {lr: [0.003, 0.01]}\ntuning: {seeds: 1, epochs: 3}\n",
     "tuning.epochs: a ladder's tuning trials run its budgets too"),
]


@pytest.mark.parametrize("case,text,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_ladder_exits_2_with_one_line_naming_the_fix(case, text, message, tmp_path, run_cli):
    spec = tmp_path / "lad.yaml"
    spec.write_text(text)
    code, out, err = run_cli("sweep", spec, "--dry-run", "--results", tmp_path / "results")
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "results").exists()


def test_the_dry_run_lists_the_budgets_and_costs_the_branches(tmp_path, run_cli, monkeypatch):
    from mixerlab.spec import load_spec
    from mixerlab.sweep import estimate
    from mixerlab.sweep.trials import expand

    monkeypatch.setattr(estimate, "_rates", lambda *a, **k: (1000.0, 2000.0))  # images/s, fixed
    monkeypatch.setattr(estimate, "CONTENTION", 1.0)
    data = load_dataset(DataConfig(name="synthetic", synthetic_size=64))
    n_train, n_val, n_test = len(data.train_y), len(data.val_y), len(data.test_y)
    costs = {}
    for name, train_line in (("ladder", "{schedule: wsd, budgets: [3, 10, 30]}"), ("plain", "{epochs: 30}")):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(GOOD.replace("{schedule: wsd, budgets: [3, 10, 30]}", train_line))
        plan = expand(load_spec(spec), (28, 1, 10))
        costs[name] = estimate.estimate_per_trial(plan, data, 1.0)[plan.trials[0].trial_id]
    timed = estimate.THROUGHPUT_IMAGES
    assert costs["plain"] == pytest.approx(n_train * 30 / 1000 + (n_val * 30 + n_test + timed) / 2000
                                           + estimate.START_S)
    # 30 epochs, plus the cool-downs of 10 (2 epochs) and 3 (1 epoch); tested at each budget.
    assert costs["ladder"] == pytest.approx(n_train * 33 / 1000 + (n_val * 33 + 3 * (n_test + timed)) / 2000
                                            + estimate.START_S)
    spec = tmp_path / "lad.yaml"
    spec.write_text(GOOD + "execution: {precision: fp32, memory_format: channels_last, attention_kernel: fused}\n")
    code, out, err = run_cli("sweep", spec, "--dry-run", "--results", tmp_path / "results")
    assert code == 0, err
    assert "3, 10, 30 epochs" in out and "budget ladder: budgets 3, 10, 30 epochs" in out
    assert "33 epochs trained, 3 row(s) per trial" in out and "a cool-down to 3 (from epoch 2), 10 (from epoch 8)" in out


# ---- end to end on the embedded local Ray: a driver killed inside a branch -----------------------


@pytest.mark.slow
def test_a_ladder_sweep_killed_inside_a_branch_resumes_with_every_budget_once(tmp_path):
    """A tiny ladder (budgets 4 and 6, the branch to 4 from epoch 2) runs uninterrupted; then
    the same trial in another study, its driver and every Ray process SIGKILLed (a power cut)
    while the branch to 4 is under way, and the same command again (the fault scenario of
    benchmarks/fault_scenarios.py). The study holds each budget's row exactly once, with the
    uninterrupted run's metrics."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import fault_scenarios as fs
    from fault_tools import end_sessions

    try:
        o = fs.ladder_killed_in_branch(tmp_path)
    finally:
        end_sessions()
    assert o.again.returncode == 0, o.again.stderr
    whole, cut = o.whole, o.cut
    assert o.figures.held and o.figures.planned == 2, o.figures
    assert sorted(cut.index) == [4, 6] and cut["trial_id"].is_unique and set(cut["status"]) == {"ok"}
    assert set(cut["trial_id"]) == set(o.planned) and cut["trial_id"].tolist() == whole["trial_id"].tolist()
    assert cut["ladder"].nunique() == 1 and cut.loc[6, "trial_id"] == cut.loc[4, "ladder"]
    for col in fs.LADDER_COMPARED:
        assert cut[col].tolist() == whole[col].tolist(), col
    # It went on from inside the branch: the rung from its checkpoint, the main branch from
    # the stable state saved with it.
    assert cut.loc[4, "resumed_from_epoch"] in (3, 4) and cut.loc[6, "resumed_from_epoch"] == 2
    assert (whole["resumed_from_epoch"] == 0).all()


def test_provenance_counts_a_ladder_trial_once():
    """sum_trial_time_s: a ladder's smaller-budget rows are the same trial, not more of them."""
    from mixerlab.sweep.study_provenance import trial_seconds

    rows = pd.DataFrame({"trial_id": ["a/e10", "a", "b"], "ladder": ["a", "a", None],
                         "trial_time_s": [100.0, 300.0, 50.0]})
    assert trial_seconds(rows) == 350.0
    assert trial_seconds(rows.drop(columns=["ladder"]).iloc[1:]) == 350.0
    assert trial_seconds(rows.iloc[:0]) == 0.0

