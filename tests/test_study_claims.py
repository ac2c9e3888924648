"""Claims declared in a spec: checked at --dry-run, registered when the sweep starts, decided
by one rule, shown as changed (and undecided) when edited after trials finished."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixerlab.analysis.claims import decide_claim
from mixerlab.analysis.verdict import combine, verdict
from mixerlab.claims import ClaimSpec
from mixerlab.claims.registration import register, status

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

SPEC = """\
name: claimed
question: Does a conv mixer beat the identity control on a tiny subset, at 1 and 3 epochs?
dataset: {name: fashion-mnist, train_subset: 512, val_fraction: 0.05}
train: {batch_size: 64, measure_throughput: false, lr: 0.01}
model: {depth: 1, width: 16, patch_size: 7}
grid: {mixer: [conv, identity], epochs: [1, 3]}
seeds: [0, 1, 2]
resources: {cpu: 1}
execution: {precision: fp32, memory_format: channels_last, attention_kernel: fused}
claims:
  - name: C1
    text: Any token mixing beats none
    source: MetaFormer (Yu et al., arXiv:2210.13452)
    kind: beats
    gaps: [{a: {mixer: conv}, b: {mixer: identity}}]
    rope: ROPE
    alpha: 0.05
    budgets: [1, 3]
    band: 50
"""


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "mixerlab", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


# ---- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize("lo,hi,kind,said", [
    (0.2, 2.0, "beats", "agrees"), (-2.0, -0.2, "beats", "disagrees"), (-0.5, 0.5, "beats", "equivalent"),
    (0.1, 0.9, "beats", "equivalent"), (-0.5, 2.0, "beats", "undecided"),
    (-0.5, 0.5, "within", "agrees"), (1.2, 3.0, "within", "disagrees"), (0.5, 1.5, "within", "undecided"),
    (0.1, 0.9, "differs", "equivalent"), (0.2, 2.0, "differs", "different"), (-1, 2, "differs", "undecided"),
    (np.nan, 1.0, "beats", "undecided"),
])
def test_one_rule_gives_each_verdict(lo, hi, kind, said):
    assert verdict(lo, hi, kind, 1.0) == said


def test_combine_within_needs_every_gap_and_beats_needs_one_verdict():
    assert combine(["agrees", "agrees"], "within") == "agrees"
    assert combine(["agrees", "undecided"], "within") == "undecided"
    assert combine(["agrees", "disagrees"], "within") == "disagrees"
    assert combine(["agrees", "equivalent"], "beats") == "undecided"


# ---- the decision on synthetic trials ---------------------------------------------------------


def _synthetic(gap_early: float, gap_late: float, seeds=range(6), sd=0.2, rng=0) -> pd.DataFrame:
    """Synthetic trials (no training): conv and identity at 10 and 30 epochs, paired by seed."""
    r = np.random.default_rng(rng)
    rows = []
    for s in seeds:
        base = 80 + r.normal(0, 1)
        for e, g in ((10, gap_early), (30, gap_late)):
            rows += [{"variant": "identity", "epochs": e, "seed": s, "status": "ok", "test_acc": base + e / 10},
                     {"variant": "conv", "epochs": e, "seed": s, "status": "ok",
                      "test_acc": base + e / 10 + g + r.normal(0, sd)}]
    return pd.DataFrame(rows)


def _claim(**kw) -> ClaimSpec:
    return ClaimSpec(**{"name": "C", "text": "t", "source": "s", "kind": "beats", "alpha": 0.05,
                        "gaps": [{"a": {"mixer": "conv"}, "b": {"mixer": "identity"}}], **kw})


REGISTERED = {"registered": True, "note": "registered"}


def test_a_stable_gap_is_decided_at_the_largest_budget():
    row, gaps, points = decide_claim(_synthetic(5.0, 5.0), _claim(budgets=[10, 30]), [10, 30], REGISTERED)
    assert row["verdict"] == "agrees" and row["stability"] == "stable"
    assert len(points) == 12 and set(gaps["budget"]) == {"10 epochs", "30 epochs", "change 10 -> 30"}


def test_a_gap_still_moving_between_budgets_is_undecided():
    row, _, _ = decide_claim(_synthetic(8.0, 5.0), _claim(budgets=[10, 30]), [10, 30], REGISTERED)
    assert row["verdict_at_largest"] == "agrees"
    assert row["verdict"] == "undecided (still moving)" and row["stability"] == "still moving"


def test_an_unregistered_claim_is_not_decided():
    row, _, _ = decide_claim(_synthetic(5.0, 5.0), _claim(budgets=[10, 30]), [10, 30],
                             {"registered": False, "note": "changed"})
    assert row["verdict_at_largest"] == "agrees"
    assert row["verdict"] == "undecided (not registered before the data)"


def test_registration_keeps_every_version(tmp_path):
    (tmp_path / "records").mkdir()
    c = _claim(budgets=[10, 30])
    register(tmp_path, [c])
    assert status(tmp_path, c)["registered"]
    (tmp_path / "records" / "t1.json").write_text("{}")  # a trial finished
    register(tmp_path, [c])  # unchanged: nothing new
    edited = _claim(budgets=[10, 30], rope=0.5)
    register(tmp_path, [edited])
    doc = json.loads((tmp_path / "claims.json").read_text())
    assert [v["trials_finished_before"] for v in doc["claims"]["C"]] == [0, 1]
    assert status(tmp_path, c)["registered"]  # the registered version still decides
    said = status(tmp_path, edited)
    assert not said["registered"] and "changed" in said["note"] and "after 1 trial" in said["note"]


# ---- bad claims at --dry-run -------------------------------------------------------------------


@pytest.mark.parametrize("edit,says", [
    (("mixer: conv}, b", "mixer: pool}, b"), "makes no arm with mixer=pool"),
    (("alpha: 0.05", "alpha: 1.2"), "claims.0.alpha"),
    (("rope: ROPE", "rope: 0"), "claims.0.rope"),
    (("budgets: [1, 3]", "budgets: [1, 30]"), "the study trains for 1, 3 epochs, not 30"),
    (("{a: {mixer: conv}", "{a: {kernel: 3}"), "'kernel' is not a factor"),
    (("band: 50", "band: 50\n  - name: C1\n    text: x\n    source: y\n    kind: beats\n"
      "    gaps: [{a: {mixer: conv}, b: {mixer: identity}}]\n    alpha: 0.01"), "given twice"),
])
def test_a_bad_claim_exits_2_with_one_line_and_writes_nothing(tmp_path, edit, says):
    spec = tmp_path / "claimed.yaml"
    spec.write_text(SPEC.replace("rope: ROPE", "rope: 1.0").replace(*edit) if edit[0] != "rope: ROPE"
                    else SPEC.replace(*edit))
    proc = _cli("sweep", spec, "--dry-run", "--results", tmp_path / "results", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()


# ---- end to end on the embedded local Ray ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")
def test_a_spec_with_claims_runs_and_its_report_decides_then_an_edit_shows_as_changed(tmp_path):
    spec = tmp_path / "claimed.yaml"
    # A `within` claim with a ROPE of 50 points: decided whatever 512 images and 3 epochs give,
    # so the test is about the path (registration, decision, report), not this tiny model.
    claimed = SPEC.replace("kind: beats", "kind: within")
    spec.write_text(claimed.replace("ROPE", "50"))
    results = tmp_path / "results"
    proc = _cli("sweep", spec, "--results", results)
    assert proc.returncode == 0, proc.stderr
    study = results / "claimed"
    reg = json.loads((study / "claims.json").read_text())["claims"]["C1"]
    assert len(reg) == 1 and reg[0]["trials_finished_before"] == 0
    assert json.loads((study / "provenance.json").read_text())["claims"]["C1"] == reg[0]["fingerprint"]
    proc = _cli("analyze", study)
    assert proc.returncode == 0, proc.stderr
    claims = pd.read_csv(study / "report" / "claims.csv")
    decided = claims.iloc[0]
    assert decided["registered"] and decided["n_seeds"] == 3
    assert decided["verdict"] == decided["verdict_at_largest"] == "agrees", decided.to_dict()
    report = (study / "report" / "report.md").read_text()
    assert "## Claims" in report and "registered" in report and (study / "report" / "claims.png").exists()

    # The claim edited after its trials finished: re-running the sweep records the change (it
    # has nothing to run), and the report shows it as changed and does not decide it.
    spec.write_text(claimed.replace("ROPE", "40"))
    proc = _cli("sweep", spec, "--results", results)
    assert proc.returncode == 0, proc.stderr
    reg = json.loads((study / "claims.json").read_text())["claims"]["C1"]
    assert [v["trials_finished_before"] for v in reg] == [0, 12]
    proc = _cli("analyze", study)
    assert proc.returncode == 0, proc.stderr
    edited = pd.read_csv(study / "report" / "claims.csv").iloc[0]
    assert not edited["registered"] and "changed" in edited["registration"]
    assert edited["verdict"] == "undecided (not registered before the data)"


def test_an_adaptive_study_decides_on_the_anytime_valid_interval():
    """Where seeds were added after looking, the claim reads the confidence sequence: wider
    than the fixed-n t interval at the same level, so a gap a t interval decides may not be."""
    df = _synthetic(1.6, 1.6, seeds=range(8), sd=0.5, rng=4)
    claim = _claim(budgets=[30])
    fixed, fixed_gaps, _ = decide_claim(df, claim, [30], REGISTERED, anytime=False)
    seq, seq_gaps, _ = decide_claim(df, claim, [30], REGISTERED, anytime=True)
    assert seq_gaps["interval"].iloc[0] == "anytime-valid" and fixed_gaps["interval"].iloc[0] == "paired t"
    width = lambda g: float(g["hi"].iloc[0] - g["lo"].iloc[0])  # noqa: E731
    assert width(seq_gaps) > width(fixed_gaps)
    assert fixed["verdict"] == "agrees" and seq["verdict"] in ("agrees", "undecided")
    assert seq["stability"] == "one budget: not judged"


def test_a_fixed_seed_study_is_not_decided_before_its_last_trial():
    row, _, _ = decide_claim(_synthetic(5.0, 5.0), _claim(budgets=[10, 30]), [10, 30], REGISTERED,
                             incomplete="study incomplete: 20 of 24 trials")
    assert row["verdict_at_largest"] == "agrees"
    assert row["verdict"] == "undecided (study incomplete: 20 of 24 trials)"


def test_a_gap_without_trials_at_the_smaller_budget_is_not_called_still_moving():
    df = _synthetic(5.0, 5.0)
    df = df[~((df["epochs"] == 10) & (df["variant"] == "identity"))]  # that arm not run at 10 yet
    row, _, _ = decide_claim(df, _claim(budgets=[10, 30]), [10, 30], REGISTERED)
    assert row["verdict"] == "undecided (no data paired at 10 epochs)" and row["stability"] == "no data"


def test_a_running_study_is_incomplete_by_its_marker(tmp_path):
    from mixerlab.analysis.claims import _incomplete
    from mixerlab.sweep.study import MARKER

    assert _incomplete(tmp_path, 3) is None  # no marker: tables written by hand
    (tmp_path / MARKER).write_text(json.dumps({"n_trials": 12}))
    assert _incomplete(tmp_path, 3) == "study incomplete: 3 of 12 trials"
    assert _incomplete(tmp_path, 12) is None
