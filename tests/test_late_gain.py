"""late_gain on hand-made histories, and its place in every trial's record."""

from __future__ import annotations

import math

import pytest

from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from mixerlab.late_gain import (
    LATE_GAIN_KEY,
    STILL_CLIMBING,
    late_epoch,
    late_gain,
    still_climbing,
)
from mixerlab.train import train


def curve(*accs: float) -> list[dict]:
    return [{"epoch": i + 1, "val_acc": a} for i, a in enumerate(accs)]


@pytest.mark.parametrize("epochs,k80", [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (8, 6), (10, 8),
                                        (12, 10), (20, 16), (100, 80)])
def test_the_epoch_at_80_percent_is_round_08_e_at_least_one_back(epochs, k80):
    assert late_epoch(epochs) == k80


def test_late_gain_is_final_minus_the_80_percent_epoch_in_points():
    ten = curve(50, 60, 70, 75, 80, 82, 84, 85.0, 86.5, 87.25)
    assert late_gain(ten) == pytest.approx(87.25 - 85.0)  # epoch 10 minus epoch 8
    assert late_gain(curve(80, 82, 83, 83.5, 84)) == pytest.approx(0.5)  # 5 epochs: 5 minus 4
    assert late_gain(curve(70, 75)) == pytest.approx(5.0)  # 2 epochs: 2 minus 1
    assert late_gain(curve(90, 89, 88)) == pytest.approx(-1.0)  # falling: negative, 3 minus 2


def test_late_gain_is_nan_without_two_epochs_or_a_validation_set():
    assert math.isnan(late_gain([]))
    assert math.isnan(late_gain(curve(90.0)))
    assert math.isnan(late_gain(curve(float("nan"), float("nan"), float("nan"))))


def test_still_climbing_threshold():
    assert STILL_CLIMBING == 0.5
    assert still_climbing(0.51) and not still_climbing(0.5) and not still_climbing(-2.0)
    assert not still_climbing(float("nan"))


def test_every_trial_records_its_late_gain():
    cfg = TrialConfig(model=ModelConfig(patch_size=4, depth=1, width=8),
                      data=DataConfig(name="synthetic", synthetic_size=128),
                      train=TrainConfig(epochs=3, batch_size=32, threads=1, measure_throughput=False))
    rec = train(cfg)
    h = rec["history"]
    assert rec[LATE_GAIN_KEY] == pytest.approx(h[2]["val_acc"] - h[1]["val_acc"])
