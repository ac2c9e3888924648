"""``split_per_seed``: each trial draws its validation split and training subset from its seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mixerlab.checkpoint import config_hash
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from mixerlab.data import load_dataset, resized, split_for_seed
from mixerlab.errors import ConfigError
from mixerlab.spec import load_spec
from mixerlab.sweep.trials import expand
from mixerlab.train import train

SYNTH = dict(name="synthetic", synthetic_size=400, train_subset=120)


def key(data) -> tuple:
    """The images of each split, as one hashable fingerprint."""
    return tuple(int(x.double().sum()) for x in (data.train_x, data.val_x)) + (data.train_y.tolist(),)


def test_default_shares_one_split_whatever_the_seed():
    cfg = DataConfig(**SYNTH)
    data = load_dataset(cfg)
    assert data.split_seed == 0 and data.pool_x is None
    assert split_for_seed(data, cfg, 1) is data and split_for_seed(data, cfg, 7) is data


def test_per_seed_two_seeds_draw_two_subsets_with_the_same_counts():
    cfg = DataConfig(**SYNTH, split_per_seed=True)
    shared = load_dataset(cfg)
    assert len(shared.pool_y) > len(shared.train_y) + len(shared.val_y)  # the whole training set
    a, b, a2 = (split_for_seed(shared, cfg, s) for s in (1, 2, 1))
    assert key(a) != key(b) and key(a) == key(a2)  # its own draw, reproducible
    assert a.split_seed == 1 and b.split_seed == 2 and a.pool_x is None
    assert len(a.train_y) == len(b.train_y) == 120 and len(a.val_y) == len(b.val_y)
    assert torch.equal(torch.bincount(a.train_y), torch.bincount(b.train_y))  # stratified alike
    assert torch.equal(a.test_x, shared.test_x)  # the test set never moves
    # Seed 0 drawn from the pool equals the default split (split_seed 0): same rule, same images.
    default = load_dataset(DataConfig(**SYNTH))
    assert key(split_for_seed(shared, cfg, 0)) == key(default)


def test_per_seed_survives_the_per_trial_resize():
    cfg = DataConfig(**SYNTH, split_per_seed=True)
    big = resized(load_dataset(cfg), 32)
    assert big.pool_x.shape[-1] == 32
    assert split_for_seed(big, cfg, 3).train_x.shape[1:] == (1, 32, 32)


def test_a_data_set_without_its_pool_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="split_per_seed: .* without its training pool"):
        split_for_seed(load_dataset(DataConfig(**SYNTH)), DataConfig(**SYNTH, split_per_seed=True), 1)


def _trial(seed: int, **data) -> TrialConfig:
    return TrialConfig(model=ModelConfig(patch_size=4, depth=1, width=8), data=DataConfig(**SYNTH, **data),
                       train=TrainConfig(epochs=1, batch_size=32, threads=1, measure_throughput=False),
                       seed=seed)


def test_the_record_shows_the_split_seed_actually_used():
    shared = load_dataset(DataConfig(**SYNTH, split_per_seed=True))
    rec = train(_trial(5, split_per_seed=True), data=shared)
    assert rec["split_seed"] == 5 and rec["split_per_seed"] is True
    default = train(_trial(5))
    assert default["split_seed"] == 0 and "split_per_seed" not in default  # default records unchanged


def test_the_default_leaves_trial_ids_as_they_were():
    """Committed trials are found by id; a field at its default must not change it."""
    spec_path = Path(__file__).parents[1] / "results" / "quick" / "spec.yaml"
    plan = expand(load_spec(spec_path), (28, 1, 10))
    committed = {p.stem for p in (spec_path.parent / "records").glob("*.json")}
    assert committed and committed == {t.trial_id for t in plan.trials}
    assert config_hash(_trial(1)) == config_hash(_trial(1, split_per_seed=False))
    assert config_hash(_trial(1)) != config_hash(_trial(1, split_per_seed=True))
    cfg = _trial(1)
    assert config_hash(cfg.model_copy(update={"model": cfg.model.model_copy(update={"downsample": "merge2"})})) \
        != config_hash(cfg)


def test_cli_train_split_per_seed(run_cli):
    code, out, err = run_cli("train", "--dataset", "synthetic", "--epochs", "2", "--depth", "1",
                             "--width", "8", "--patch-size", "7", "--seed", "4", "--split-per-seed", "--json")
    rec = json.loads(out)
    assert code == 0, err
    assert rec["split_seed"] == 4 and rec["split_per_seed"] is True and "val_gain_last20" in rec
