"""The analysis layer on small DataFrames with known answers, and on a small real study."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mixerlab.analysis import (
    aggregate,
    anova,
    design_factors,
    factor_pairs,
    holm,
    load_study,
    pairwise,
    pareto_front,
    write_report,
)
from mixerlab.errors import ConfigError


def synthetic_trials(values: dict, status=None) -> pd.DataFrame:
    """A hand-made (synthetic) trial table: {(variant, patch): [test_acc per seed]}."""
    rows = []
    for (variant, patch), accs in values.items():
        for seed, acc in enumerate(accs):
            rows.append({"trial_id": f"{variant}{patch}{seed}", "status": "ok", "variant": variant,
                         "patch_size": patch, "seed": seed, "test_acc": acc, "params": 1000 * (patch or 1),
                         "macs": 10, "error": ""})
    df = pd.DataFrame(rows)
    for tid, st in (status or {}).items():
        df.loc[df.trial_id == tid, ["status", "test_acc"]] = [st, np.nan]
    return df


def test_aggregate_mean_std_and_t_interval():
    df = synthetic_trials({("conv", 4): [80.0, 82.0, 84.0], ("mlp", 4): [70.0, 71.0, 75.0]})
    agg = aggregate(df, by=["variant"]).set_index("variant")
    half = stats.t.ppf(0.975, 2) * 2.0 / np.sqrt(3)  # sd of 80, 82, 84 is 2
    assert agg.loc["conv", "test_acc_mean"] == pytest.approx(82.0)
    assert agg.loc["conv", "test_acc_std"] == pytest.approx(2.0)
    assert agg.loc["conv", "test_acc_lo"] == pytest.approx(82.0 - half)
    assert agg.loc["conv", "test_acc_hi"] == pytest.approx(82.0 + half)
    assert agg.loc["mlp", "test_acc_n"] == 3


def test_failed_trials_are_counted_not_averaged():
    df = synthetic_trials({("conv", 4): [80.0, 82.0, 10.0]}, status={"conv42": "diverged"})
    row = aggregate(df, by=["variant"]).iloc[0]
    assert row["test_acc_mean"] == pytest.approx(81.0)  # the diverged trial is not in the mean
    assert row["n_trials"] == 3 and row["n_ok"] == 2 and row["n_diverged"] == 1 and row["n_failed"] == 1


def test_single_seed_gives_nan_interval_not_a_crash():
    row = aggregate(synthetic_trials({("conv", 4): [80.0]}), by=["variant"]).iloc[0]
    assert row["test_acc_mean"] == 80.0 and np.isnan(row["test_acc_lo"])


def test_pareto_front_on_hand_made_points():
    pts = pd.DataFrame({"name": list("abcdef"), "cost": [1, 2, 2, 3, 4, 5], "acc": [50, 60, 55, 60, 70, 65]})
    front = pareto_front(pts, "cost", "acc")
    # b dominates c (same cost, better) and d (cheaper, same acc); e dominates f
    assert front["name"].tolist() == ["a", "b", "e"]
    fast = pd.DataFrame({"name": list("xyz"), "speed": [100, 200, 300], "acc": [90, 95, 80]})
    assert pareto_front(fast, "speed", "acc", x_better="higher")["name"].tolist() == ["y", "z"]


def test_anova_effect_sizes_match_hand_computed_sums_of_squares():
    """Balanced 2x2 design with 3 replicates: SS_A, SS_B, SS_AB and SS_error written out."""
    cells = {("conv", 4): [82.0, 84.0, 83.0], ("conv", 7): [80.0, 79.0, 81.0],
             ("mlp", 4): [75.0, 77.0, 76.0], ("mlp", 7): [78.0, 77.0, 79.0]}
    df = synthetic_trials(cells)
    y = df["test_acc"].to_numpy()
    grand = y.mean()
    n = 3
    a_means = df.groupby("variant")["test_acc"].mean()
    b_means = df.groupby("patch_size")["test_acc"].mean()
    ss_a = 2 * n * ((a_means - grand) ** 2).sum()
    ss_b = 2 * n * ((b_means - grand) ** 2).sum()
    cell_means = df.groupby(["variant", "patch_size"])["test_acc"].mean()
    ss_cells = n * ((cell_means - grand) ** 2).sum()
    ss_ab = ss_cells - ss_a - ss_b
    ss_err = sum(((np.array(v) - np.mean(v)) ** 2).sum() for v in cells.values())
    table = anova(df, ["variant", "patch_size"]).set_index("term")
    assert table.loc["variant", "sum_sq"] == pytest.approx(ss_a)
    assert table.loc["patch_size", "sum_sq"] == pytest.approx(ss_b)
    assert table.loc["variant:patch_size", "sum_sq"] == pytest.approx(ss_ab)
    assert table.loc["Residual", "sum_sq"] == pytest.approx(ss_err)
    assert table.loc["variant", "partial_eta_sq"] == pytest.approx(ss_a / (ss_a + ss_err))
    total = ss_a + ss_b + ss_ab + ss_err
    assert table.loc["variant", "eta_sq"] == pytest.approx(ss_a / total)
    f_a = (ss_a / 1) / (ss_err / 8)
    assert table.loc["variant", "F"] == pytest.approx(f_a)
    assert table.loc["variant", "p"] == pytest.approx(stats.f.sf(f_a, 1, 8))


def test_factor_pairs_compare_one_factor_at_fixed_levels_of_the_others():
    """Synthetic: kernel 9 beats kernel 3 by exactly 2 points at patch 2 on every seed and ties
    at patch 4; pooling over patch sizes would blur that, one factor at a time does not."""
    base = {0: 80.0, 1: 81.5, 2: 79.0}
    rows = [{"trial_id": f"p{p}k{k}s{s}", "status": "ok", "variant": "conv", "patch_size": p,
             "kernel_size": k, "seed": s, "test_acc": acc + (2.0 if (p, k) == (2, 9) else 0.0)
             + (0.1 * s if k == 9 else 0.0)}
            for p in (2, 4) for k in (3, 9) for s, acc in base.items()]
    fp = factor_pairs(pd.DataFrame(rows), ["patch_size", "kernel_size"])
    assert set(fp["factor"]) == {"patch_size", "kernel_size"} and (fp["test"] == "paired t").all()
    k = fp[fp["factor"] == "kernel_size"].set_index("at")
    assert k.loc["patch_size=2", "diff"] == pytest.approx(-(2.0 + 0.1))  # a=3, b=9: 3 - 9
    assert k.loc["patch_size=4", "diff"] == pytest.approx(-0.1)
    ref = stats.ttest_rel([80.0, 81.5, 79.0], [82.0, 83.6, 81.2])
    assert k.loc["patch_size=2", "p"] == pytest.approx(ref.pvalue)
    # Holm within the kernel family only (two comparisons), not over all four rows.
    assert k["p_holm"].tolist() == pytest.approx(holm(k["p"]).tolist())


def test_holm_correction_by_hand():
    # sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])


def test_holm_equals_statsmodels_with_ties_caps_and_nans():
    """mixerlab writes Holm out (statsmodels' runs gc.collect per call); same numbers."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for m in (1, 2, 7, 40):
        p = rng.uniform(0, 0.2, m) ** 2
        p[: m // 3] = p[0]  # ties
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=0, rel=1e-12)
    got = holm([0.2, np.nan, 0.9, 0.001])  # m = 3: the NaN is not a test
    assert np.isnan(got[1]) and got[[0, 2, 3]] == pytest.approx([0.4, 0.9, 0.003])
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # 2 x 0.6 capped at 1


def test_pairwise_welch_and_holm():
    df = synthetic_trials({("conv", 4): [80.0, 81.0, 82.0], ("mlp", 4): [70.0, 71.0, 72.5],
                           ("identity", 4): [80.5, 81.0, 81.5]})
    pairs = pairwise(df, within=None, paired=False)  # the arms share seeds: auto would pair them
    assert (pairs["test"] == "Welch t").all()
    conv_mlp = pairs[(pairs.a == "conv") & (pairs.b == "mlp")].iloc[0]
    ref = stats.ttest_ind([80.0, 81.0, 82.0], [70.0, 71.0, 72.5], equal_var=False)
    assert conv_mlp["diff"] == pytest.approx(81.0 - 71.1666667)
    assert conv_mlp["p"] == pytest.approx(ref.pvalue)
    assert conv_mlp["lo"] < conv_mlp["diff"] < conv_mlp["hi"] and conv_mlp["significant"]
    conv_id = pairs[(pairs.a == "conv") & (pairs.b == "identity")].iloc[0]
    assert not conv_id["significant"]
    assert pairs["p_holm"].tolist() == pytest.approx(holm(pairs["p"]).tolist())


def _write_study(path: Path, df: pd.DataFrame, name: str = "synth") -> Path:
    path.mkdir(parents=True)
    df.to_parquet(path / "trials.parquet")
    (path / "spec.yaml").write_text(f"name: {name}\nquestion: Which mixer?\n")
    return path


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="not a study"):
        load_study(tmp_path)
    bad = _write_study(tmp_path / "cols", synthetic_trials({("conv", 4): [1.0]}).drop(columns=["test_acc"]))
    with pytest.raises(ConfigError, match="missing column.*test_acc"):
        load_study(bad)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "trials.parquet").write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(ConfigError, match="unreadable.*re-run the same `mixerlab sweep SPEC`"):
        load_study(corrupt)


def test_report_on_synthetic_study_has_verdict_and_figures(tmp_path):
    rng = np.random.default_rng(0)
    cells = {(v, p): list(base + rng.normal(0, 0.5, 3)) for (v, base), p in
             itertools.product([("conv", 85.0), ("attention", 80.0), ("identity", 70.0)], [4, 7])}
    study = _write_study(tmp_path / "synth", synthetic_trials(cells, status={"conv40": "oom"}))
    path, verdict = write_report([study])
    text = path.read_text()
    assert "token mixer" in verdict and "patch size" in verdict and "Limits" in verdict
    assert "## Verdict" in text and "oom" in text  # failed trial listed
    for name in ("tradeoff_params", "effects", "interaction"):
        assert (path.parent / f"{name}.png").stat().st_size > 10_000
        assert (path.parent / f"{name}.svg").exists()


def test_verdict_separates_the_identity_control_from_the_choice_of_mixer(tmp_path):
    """Known answer: conv = attention, identity 15 points behind. The mixer factor as a whole
    explains almost everything, yet among the mixers that mix tokens the choice is noise."""
    import re

    rng = np.random.default_rng(1)
    cells = {(v, p): list(base + rng.normal(0, 0.5, 4)) for (v, base), p in
             itertools.product([("conv", 85.0), ("attention", 85.0), ("identity", 70.0)], [4, 7])}
    _, verdict = write_report([_write_study(tmp_path / "synth", synthetic_trials(cells))])
    overall = re.search(r"the token mixer explains >?(\d+)%", verdict)
    within = re.search(r"among the mixers that do mix tokens \(attention, conv\), the choice of "
                       r"mixer explains <?(\d+)% of the variance \(p=([\d.e-]+)\)", verdict)
    assert overall and within, verdict
    assert int(overall.group(1)) >= 95 and int(within.group(1)) <= 25 and float(within.group(2)) > 0.05


FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")
def test_every_figure_from_a_small_real_study(tmp_path):
    spec = tmp_path / "real.yaml"
    spec.write_text("""name: real
question: Conv or attention at two patch sizes, on a small real subset?
dataset: {name: fashion-mnist, train_subset: 512, val_fraction: 0.02}
train: {epochs: 2, batch_size: 64}
model: {depth: 1, width: 16}
grid: {mixer: [conv, attention], patch_size: [4, 7]}
seeds: 2
""")
    run = subprocess.run([sys.executable, "-m", "mixerlab", "sweep", spec, "--results", tmp_path],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = subprocess.run([sys.executable, "-m", "mixerlab", "analyze", tmp_path / "real"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Verdict:" in out.stdout and "report:" in out.stdout
    report = tmp_path / "real" / "report"
    for name in ("tradeoff_params", "tradeoff_macs", "tradeoff_infer_images_per_s",
                 "tradeoff_train_time_s", "effects", "interaction", "learning_curves"):
        assert (report / f"{name}.png").stat().st_size > 10_000, name
        assert f"({name}.png)" in (report / "report.md").read_text()


def test_report_renders_a_study_mixing_reference_architectures_and_variants(tmp_path):
    """A reference architecture has no patch size of mixerlab's (NaN): the effects and
    interaction figures leave it out of that factor, the comparisons still include it."""
    cells = {("conv", 2): [88.0, 88.5, 89.0], ("attention", 4): [80.0, 80.2, 80.9],
             ("resnet18", None): [89.0, 89.1, 89.6]}
    study = _write_study(tmp_path / "refs", synthetic_trials(cells))
    path, verdict = write_report([study])
    text = Path(path).read_text()
    assert "| resnet18 |" in text and (Path(path).parent / "effects.png").stat().st_size > 10_000
    assert "resnet18 leads conv" in verdict


def test_eta_sq_interval_separates_a_real_effect_from_none():
    from mixerlab.analysis import eta_sq_interval

    rng = np.random.default_rng(1)  # synthetic: a 5-point mixer effect, no patch effect
    cells = {(v, p): list(base + rng.normal(0, 0.5, 3)) for (v, base), p in
             itertools.product([("conv", 85.0), ("mlp", 80.0)], [4, 7])}
    t = eta_sq_interval(synthetic_trials(cells), ["variant", "patch_size"], n_boot=200).set_index("term")
    assert t.loc["variant", "lo"] > 0.9 > t.loc["patch_size", "hi"]
    assert ((0 <= t["lo"]) & (t["lo"] <= t["hi"]) & (t["hi"] <= 1)).all()
    assert t.loc["variant", "eta_sq"] == pytest.approx(
        anova(synthetic_trials(cells), ["variant", "patch_size"]).set_index("term").loc["variant", "eta_sq"])


@pytest.mark.parametrize("interaction", [True, False])
def test_bootstrap_refit_by_least_squares_equals_statsmodels_type_two(interaction):
    """The bootstrap's fast refit (stats._TypeTwo) gives anova()'s eta^2 on resamples of an
    unbalanced design, with and without the interaction, three factors (synthetic data)."""
    from mixerlab.analysis.stats import _TypeTwo

    rng = np.random.default_rng(3)
    rows = [{"variant": v, "patch_size": p, "kernel_size": k, "seed": s,
             "test_acc": 80 + 3 * (v == "conv") + (p == 4) * (v == "mlp") + 0.5 * k + rng.normal(0, 1)}
            for v in ("conv", "mlp", "attention") for p in (4, 7) for k in (3, 5) for s in range(3)]
    d = pd.DataFrame(rows).assign(status="ok")
    d = d.drop(index=[0, 5]).reset_index(drop=True)  # unbalanced: two cells of 2 seeds
    if not interaction:  # anova adds A:B only when every (variant, patch) cell has replicates
        lone = (d["variant"] == "attention") & (d["patch_size"] == 7)
        d = d[~lone | (d.index == d[lone].index[0])].reset_index(drop=True)
    cells = [g.to_numpy() for g in d.groupby(["variant", "patch_size", "kernel_size"]).groups.values()]
    factors = ["variant", "patch_size", "kernel_size"]
    base = anova(d, factors)
    assert ("variant:patch_size" in set(base["term"])) == interaction
    fast = _TypeTwo.of(d, factors, "test_acc", base)
    assert fast is not None
    for _ in range(5):  # resampled within cells, as the bootstrap does
        rows = np.concatenate([rng.choice(c, size=len(c), replace=True) for c in cells])
        want = anova(d.iloc[rows].reset_index(drop=True), factors).set_index("term")["eta_sq"]
        got = fast.eta_sq(rows)
        assert got.reindex(want.index).to_numpy() == pytest.approx(want.to_numpy(), rel=1e-9, abs=1e-12)


def test_early_vs_final_rank_correlation_known_answers():
    """Synthetic history: early accuracy ranks the trials exactly as the final one (rho 1), or
    exactly backwards (rho -1); fewer than 3 trials give NaN, not a number."""
    from mixerlab.analysis import early_vs_final

    final = pd.DataFrame({"trial_id": list("abcd"), "best_val_acc": [90.0, 85.0, 80.0, 70.0]})
    same = pd.DataFrame({"trial_id": list("abcd"), "epoch": 1, "val_acc": [60.0, 50.0, 40.0, 30.0]})
    backwards = same.assign(val_acc=[30.0, 40.0, 50.0, 60.0])
    assert early_vs_final(same, final, 1)["rho"] == pytest.approx(1.0)
    assert early_vs_final(backwards, final, 1)["rho"] == pytest.approx(-1.0)
    r = early_vs_final(same[same.trial_id < "c"], final, 1)
    assert r["n"] == 2 and np.isnan(r["rho"])


ANSWER = Path(__file__).resolve().parents[1] / "analysis" / "patches_answer.py"


def test_patches_answer_combines_a_study_and_refuses_bad_input(tmp_path):
    """The study script on a synthetic study; a folder that is not a study: exit 2, one line."""
    cells = {(v, p): [base + d for d in (-0.4, 0.0, 0.4)] for (v, base), p in
             itertools.product([("conv", 85.0), ("attention", 84.0), ("identity", 70.0)], [4, 7])}
    study = _write_study(tmp_path / "synth", synthetic_trials(cells))
    done = subprocess.run([sys.executable, ANSWER, study, "--out", tmp_path / "answer"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "answer" / "answer.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| synth |"))
    assert "| conv | 85.00 | 15.00 | 1.00 |" in row  # best mixer, its accuracy, identity gap, spread
    assert "not committed: baselines" in text  # a finding without its study is listed as missing
    assert f"- command: `python analysis/patches_answer.py {study} --out" in text  # provenance
    assert f"`{study}/provenance.json`" in text and "commit " in text
    assert (tmp_path / "answer" / "accuracy_vs_macs.png").stat().st_size > 10_000
    assert "nothing is decided" in text  # no confirmatory study given: no verdict
    bad = subprocess.run([sys.executable, ANSWER, tmp_path / "nowhere", "--out", tmp_path / "x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "not a folder" in bad.stderr
    assert not (tmp_path / "x").exists()


CLAIMED_SPEC = """\
name: claimed
question: Does pool mixing beat the identity control?
grid: {{mixer: [pool, identity], epochs: [10, 30]}}
seeds: [0, 1, 2, 3]
claims:
  - name: PX
    text: pool mixing beats no mixing
    source: MetaFormer (synthetic test)
    kind: beats
    gaps: [{{a: {{mixer: pool}}, b: {{mixer: identity}}}}]
    rope: 1.0
    alpha: 0.0125
    budgets: [10, 30]
    band: 0.5
"""


def _claimed_study(path: Path, gap10: float, gap30: float, register_first: bool = True) -> Path:
    """A synthetic confirmatory study: pool and identity at 10 and 30 epochs on 4 seeds, its
    claim registered before (or, ``register_first=False``, after) its trials were written."""
    from mixerlab.claims.registration import register
    from mixerlab.spec import Spec

    noise = (-0.3, 0.1, 0.2, 0.0)  # the same per seed in every arm: paired differences are exact
    rows = [{"trial_id": f"{v}{e}{s}", "status": "ok", "error": "", "variant": v, "epochs": e, "seed": s,
             "patch_size": 4, "test_acc": 70.0 + e / 10 + d + (g if v == "pool" else 0.0) + 0.05 * s * (v == "pool"),
             "params": 1000, "macs": 10} for e, g in ((10, gap10), (30, gap30)) for v in ("pool", "identity")
            for s, d in enumerate(noise)]
    path.mkdir(parents=True)
    (path / "records").mkdir()
    text = CLAIMED_SPEC.format()
    (path / "spec.yaml").write_text(text)
    spec = Spec.model_validate(__import__("yaml").safe_load(text))
    if register_first:
        register(path, spec.claims)
    for r in rows:
        (path / "records" / f"{r['trial_id']}.json").write_text("{}")
    pd.DataFrame(rows).to_parquet(path / "trials.parquet")
    if not register_first:
        register(path, spec.claims)
    return path


@pytest.mark.parametrize("gap10, gap30, registered, verdict", [
    (8.0, 8.0, True, "agrees"),
    (0.3, 0.3, True, "equivalent"),  # above 0 but inside the ROPE: "better" does not hold
    (-5.0, -5.0, True, "disagrees"),
    (5.0, 8.0, True, "undecided (still moving)"),  # the gap grew by 3 points from 10 to 30 epochs
    (8.0, 8.0, False, "undecided (not registered before the data)"),
])
def test_patches_answer_decides_primary_claims_by_their_study_and_writes_the_readme(
        tmp_path, gap10, gap30, registered, verdict):
    """A synthetic confirmatory study's primary claim comes out each way the one rule allows;
    the README's block is the script's table; a pending spec is listed as not run yet."""
    study = _claimed_study(tmp_path / "claimed", gap10, gap30, registered)
    readme = tmp_path / "README.md"
    marks = ("<!-- patches_answer: begin (written by analysis/patches_answer.py --readme) -->",
             "<!-- patches_answer: end -->")
    readme.write_text(f"# t\n\n{marks[0]}\nold, typed\n{marks[1]}\n\nkept\n")
    pending = tmp_path / "pending.yaml"
    pending.write_text(CLAIMED_SPEC.format().replace("name: claimed", "name: later").replace("name: PX", "name: PY"))
    if verdict == "equivalent":  # a README without the markers: refused before anything is written
        readme.write_text("# t\n")
        bad = subprocess.run([sys.executable, ANSWER, study, "--out", tmp_path / "answer", "--readme", readme],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "needs one line" in bad.stderr and not (tmp_path / "answer").exists()
        readme.write_text(f"{marks[0]}\n{marks[1]}\n")
    done = subprocess.run([sys.executable, ANSWER, study, "--pending", pending, "--out", tmp_path / "answer",
                           "--readme", readme], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    claims = pd.read_csv(tmp_path / "answer" / "claims.csv").set_index("claim")
    assert claims.loc["PX", "verdict"] == verdict and claims.loc["PY", "verdict"] == "not run yet"
    block = readme.read_text()
    assert "old, typed" not in block and block.count(marks[0]) == 1 and block.count(marks[1]) == 1
    assert ("kept" in block) == (verdict != "equivalent")
    row = next(line for line in block.splitlines() if line.startswith("| PX: pool mixing beats no mixing"))
    assert f"| {verdict} | 4 | 10, 30 | 0.0125 |" in row, row
    assert "P" + "X 0.0125, PY 0.0125; 0.025 over the program's 2 primary claims" in block
    gaps = pd.read_csv(tmp_path / "answer" / "gaps.csv")
    top = gaps[gaps["decides"]].iloc[0]
    assert top["diff"] == pytest.approx(gap30 + 0.075) and top["confidence"] == pytest.approx(1 - 0.0125)
    assert (tmp_path / "answer" / "answer.png").stat().st_size > 10_000


def test_patches_answer_reads_the_down_sampling_study(tmp_path):
    """A synthetic layout_merge study: the finding splits the pyramid's lead into the 3x3 down-sampling's own mixing."""
    noise = (-0.3, 0.1, 0.2)  # the same per seed in every arm: seed-paired differences are exact
    arms = {("attention", "isotropic", 4, None): 80.0, ("attention", "pyramid", 2, "conv3"): 83.0,
            ("attention", "pyramid", 2, "merge2"): 80.4, ("identity", "isotropic", 4, None): 70.0,
            ("identity", "pyramid", 2, "conv3"): 79.0, ("identity", "pyramid", 2, "merge2"): 75.0}
    rows = [{"trial_id": f"{v}-{lay}-{ds}-{seed}", "status": "ok", "error": "", "variant": v, "layout": lay,
             "patch_size": p, "downsample": ds, "seed": seed, "test_acc": acc + d, "params": 1000, "macs": 10,
             "val_gain_last20": 0.1} for (v, lay, p, ds), acc in arms.items() for seed, d in enumerate(noise)]
    study = _write_study(tmp_path / "layout_merge", pd.DataFrame(rows), name="layout_merge")
    done = subprocess.run([sys.executable, ANSWER, study, "--out", tmp_path / "answer"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    evidence = pd.read_csv(tmp_path / "answer" / "findings.csv").set_index("studies").loc["layout_merge", "evidence"]
    assert "identity: pyramid - isotropic +9.0" in evidence and "(conv3 - merge2) +4.0" in evidence


QUICK = Path(__file__).resolve().parents[1] / "results" / "quick"


def _verdict_lines(text: str) -> list[str]:
    return [ln[2:] for ln in text.split("## Verdict")[1].split("\n## ")[0].splitlines() if ln.startswith("- ")]


@pytest.mark.skipif(not (QUICK / "trials.parquet").exists(), reason="results/quick not present")
def test_quick_report_verdict_is_unchanged_but_for_the_paired_test(tmp_path):
    """results/quick regenerated into a temporary folder: the committed verdict, except that
    its arms share seeds 0-2, so the pairwise lines now use (and name) the paired t-test."""
    import re

    before = _verdict_lines((QUICK / "report" / "report.md").read_text())
    path, _ = write_report([QUICK], tmp_path / "report")
    after = _verdict_lines(path.read_text())
    assert len(after) == len(before)
    pairwise_line = re.compile(r"At patch size (\d+), (\w+) leads (\w+) by ([\d.]+) points")
    for old, new in zip(before, after):
        if pairwise_line.match(old):
            assert pairwise_line.match(new).groups() == pairwise_line.match(old).groups()
            assert "paired t-test over 3 shared seeds" in new
            assert new.split("); ")[-1] == old.split("); ")[-1]  # the identity gap
        elif "pairwise comparisons" in old:
            assert re.fullmatch(r"\d+ of 12 pairwise comparisons \(paired t-tests\) are significant at 5% "
                                r"after Holm correction\.", new), new
        else:
            assert new == old
    assert "## Pairwise comparisons (paired t-test on seed-matched differences" in path.read_text()


def test_design_factors_drop_a_factor_the_variant_determines():
    """Capacity matching solves one width per variant: width is then not a second factor."""
    df = synthetic_trials({("conv", 4): [80.0, 81.0], ("mlp", 4): [70.0, 71.0],
                           ("conv", 7): [79.0, 80.0], ("mlp", 7): [72.0, 73.0]})
    df["width"] = df["variant"].map({"conv": 96, "mlp": 64})
    assert design_factors(df, ["variant", "patch_size", "width"]) == ["variant", "patch_size"]
    assert set(anova(df, design_factors(df, ["variant", "patch_size", "width"]))["term"]) == {
        "variant", "patch_size", "variant:patch_size", "Residual"}


def _path_table(shift: float, noise: float, seeds=range(8), path: str | None = None) -> pd.DataFrame:
    """Synthetic trial table (not a result): two mixers, one row per seed, in a record's column
    order (configuration up to ``seed``, then measurements, then the streamed path's columns)."""
    rng = np.random.default_rng(0 if path is None else 1)
    rows = []
    for v, base in (("conv", 90.0), ("mlp", 88.0)):
        for s in seeds:
            row = {"trial_id": f"{v}{s}{path}", "study": "x", "status": "ok", "error": None,
                   "variant": v, "kernel_size": 5 if v == "conv" else None, "lr": 0.01,
                   "seed": s, "test_acc": base + 0.3 * np.sin(s) + shift + noise * rng.normal(),
                   "trial_time_s": 60.0 if path else 30.0, "train_images_per_s": 1000.0 if path else 3000.0}
            if path:
                row.update(data_path="stream", loader_workers=1, crop_pct=1.0)
            rows.append(row)
    return pd.DataFrame(rows)


def test_the_same_trials_on_two_paths_pair_and_decide_both_ways():
    from mixerlab.analysis.paths import pair_paths, path_effects

    memory = _path_table(0.0, 0.0)
    pairs = pair_paths(memory, _path_table(0.02, 0.05, path="stream"))
    assert len(pairs) == 16 and set(pairs["variant"]) == {"conv", "mlp"}  # None kernels pair too
    same = path_effects(pairs).set_index("variant")
    assert list(same.index) == ["conv", "mlp", "all"] and (same["n_pairs"] == [8, 8, 16]).all()
    assert (same["verdict"] == "equivalent").all()
    assert same.loc["all", "time_ratio"] == 2.0 and same.loc["all", "images_per_s_ratio"] == 1 / 3
    worse = path_effects(pair_paths(memory, _path_table(-1.5, 0.05, path="stream"))).set_index("variant")
    assert (worse["verdict"] == "different").all() and worse.loc["all", "hi"] < 0
    noisy = path_effects(pair_paths(memory, _path_table(0.0, 2.0, path="stream"))).set_index("variant")
    assert noisy.loc["conv", "verdict"] == "within noise, undecided"
    with pytest.raises(ConfigError, match=r"1 trial\(s\) have no twin.*mlp seed 7 ran only in memory"):
        pair_paths(memory, _path_table(0.0, 0.0, path="stream").iloc[:-1])
    one = path_effects(pair_paths(memory[memory["variant"] == "conv"],
                                  _path_table(0.0, 0.05, path="stream")[lambda d: d["variant"] == "conv"]))
    assert list(one["variant"]) == ["conv"]  # no "all" row repeating the only variant
