"""Precise BatchNorm statistics (mixerlab/precise_bn.py): hand-made batches (synthetic) with
known statistics, and the training engine on the synthetic data set."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from mixerlab.checkpoint import config_hash
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from mixerlab.data import load_dataset
from mixerlab.precise_bn import recompute_bn_stats
from mixerlab.spec import load_spec
from mixerlab.sweep.trials import expand
from mixerlab.train import train

SYNTH = DataConfig(name="synthetic", synthetic_size=384)
CONFIRM = Path(__file__).parents[1] / "results" / "mixer_confirm"


def small(**train_kw) -> TrialConfig:
    t = dict(epochs=2, batch_size=32, threads=1, measure_throughput=False, **train_kw)
    return TrialConfig(model=ModelConfig(mixer="conv", patch_size=4, depth=1, width=16),
                       data=SYNTH, train=TrainConfig(**t), seed=3)


@pytest.fixture(scope="module")
def synth():
    return load_dataset(SYNTH)


def _batches(means, n=64, dim=3):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, dim, generator=g) * (1 + i) + m, torch.zeros(n)) for i, m in enumerate(means)]


def test_statistics_are_the_equal_weight_average_of_the_batches():
    bn = nn.BatchNorm1d(3)
    model = nn.Sequential(bn).eval()
    model(torch.randn(8, 3))  # eval: running statistics untouched
    batches = _batches([0.0, 10.0, -4.0])
    assert recompute_bn_stats(model, batches, contextlib.nullcontext()) == 192
    want_mean = torch.stack([x.mean(0) for x, _ in batches]).mean(0)
    want_var = torch.stack([x.var(0, unbiased=True) for x, _ in batches]).mean(0)
    assert torch.allclose(bn.running_mean, want_mean, atol=1e-5)
    assert torch.allclose(bn.running_var, want_var, atol=1e-4)
    # with momentum 0.1 the last batch would dominate (mean near -4, not 2)
    assert bn.momentum == 0.1 and not model.training


def test_a_model_without_batchnorm_or_no_batches_is_left_as_it_was():
    lin = nn.Sequential(nn.Linear(3, 2))
    assert recompute_bn_stats(lin, _batches([1.0]), contextlib.nullcontext()) == 0
    bn = nn.BatchNorm1d(3)
    model = nn.Sequential(bn).train()
    model(torch.randn(16, 3) + 5)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    assert recompute_bn_stats(model, [], contextlib.nullcontext()) == 0
    assert all(torch.equal(before[k], v) for k, v in bn.state_dict().items())
    assert model.training and bn.momentum == 0.1


def test_training_is_the_same_and_only_the_evaluation_reads_new_statistics(synth):
    plain = train(small(), data=synth)
    precise = train(small(precise_bn=64), data=synth)
    # the same batches trained the same weights: precise BN draws its batches apart
    assert [h["train_loss"] for h in precise["history"]] == [h["train_loss"] for h in plain["history"]]
    assert precise["precise_bn"] == 64 and plain["precise_bn"] == 0
    assert config_hash(small()) != config_hash(small(precise_bn=64))


@pytest.mark.skipif(not (CONFIRM / "trials.parquet").exists(), reason="results/mixer_confirm not present")
def test_committed_trials_keep_their_ids():
    """Study 13's spec, expanded now, gives the ids its committed trials were recorded under
    (before the option existed): resume and reproduction still find them."""
    plan = expand(load_spec(CONFIRM / "spec.yaml"), (28, 1, 10))
    recorded = set(pd.read_parquet(CONFIRM / "trials.parquet")["trial_id"])
    assert len(plan.trials) == 12 and {t.trial_id for t in plan.trials} == recorded


def test_precise_bn_must_not_be_negative():
    with pytest.raises(ValueError):
        small(precise_bn=-1)


def test_a_negative_count_is_refused_by_the_cli(run_cli):
    code, _, err = run_cli("train", "--dataset", "synthetic", "--precise-bn", "-1", "--epochs", "1")
    assert code == 2 and "precise_bn" in err and "greater than or equal to 0" in err
    assert "Traceback" not in err
