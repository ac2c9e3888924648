"""The benchmark scripts (benchmarks/run.py and its items) at smoke size, for real.

Only the shape of what they write is checked (rows, columns, files): figures at this size
mean nothing, and no test here times anything. The end-to-end smoke run of every item,
real Ray sweep included, is the one slow test.
"""

import argparse
import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import each other by file name

import _timing  # noqa: E402
import attention_kernels  # noqa: E402
import attribution  # noqa: E402
import budgets  # noqa: E402
import efficiency  # noqa: E402
import run  # noqa: E402
import tokens  # noqa: E402
import usual_way  # noqa: E402
from figures import COLUMNS, Context, figure  # noqa: E402

from mixerlab.config import DataConfig  # noqa: E402
from mixerlab.data import load_dataset  # noqa: E402


def _check_rows(rows, item):
    assert rows and all(tuple(r) == COLUMNS for r in rows)
    assert {r["item"] for r in rows} == {item}
    assert all(isinstance(r["value"], float) for r in rows)


def test_fit_recovers_a_synthetic_quadratic_and_line():
    n = np.array([16, 49, 196, 784])  # the token counts of patch 7, 4, 2, 1 at 28 px
    synthetic = 2e-7 * n**2 + 3e-5 * n + 0.01  # exact numbers, no measurement
    f = tokens.fit(n, synthetic, 2)
    assert np.allclose(f["coef"], [2e-7, 3e-5, 0.01], rtol=1e-6)
    assert f["r2"] == pytest.approx(1.0)
    line = tokens.fit(n, 0.004 * n + 0.02, 1)
    assert np.allclose(line["coef"], [0.004, 0.02])
    assert line["r2"] == pytest.approx(1.0)
    assert tokens.fit(n, synthetic, 1)["r2"] < 0.999  # a straight line cannot follow N^2


def test_tokens_smoke_rows_and_plot(tmp_path):
    ctx = Context(quick=True, device="cpu", out_dir=tmp_path)
    rows = tokens.run(ctx)
    _check_rows(rows, "tokens")
    names = [r["name"] for r in rows]
    for mixer in tokens.EXPECTED:
        assert sum(n.startswith(f"{mixer} N=") for n in names) == 4
        assert any(n.startswith(f"{mixer}: R^2 of the O(N") for n in names)
    assert sum("straight line" in n for n in names) == 2  # attention and mlp
    assert all(r["value"] > 0 for r in rows if r["unit"] == "ms/step")
    png = tmp_path / f"{ctx.tag}-tokens.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_efficiency_smoke_rows(tmp_path):
    rows = efficiency.run(Context(quick=True, device="cpu", out_dir=tmp_path))
    _check_rows(rows, "efficiency")
    by_name = {r["name"]: r for r in rows}
    assert by_name["peak float32 matmul"]["value"] > 0
    for mixer in ("conv", "identity"):
        assert 0 < by_name[f"{mixer} p4: efficiency"]["value"]
    # identity adds no MACs over itself, so conv is the only mixer the profile may pick
    assert "least efficient mixer: conv p4" in by_name
    phases = [r["value"] for r in rows if r["unit"] == "% of step"]
    assert len(phases) == 3 and sum(phases) == pytest.approx(100)
    profile = [r for r in rows if " profile #" in r["name"]]
    assert 1 <= len(profile) <= efficiency.TOP and all(0 < r["value"] <= 100 for r in profile)


def test_train_step_seconds_builds_each_runs_step_and_takes_its_median(monkeypatch):
    """The benchmarks' one timing helper: a real step per (configuration, way), handed to the
    project's loop with the caller's sizes, and each run's median seconds, in run order."""
    from mixerlab.config import ModelConfig
    from mixerlab.execution import Execution

    seen = {}

    def fake_loop(steps, device, **sizes):
        seen.update(sizes, n=len(steps), device=device.type)
        for step in steps:
            step()  # a real AdamW step of its model: it must run
        return [[3.0, 1.0, 2.0], [10.0, 40.0, 20.0]]

    monkeypatch.setattr(_timing, "time_in_turns", fake_loop)
    cfg = ModelConfig(mixer="attention", depth=1, width=16, patch_size=7)
    runs = [(cfg, _timing.ENGINE_WAY), (cfg, Execution(attention_kernel="plain"))]
    got = _timing.train_step_seconds(runs, 4, "cpu", rounds=3, warmup=2, block=1)
    assert got == [2.0, 20.0]  # medians, not means (2.0 and 23.3)
    assert seen == {"rounds": 3, "warmup": 2, "block": 1, "n": 2, "device": "cpu"}


def test_attention_kernels_smoke_rows_and_kernel_factors(tmp_path):
    ctx = Context(quick=True, device="cpu", out_dir=tmp_path)
    rows = attention_kernels.run(ctx)
    _check_rows(rows, "attention_kernels")
    assert [r["name"].split(" ")[0] for r in rows] == ["N=16", "N=49"]  # quick: the first two grids
    assert all(r["value"] > 0 and math.isfinite(r["value"]) for r in rows)
    assert all(r["note"].startswith("training images/s ") for r in rows)
    factors = attention_kernels.kernel_factors(ctx)
    _check_rows(factors, "kernel_factors")
    # one thread: fp32 and bf16 x channels_last and NCHW in one process, then a fresh process per kernel
    assert sum("one process in turns" in r["name"] for r in factors) == 4
    assert sum("a fresh process per kernel" in r["name"] for r in factors) == 1
    assert all(r["value"] > 0 and math.isfinite(r["value"]) for r in factors)


def test_usual_trial_trains_on_mixerlabs_images(tmp_path):
    from torchvision import datasets

    from mixerlab.data.split import split_indices

    root = usual_way.torchvision_raw(tmp_path / "data")
    cfg = DataConfig(train_subset=256, val_fraction=0.01)
    ours = load_dataset(cfg)
    theirs = datasets.FashionMNIST(str(root), train=True)
    train_idx, val_idx = split_indices(theirs.targets, cfg.val_fraction, cfg.train_subset, 0)
    assert torch.equal(theirs.data[train_idx], ours.train_x[:, 0])
    assert torch.equal(theirs.targets[train_idx], ours.train_y)
    assert torch.equal(theirs.data[val_idx], ours.val_x[:, 0])

    args = argparse.Namespace(mixer="identity", patch_size=7, depth=1, width=16, seed=0, epochs=1,
                              batch_size=128, eval_batch_size=512, lr=5e-3, weight_decay=0.05,
                              label_smoothing=0.1, grad_clip=1.0, train_subset=256, val_fraction=0.01,
                              split_seed=0, workers=0, threads=1, device="cpu", root=str(root))
    rec = usual_way.trial(args)
    assert 0 <= rec["test_acc"] <= 100 and 0 <= rec["val_acc"] <= 100
    assert rec["train_time_s"] > 0 and rec["threads"] == 1


def test_study_spec_sizes():
    assert len(usual_way.trials_of(usual_way.study_spec(Context(device="cpu")))) == 8
    assert len(usual_way.trials_of(usual_way.study_spec(Context(full=True, device="cpu")))) == 24
    smoke = usual_way.study_spec(Context(quick=True, device="cpu"))
    assert len(usual_way.trials_of(smoke)) == 1 and smoke["train"]["epochs"] == 1
    assert len(usual_way.configs_of(usual_way.study_spec(Context(device="cpu")))) == 8


def test_attribution_multiplies_synthetic_factors():
    # Synthetic seconds per step with known factors P=2, W=1.5, T=1.25 in both configs.
    measured = [{"config": c, "way": "bf16 nchw", "dataloader_s": 2 * 1.5 * 1.25 * s,
                 "deviceloader_s": 1.5 * 1.25 * s, "nchw_s": 1.5 * 1.25 * s, "way_s": 1.25 * s,
                 "side_by_side_s": s}
                for c, s in (("conv p4", 0.1), ("mlp p7", 0.3))]
    got = attribution.rows(measured, overall=7.5)
    rows = {r["name"]: r["value"] for r in got}
    assert rows["P conv p4"] == pytest.approx(2) and rows["W mlp p7"] == pytest.approx(1.5)
    assert rows["P x W x T: explained by the three"] == pytest.approx(3.75)
    assert rows["unexplained: wall-time ratio / (P x W x T)"] == pytest.approx(2)
    assert "way: bf16 nchw" in next(r["note"] for r in got if r["name"] == "W conv p4")
    for r in measured:  # on a GPU the pipeline factor is not measured: said, not invented
        del r["dataloader_s"], r["deviceloader_s"]
    rows = {r["name"]: r["value"] for r in attribution.rows(measured, overall=7.5)}
    assert math.isnan(rows["P pipeline: DataLoader / DeviceLoader"])


def test_run_writes_csv_and_markdown_and_takes_one_line_items(tmp_path, monkeypatch):
    assert list(run.ITEMS) == ["usual_way", "efficiency", "attention_kernels", "kernel_factors",
                               "overheads", "tokens", "budgets"]

    def peak(ctx):  # an item is any run(ctx) -> rows: this is all item 4 needs
        return [figure("peak", "matmul", efficiency.matmul_peak(ctx.device, 64) / 1e9, "GFLOP/s")]

    def broken(ctx):
        raise ValueError("on purpose")

    monkeypatch.setitem(run.ITEMS, "peak", peak)
    monkeypatch.setitem(run.ITEMS, "broken", broken)
    code = run.main(["--items", "peak", "broken", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 1  # the broken item fails the run, after the other's figure is written
    tag = Context(device="cpu").tag
    assert tag.startswith("cpu-")
    with open(tmp_path / f"{tag}.csv") as f:
        got = list(csv.DictReader(f))
    assert tuple(got[0]) == COLUMNS
    assert [(r["item"], r["name"]) for r in got] == [("peak", "matmul"), ("broken", "FAILED")]
    assert float(got[0]["value"]) > 0
    md = (tmp_path / f"{tag}.md").read_text()
    for text in ("Command: `python benchmarks/run.py --items peak broken", "Versions: torch",
                 "Device:", "| peak | matmul |", "ValueError: on purpose"):
        assert text in md


def test_budgets_reads_each_sessions_estimate_and_picks_the_largest_timed_spec(tmp_path):
    import json

    study = tmp_path / "s"
    study.mkdir()
    run, extend = "mixerlab sweep s.yaml", "mixerlab sweep s.yaml --extend"
    (study / "provenance.json").write_text(json.dumps({"sessions": [
        {"command": run, "wall_time_s": 500.0, "estimate_wall_s": 900.0, "wall_over_estimate": 0.56},
        {"command": run, "wall_time_s": 600.0, "estimate_wall_s": 500.0, "wall_over_estimate": 1.2},
        {"command": extend, "wall_time_s": 4.0, "estimate_wall_s": 700.0, "wall_over_estimate": 0.006},
        {"command": extend, "wall_time_s": 90.0, "estimate_wall_s": None, "wall_over_estimate": None}]}))
    rows = budgets.session_ratios(tmp_path)
    # Session 1 was resumed by the same command: stopped early, its estimate covered more.
    assert [(r["session"], r["ratio"], r["short"], r["interrupted"]) for r in rows] == [
        (1, 0.56, False, True), (2, 1.2, False, False), (3, 0.006, True, True)]
    spec, n = budgets.largest_cpu_spec()
    assert n >= 90
    if not torch.cuda.is_available():  # a GPU spec cannot be timed on this CPU: not chosen
        assert spec.parent.name == "ablations"


def test_budgets_quick_times_a_real_dry_run_and_judges_each_session(tmp_path):
    import json

    study = tmp_path / "s"
    study.mkdir()
    (study / "provenance.json").write_text(json.dumps({"sessions": [
        {"command": "c", "wall_time_s": 600.0, "estimate_wall_s": 500.0, "wall_over_estimate": 1.2},
        {"command": "d", "wall_time_s": 900.0, "estimate_wall_s": 600.0, "wall_over_estimate": 1.5}]}))
    rows = budgets.run(Context(quick=True, device="cpu", extra={"results": tmp_path}))
    _check_rows(rows, "budgets")
    dry, *sessions = rows
    assert dry["name"] == "dry run of ablations/quick.yaml (24 trials)" and dry["value"] > 0
    assert [(r["name"], r["value"]) for r in sessions] == [
        ("s session 1 wall / estimate", 1.2), ("s session 2 wall / estimate", 1.5)]
    assert [r["note"].split("; ")[1] for r in sessions] == ["goal 0.75-1.25: met", "goal 0.75-1.25: missed"]


def test_budgets_study_check_divides_recorded_times_by_the_estimate(tmp_path, monkeypatch, capsys):
    """Part 3 (once benchmarks/estimate_check.py): per configuration and in all, with the
    dry run's timing replaced by known estimates; unfinished trials do not count."""
    import json

    import pandas as pd

    study = tmp_path / "s"
    study.mkdir()
    pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "variant": ["conv", "conv", "mlp", "mlp"],
                  "patch_size": [4, 4, 4, 4], "status": ["ok", "ok", "ok", "error"],
                  "trial_time_s": [10.0, 30.0, 12.0, 1.0]}).to_parquet(study / "trials.parquet")
    (study / "provenance.json").write_text(json.dumps(
        {"wall_time_s": 33.0, "sessions": [{"concurrent_trials": 2}]}))
    monkeypatch.setattr(budgets, "estimate_now", lambda spec: {"a": 20.0, "b": 20.0, "c": 8.0, "d": 12.0})
    budgets.main(["--study", "spec.yaml", str(study)])
    out = capsys.readouterr().out
    by, totals = budgets.check_study("spec.yaml", study)
    assert by.loc[("conv", 4), "ratio"] == pytest.approx(1.0)  # mean of 0.5 and 1.5
    assert by.loc[("mlp", 4), "ratio"] == pytest.approx(1.5)  # d failed: not counted
    assert totals["trials"] == 3 and totals["sum_over_estimate"] == pytest.approx(52 / 48)
    assert totals["estimate_wall_s"] == pytest.approx(30.0)  # 60 s of trials, two at a time
    assert "trials: 3; sum trial_time_s / sum estimate = 1.083" in out
    assert "wall 33 s, estimated 30 s: wall / estimate = 1.100" in out
    assert re.search(r"\nmlp\s+4\s+12\.0\s+8\.0\s+1\.5\n", out)  # the table, one row a configuration


# Items with a smoke test of their own above (efficiency, attention_kernels, kernel_factors,
# tokens, budgets) are not run again here: this test is the entry point's, on the two items
# that have none, so the suite times each benchmark once (it ran all seven: 170 s of 1,720).
END_TO_END_ITEMS = ("usual_way", "overheads")


@pytest.mark.slow
def test_entry_point_end_to_end_at_smoke_size(tmp_path):
    """The entry point as the lead runs it, at smoke size: real subprocesses and a real sweep."""
    out = subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--out", str(tmp_path),
                          "--items", *END_TO_END_ITEMS],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    tag = Context(device="cpu").tag
    with open(tmp_path / f"{tag}.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["item"] for r in rows} == set(END_TO_END_ITEMS)
    by_name = {r["name"]: float(r["value"]) for r in rows}
    # The overheads, each a positive number of seconds.
    assert by_name["a checkpoint: save + tune.report(checkpoint) - tune.report"] > -1
    assert by_name["Ray start-up and shutdown (once per session)"] > 0
    assert by_name["inference timing after training"] > 0
    assert by_name["a trial worker's imports"] > 0
    assert any(r["name"].startswith("W ") and "way: " in r["note"] for r in rows)  # item 1's attribution
    assert by_name["wall time: usual way / mixerlab sweep"] > 0
    assert 0 <= by_name["mean test accuracy, mixerlab"] <= 100
    assert 0 <= by_name["mean test accuracy, usual way"] <= 100
    with open(tmp_path / f"{tag}-usual_way-trials.csv") as f:
        assert sorted(r["side"] for r in csv.DictReader(f)) == ["mixerlab", "usual"]


def test_every_item_has_a_test_of_its_own_or_runs_end_to_end():
    """A new benchmark item is either smoke-tested by its own test or added to the entry
    point's end-to-end test: none is left out."""
    own = {"efficiency", "attention_kernels", "kernel_factors", "tokens", "budgets"}
    assert set(run.ITEMS) == own | set(END_TO_END_ITEMS)


BASELINES_ADAPTIVE = Path(__file__).resolve().parents[1] / "results" / "baselines_adaptive"


@pytest.mark.skipif(not (BASELINES_ADAPTIVE / "trials.parquet").exists(), reason="results/baselines_adaptive not present")
def test_adaptive_savings_counterfactual_on_the_committed_adaptive_study():
    """One folder: the fixed design is the counterfactual that reaches the adaptive decisions
    (every lr on the seeds the planning formula needs), costed from the study's own trials."""
    out = subprocess.run([sys.executable, "benchmarks/adaptive_savings.py", str(BASELINES_ADAPTIVE)],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "6 of 6 comparisons decided" in out.stdout
    need = int(re.search(r"at every setting needs (\d+) seeds", out.stdout).group(1))
    row = next(line for line in out.stdout.splitlines() if line.startswith("trials "))
    adaptive, fixed, two_stage = (int(float(v)) for v in row.split()[1:])
    assert adaptive == 44 and fixed == 4 * 4 * need  # 4 mixers x 4 lrs x the seeds needed
    assert two_stage == 4 * 4 * 1 + 4 * need  # its tuning stage (one seed), then the seeds needed
    assert f"adaptive trials / fixed = {44 / fixed:.2f}" in out.stdout


def test_fixed_design_seeds_match_the_textbook_paired_t_power_table():
    """Paired t-test, two-sided alpha 0.05, 80% power: effect size 1 needs 10 pairs, 0.5 needs
    34 (Cohen's tables, as G*Power gives them); no effect can never be reached."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import adaptive_savings

    assert adaptive_savings.fixed_n(1.0, 1.0, 0.05) == 10
    assert adaptive_savings.fixed_n(-2.0, 4.0, 0.05) == 34  # the sign and the scale do not matter
    assert adaptive_savings.fixed_n(0.0, 1.0, 0.05) == np.inf


def test_jpeg_tree_writes_real_images_the_streamed_path_reads(tmp_path):
    """benchmarks/jpeg_tree.py: Fashion-MNIST as JPEGs in ImageNet's layout; a folder that
    exists is refused (exit 2, untouched), as is a count the data set does not have."""
    import jpeg_tree

    from mixerlab.data import open_data

    out = tmp_path / "tree"
    assert jpeg_tree.main([str(out), "--train", "40", "--test", "20"]) == 0
    assert len(list((out / "train").rglob("*.jpg"))) == 40
    assert len(list((out / "test").rglob("*.jpg"))) == 20
    assert not (tmp_path / "tree.partial").exists()
    data = open_data(DataConfig(name="imagefolder", data_dir=str(out), stream=True, val_fraction=0.1))
    memory = load_dataset(DataConfig(name="fashion-mnist", val_fraction=0.0))
    assert len(data.test_y) == 20 and data.in_chans == 1 and data.image_size == 28
    assert sorted(data.classes) == sorted(c.replace("/", "-") for c in memory.classes)
    before = sorted(out.rglob("*"))
    assert jpeg_tree.main([str(out), "--train", "5"]) == 2
    assert sorted(out.rglob("*")) == before
    assert jpeg_tree.main([str(tmp_path / "other"), "--test", "10001"]) == 2
    assert not (tmp_path / "other").exists()
