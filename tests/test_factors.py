"""Every factor a grid may vary is a factor of the analysis: expanded by the sweep, trained,
tabled as a study and reported as a factor with paired tests, never pooled as seeds.

Synthetic data (64 generated images) and tiny models: the subject is the bookkeeping from a
spec to the report, not accuracy."""

from __future__ import annotations

import pytest
import yaml

from mixerlab.analysis import compare, load_study, write_report
from mixerlab.analysis.aggregate import FACTORS
from mixerlab.data import load_dataset
from mixerlab.factors import GRID_FACTORS, analysis_factors, column
from mixerlab.spec import load_spec
from mixerlab.sweep.study import Study
from mixerlab.sweep.trials import expand
from mixerlab.train import train

# Two levels of every grid factor, each valid beside both mixers of the base grid. A factor
# added to the configuration fails test_every_grid_factor_has_levels until it gets its levels.
LEVELS = {
    "model": ["isotropic", "resnet18"],
    "mixer": ["conv", "identity"],
    "patch_size": [2, 4],
    "kernel_size": [3, 5],
    "depth": [1, 2],
    "width": [8, 16],
    "mlp_ratio": [1.0, 2.0],
    "channel_mlp_ratio": [1.0, 3.0],
    "heads": [1, 2],
    "norm": ["batch", "layer"],
    "layout": ["isotropic", "pyramid"],
    "stem": ["patch", "conv"],
    "downsample": ["conv3", "merge2"],
    "image_size": [16, 28],
    "lr": [0.001, 0.01],
    "weight_decay": [0.0, 0.05],
    "batch_size": [32, 64],
    "epochs": [1, 2],
    "schedule": ["onecycle", "constant"],
    "label_smoothing": [0.0, 0.1],
    "grad_clip": [0.5, 1.0],
    "mixup": [0.0, 0.2],
    "cutmix": [0.0, 0.2],
    "ema": [0.5, 0.9],
    "precise_bn": [0, 64],
}
# Where a factor applies only to some models, the base is one it applies to.
CONTEXT = {"heads": {"mixer": ["attention", "identity"]},
           "downsample": {"model": {"layout": "pyramid", "depth": 3}},
           "layout": {"model": {"depth": 3}}}
BASE = {"name": "factor", "question": "Is every varied factor reported as a factor?",
        "dataset": {"name": "synthetic", "synthetic_size": 64},
        "train": {"epochs": 1, "batch_size": 32, "measure_throughput": False},
        "model": {"depth": 1, "width": 8, "heads": 2}, "seeds": 2}


def test_every_grid_factor_has_levels_and_is_an_analysis_factor():
    assert set(LEVELS) == set(GRID_FACTORS), "give LEVELS two values of each grid factor"
    assert {column(f) for f in GRID_FACTORS} <= set(FACTORS) == set(analysis_factors())


def _run(tmp_path, factor: str):
    """Expand a spec varying ``factor`` beside the mixer, train every trial, table them as the
    sweep does (records, then trials.parquet) and report."""
    context = CONTEXT.get(factor, {})
    mixers = context.get("mixer", LEVELS["mixer"])
    grid = {"mixer": mixers} if factor == "mixer" else {"mixer": mixers, factor: LEVELS[factor]}
    model = {**BASE["model"], **context.get("model", {})}
    spec_path = tmp_path / f"{factor}.yaml"
    spec_path.write_text(yaml.safe_dump({**BASE, "name": factor, "model": model, "grid": grid}))
    spec = load_spec(spec_path)
    data = load_dataset(spec.data_config())
    plan = expand(spec, (data.image_size, data.in_chans, data.num_classes), where=str(spec_path))
    study = Study(tmp_path / factor)
    study.records_dir.mkdir(parents=True)
    for trial in plan.trials:
        record = train(trial.config, data=data)
        record.update(trial_id=trial.trial_id, study=factor, **trial.extra)
        study.write_record(record)
    study.write_tables([t.trial_id for t in plan.trials])
    (study.path / "spec.yaml").write_text(spec_path.read_text())
    return plan, study.path


@pytest.mark.slow
@pytest.mark.parametrize("factor", sorted(LEVELS))
def test_a_varied_factor_is_reported_as_a_factor_never_as_seeds(tmp_path, factor):
    plan, path = _run(tmp_path, factor)
    df = load_study(path)
    name = column(factor)
    assert (df["status"] == "ok").all(), df.loc[df["status"] != "ok", "error"].tolist()
    assert df[name].nunique() >= 2, f"{factor}: both levels should be in the table"
    c = compare(df)
    s = c.strata[0]
    assert name in s.keys and s.n_seeds == 2  # two seeds per configuration, not four pooled
    report, _ = write_report([path])
    text = report.read_text()
    assert "up to 2 seed(s) per configuration" in text
    varied = next(line for line in text.splitlines() if line.startswith("- Factors varied:"))
    assert f"{name} (" in varied
    # Every comparison pairs the seeds both arms share: none falls back to Welch's test.
    tests = [t for t in (s.pairs, s.factor_pairs, s.layouts) if len(t)]
    assert tests, f"{factor}: no comparison was made"
    assert all((t["test"] == "paired t").all() for t in tests), f"{factor}: unpaired comparison"
