"""Controlled comparisons end to end: a real nuisance study on Fashion-MNIST (tiny), the
paired seed comparison, and every committed spec expanding and matching as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mixerlab.analysis import choose_nuisance, pairwise
from mixerlab.config import ModelConfig
from mixerlab.errors import ConfigError
from mixerlab.spec import load_spec
from mixerlab.sweep.trials import expand

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
# Shapes of the data sets the committed specs name (image size, channels, classes).
SHAPES = {"fashion-mnist": (28, 1, 10), "mnist": (28, 1, 10), "cifar10": (32, 3, 10),
          "cifar100": (32, 3, 100)}
# Image folders the GPU specs name (data_dir's last part): shape, and whether such a folder
# exists is the user's business (ImageNet is linked in, never committed).
FOLDERS = {"imagenet100": (224, 3, 100), "imagenet1k": (224, 3, 1000),
           "fmnist-jpeg": (28, 1, 10)}  # benchmarks/jpeg_tree.py's Fashion-MNIST JPEGs
SPECS = sorted((ROOT / "ablations").rglob("*.yaml"))


def load_committed(path: Path, tmp: Path):
    """``load_spec(path)``; a spec whose data folder is not on this machine is read from a copy
    at the same place under ``tmp``, beside an empty stand-in for that folder, so its text is
    checked exactly as committed."""
    import yaml

    data_dir = (yaml.safe_load(path.read_text()).get("dataset") or {}).get("data_dir")
    if not data_dir or (path.parent / data_dir).is_dir():
        return load_spec(path)
    copy = tmp / path.relative_to(ROOT)
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(path.read_text())
    (copy.parent / data_dir).mkdir(parents=True, exist_ok=True)
    return load_spec(copy)


@pytest.mark.parametrize("path", SPECS, ids=[str(p.relative_to(ROOT / "ablations")) for p in SPECS])
def test_every_committed_spec_expands_and_matches(path, tmp_path):
    """A committed spec can never be broken again: it parses, every grid point builds, and
    every matched variant lands within the spec's tolerance."""
    spec = load_committed(path, tmp_path)
    data = spec.data_config()
    size, chans, classes = SHAPES.get(data.name) or FOLDERS[Path(data.data_dir).name]
    plan = expand(spec, (data.image_size or size, chans, classes), where=str(path))
    assert plan.trials
    # The first round: the tuning stage's seeds where the spec has one (later rounds are
    # planned by the driver: tests/test_adaptive.py).
    first = spec.tuning_seed_list or spec.seed_list
    assert len(plan.trials) == len(plan.arms) * len(plan.nuisance) * len(first)
    assert len({t.trial_id for t in plan.trials}) == len(plan.trials), "trial ids must be unique"
    assert not plan.notes, plan.notes  # every matched variant is an ordinary block
    if spec.match is not None:
        for extra in (arm.extra for arm in plan.arms):
            by = extra["match_by"]
            assert abs(extra[f"match_{by}"] - extra[f"match_target_{by}"]) <= \
                spec.match.tolerance * extra[f"match_target_{by}"]


def test_the_stream_studys_twins_are_one_spec_on_two_paths(tmp_path):
    """ablations/stream.yaml and stream_memory.yaml (study 12) hold the same trials, config and
    seed alike, but for the memory budget that sends one to the streamed path."""
    plans = []
    for name in ("stream", "stream_memory"):
        spec = load_committed(ROOT / "ablations" / f"{name}.yaml", tmp_path)
        plans.append(expand(spec, FOLDERS["fmnist-jpeg"], where=name))
    stream, memory = ([t.config.model_dump(exclude={"data": {"memory_budget_gb"}}) for t in p.trials]
                      for p in plans)
    assert stream == memory and len(stream) == 6
    assert {t.config.data.memory_budget_gb for t in plans[0].trials} == {0.01}
    assert {t.config.data.memory_budget_gb for t in plans[1].trials} == {16.0}
    # Where the data folder lies is not what the study computes: a clone elsewhere resumes it.
    clones = []
    for where in ("one", "two"):
        copy = tmp_path / where / "ablations" / "stream.yaml"
        copy.parent.mkdir(parents=True)
        copy.write_text((ROOT / "ablations" / "stream.yaml").read_text())
        (tmp_path / where / "data" / "fmnist-jpeg").mkdir(parents=True)
        clones.append(load_spec(copy))
    assert clones[0].dataset["data_dir"] != clones[1].dataset["data_dir"]
    assert clones[0].fingerprint() == clones[1].fingerprint()


@pytest.mark.parametrize("mixer", ["attention", "conv", "identity", "mlp", "pool", "random"])
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_cost_of_a_deep_isotropic_model_equals_building_it(mixer, norm):
    """Matching costs an isotropic model from two shallow ones (its blocks are identical): the
    shortcut must equal the model actually built, parameters and MACs, for every mixer."""
    from mixerlab.measure import count_flops, count_params
    from mixerlab.models import create_model
    from mixerlab.sweep.capacity import cost

    cfg = ModelConfig(mixer=mixer, norm=norm, depth=7, width=24, patch_size=4, heads=4,
                      channel_mlp_ratio=1.75)
    model = create_model(cfg)
    assert cost(cfg, "params") == count_params(model)["params"]
    assert cost(cfg, "macs") == count_flops(model, (1, 28, 28))["macs"]


def test_matching_both_ways_labels_every_trial():
    spec = load_spec(ROOT / "ablations" / "mixer_patch.yaml")
    plan = expand(spec, (28, 1, 10))
    by = pd.Series([t.extra["match_by"] for t in plan.trials])
    assert set(by) == {"params", "macs"} and by.value_counts().nunique() == 1
    for t in plan.trials:  # within 1% for every mixer, attention included (the fine knob)
        b = t.extra["match_by"]
        assert abs(t.extra[f"match_{b}"] / t.extra[f"match_target_{b}"] - 1) <= 0.01


ODD = """name: odd
question: Does matching land on ordinary blocks?
dataset: {name: synthetic, synthetic_size: 64}
train: {epochs: 1}
model: {depth: 4, patch_size: 4}
grid: {mixer: [conv, attention], layout: [isotropic, pyramid], stem: [patch, conv]}
match: {by: params, reference: {mixer: conv, width: 32}, tolerance: 0.01}
"""


def test_a_matched_variant_far_from_a_usual_block_is_named_and_still_planned(tmp_path):
    """At 22k parameters the pyramid's attention can only be matched as width 4 (4 heads of one
    channel) with a channel MLP 13.5x wide: the plan keeps it (it is within 1%) and says so."""
    spec = tmp_path / "odd.yaml"
    spec.write_text(ODD)
    assert load_spec(spec).seed_list == [0]  # no `seeds:` means one seed, 0 (it once raised)
    plan = expand(load_spec(spec), (28, 1, 10))
    assert len(plan.arms) == 8
    odd = [n for n in plan.notes if "attention (pyramid, conv stem, patch 4) is solved to width 4 " in n]
    assert len(odd) == 1 and "channel_mlp_ratio 13.5 (mlp_ratio 2)" in odd[0] and "4 heads of 1 channel(s)" in odd[0]
    assert not any(n.split(": ")[1].startswith("conv") for n in plan.notes)  # conv lands ordinary
    # The CLI says it on stderr before anything runs, and goes on.
    run = subprocess.run([sys.executable, "-m", "mixerlab", "sweep", spec, "--dry-run"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "warning: " in run.stderr and "solved to width 4 with channel_mlp_ratio 13.5" in run.stderr
    assert "8 configuration(s) x 1 seed(s) = 8 trials" in run.stdout


def test_image_size_as_a_factor_holds_the_token_grid_and_sizes_each_trials_data():
    spec = load_spec(ROOT / "ablations" / "fixed_grid.yaml")
    plan = expand(spec, (28, 1, 10))
    assert {t.config.model.image_size // t.config.model.patch_size for t in plan.trials} == {7}
    for t in plan.trials:  # the data the trial loads or resizes to is the model's input size
        assert (t.config.data.image_size or 28) == t.config.model.image_size
    assert {t.config.model.image_size for t in plan.trials} == {7, 14, 28}


def test_an_image_size_the_patch_does_not_divide_is_refused_before_anything_runs(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nquestion: q\ndataset: {name: synthetic}\n"
                    "grid: {patch_size: [4], image_size: [16, 30]}\n")
    with pytest.raises(ConfigError, match=r"image_size': 30.*patch_size: 4 does not divide image_size 30"):
        expand(load_spec(spec), (28, 1, 10), where=str(spec))


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")
def test_nuisance_study_end_to_end_on_real_data(tmp_path):
    """Two arms (label smoothing 0 and 0.1) x two learning rates x three seeds on real
    Fashion-MNIST: the report compares each arm at its validation-best lr, names it, and the
    seed-paired comparison is tighter than the unpaired one."""
    spec = tmp_path / "nz.yaml"
    spec.write_text("""name: nz
question: Does label smoothing matter once the learning rate is tuned per arm?
dataset: {name: fashion-mnist, train_subset: 384, val_fraction: 0.02}
train: {epochs: 2, batch_size: 64}
model: {depth: 1, width: 16, patch_size: 7}
grid: {label_smoothing: [0.0, 0.1]}
nuisance: {lr: [0.0005, 0.02]}
seeds: 3
""")
    run = subprocess.run([sys.executable, "-m", "mixerlab", "sweep", spec, "--results", tmp_path],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    trials = pd.read_parquet(tmp_path / "nz" / "trials.parquet")
    assert len(trials) == 12 and set(trials["status"]) == {"ok"}

    # The chosen lr of each arm is the one with the best mean validation accuracy.
    means = trials.groupby(["label_smoothing", "lr"])["val_acc"].mean()
    expected = {ls: means[ls].idxmax() for ls in (0.0, 0.1)}
    chosen = choose_nuisance(trials, ["lr"])
    got = chosen.groupby("label_smoothing")["lr"].first().to_dict()
    assert got == expected
    # The test set is not read to choose: scrambling it changes nothing.
    scrambled = trials.assign(test_acc=trials["test_acc"].sample(frac=1, random_state=0).to_numpy()[::-1])
    assert choose_nuisance(scrambled, ["lr"]).groupby("label_smoothing")["lr"].first().to_dict() == expected

    out = subprocess.run([sys.executable, "-m", "mixerlab", "analyze", tmp_path / "nz"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "nz" / "report" / "report.md").read_text()
    assert "Nuisance settings chosen per arm" in report and "(isolation.png)" in report
    for ls, lr in expected.items():
        assert f"lr={lr:g}" in report or f"lr={lr}" in report, (ls, lr)

    # Seeds are paired: at one lr the two arms share initial weights and data order, so the
    # seed-matched differences have a narrower interval than the unpaired (Welch) one.
    same_lr = trials[trials["lr"] == 0.02].assign(variant=lambda d: "ls" + d["label_smoothing"].astype(str))
    p = pairwise(same_lr, group="variant", within=None, paired=True).iloc[0]
    w = pairwise(same_lr, group="variant", within=None, paired=False).iloc[0]
    assert p["test"] == "paired t" and w["test"] == "Welch t"
    assert (p["hi"] - p["lo"]) < (w["hi"] - w["lo"]), (p.to_dict(), w.to_dict())


@pytest.mark.slow
def test_extend_keeps_finished_trials_and_refuses_other_changes(tmp_path):
    """`--extend` after widening the nuisance grid runs only the new trials; a spec that
    changes more than added values is refused with exit 2 and nothing touched."""
    text = """name: ext
question: Does extending the lr grid keep what ran?
dataset: {name: synthetic, synthetic_size: 64}
train: {epochs: 1}
model: {depth: 1, width: 8, patch_size: 7}
grid: {mixer: [conv]}
nuisance: {lr: [0.001, 0.01]}
seeds: 2
"""
    spec = tmp_path / "ext.yaml"
    spec.write_text(text)
    # A relative --results folder, as the README's commands use: resuming reads Ray's state
    # from it (Tune once raised on a relative path).
    sweep = [sys.executable, "-m", "mixerlab", "sweep", str(spec), "--results", "runs"]
    run = lambda args: subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)  # noqa: E731
    assert run(sweep).returncode == 0
    records = tmp_path / "runs" / "ext" / "records"
    before = {p.name: p.read_bytes() for p in records.glob("*.json")}
    assert len(before) == 4

    spec.write_text(text.replace("[0.001, 0.01]", "[0.001, 0.01, 0.1]"))
    refused = run(sweep)
    assert refused.returncode == 2 and "--extend" in refused.stderr
    extended = run([*sweep, "--extend"])
    assert extended.returncode == 0, extended.stderr
    after = {p.name: p.read_bytes() for p in records.glob("*.json")}
    assert len(after) == 6 and all(after[k] == v for k, v in before.items())
    trials = pd.read_parquet(tmp_path / "runs" / "ext" / "trials.parquet")
    assert sorted(trials["lr"].unique()) == [0.001, 0.01, 0.1] and trials["trial_id"].is_unique

    spec.write_text(text.replace("epochs: 1", "epochs: 2"))  # every trial would change
    other = run([*sweep, "--extend"])
    assert other.returncode == 2 and "not in the new spec" in other.stderr
    assert "Traceback" not in other.stderr and len(other.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in records.glob("*.json")} == after
