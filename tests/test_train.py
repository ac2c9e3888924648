"""The single-trial engine on synthetic data (unit tests) and, once, on real Fashion-MNIST."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from mixerlab.checkpoint import DirCheckpoint
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from mixerlab.data import load_dataset, resized
from mixerlab.models.mixers import registry
from mixerlab.train import train

SYNTH = DataConfig(name="synthetic", synthetic_size=384)


def small(**train_kw) -> TrialConfig:
    t = dict(epochs=2, batch_size=32, threads=1, measure_throughput=False)
    t.update(train_kw)
    return TrialConfig(model=ModelConfig(mixer="conv", patch_size=4, depth=1, width=16),
                       data=SYNTH, train=TrainConfig(**t), seed=3)


@pytest.fixture(scope="module")
def synth():
    return load_dataset(SYNTH)


def test_record_is_flat_and_complete(synth):
    rec = train(small(measure_throughput=True), data=synth)
    schema = (Path(__file__).parents[1] / "docs/results-schema.md").read_text()
    for col in ("status", "variant", "mixer", "patch_size", "kernel_size", "depth", "width", "lr",
                "seed", "val_acc", "best_val_acc", "test_acc", "test_loss", "params", "macs",
                "flops", "train_time_s", "train_images_per_s", "infer_images_per_s", "peak_mem_mb",
                "device_name", "torch_version", "timm_version", "mixerlab_version", "git_commit"):
        assert col in rec, col
        assert f"`{col}`" in schema, f"{col} is not documented in docs/results-schema.md"
    assert rec["status"] == "ok" and rec["epochs_run"] == 2 and len(rec["history"]) == 2
    assert rec["dataset"] == "synthetic" and rec["synthetic"] is True
    assert 0 <= rec["test_acc"] <= 100 and rec["infer_images_per_s"] > 0
    assert rec["heads"] is None  # does not apply to the conv mixer
    json.dumps(rec)  # serialisable as is


def test_a_trial_asking_for_another_image_size_resizes_the_shared_data(synth):
    # Sweeps hand every trial the data set loaded once; a trial whose config asks for 16 px
    # (a grid factor) must train on 14 px images, exactly as if it had been given them.
    cfg = small()
    cfg.data = SYNTH.model_copy(update={"image_size": 16})
    rec = train(cfg, data=synth)
    same = train(small(), data=resized(synth, 16))
    assert rec["image_size"] == 16 and synth.image_size == 28
    assert rec["macs"] == same["macs"] < train(small(), data=synth)["macs"]
    assert rec["test_acc"] == same["test_acc"] and rec["val_loss"] == same["val_loss"]


def test_learns_the_synthetic_task(synth):
    rec = train(small(epochs=6, lr=1e-2), data=synth)
    assert rec["history"][-1]["train_loss"] < rec["history"][0]["train_loss"]
    assert rec["best_val_acc"] > 100 / synth.num_classes + 15  # well above chance


def test_deterministic_on_cpu(synth):
    a, b = train(small(), data=synth), train(small(), data=synth)
    keys = ("val_acc", "test_acc", "test_loss", "train_loss")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_seed_changes_the_result(synth):
    a = train(small(), data=synth)
    b = train(small().model_copy(update={"seed": 4}), data=synth)
    assert a["train_loss"] != b["train_loss"]


def test_divergence_is_recorded_not_raised(synth):
    rec = train(small(lr=1e9, grad_clip=None, epochs=3), data=synth)
    assert rec["status"] == "diverged" and "loss became" in rec["error"]
    assert math.isnan(rec["test_acc"]) and rec["params"] > 0 and rec["epochs_run"] < 3


@pytest.fixture
def oom_mixer():
    """A real mixer that raises torch's real OutOfMemoryError on its third training step."""

    class OomOnThirdStep(nn.Module):
        def __init__(self, dim, grid):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            if self.training:
                self.calls += 1
                if self.calls == 3:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return x

    registry.register_mixer("test_oom")(OomOnThirdStep)
    yield "test_oom"
    registry._MIXERS.pop("test_oom")


def test_oom_is_recorded_not_raised(synth, oom_mixer):
    cfg = small()
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"mixer": oom_mixer})})
    rec = train(cfg, data=synth)
    assert rec["status"] == "oom" and "out of memory" in rec["error"]
    assert rec["params"] > 0 and rec["variant"] == oom_mixer


def test_resume_gives_the_uninterrupted_result(synth, tmp_path):
    full = train(small(epochs=3), data=synth)

    class Killed(Exception):
        pass

    ckpt = DirCheckpoint(tmp_path, small(epochs=3))

    def die_after_two(row, state):
        ckpt.save(state)
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train(small(epochs=3), data=synth, on_epoch=die_after_two)
    resumed = train(small(epochs=3), data=synth, checkpoint=DirCheckpoint(tmp_path, small(epochs=3)))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    for k in ("val_acc", "test_acc", "test_loss", "train_loss"):
        assert resumed[k] == full[k], k


def test_checkpoint_of_another_config_is_refused(synth, tmp_path):
    from mixerlab.errors import ConfigError

    DirCheckpoint(tmp_path, small()).save({"epoch": 1})
    with pytest.raises(ConfigError, match="different configuration"):
        DirCheckpoint(tmp_path, small(lr=0.1)).load()


@pytest.mark.parametrize("extra", [dict(mixup=0.2, cutmix=1.0), dict(ema=0.9), dict(schedule="cosine")])
def test_recipe_options_run(synth, extra):
    rec = train(small(epochs=1, **extra), data=synth)
    assert rec["status"] == "ok" and math.isfinite(rec["test_loss"])


def test_cli_train_json_and_out(tmp_path, run_cli):
    code, out, err = run_cli("train", "--dataset", "synthetic", "--epochs", "1", "--depth", "1",
                             "--width", "8", "--patch-size", "7", "--json", "--out", tmp_path / "run")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["status"] == "ok" and rec["epochs_run"] == 1
    assert (tmp_path / "run" / "record.json").exists() and (tmp_path / "run" / "checkpoint.pt").exists()
    # re-running the same command resumes: nothing left to train
    code, out, err = run_cli("train", "--dataset", "synthetic", "--epochs", "1", "--depth", "1",
                             "--width", "8", "--patch-size", "7", "--json", "--out", tmp_path / "run")
    assert code == 0 and "resuming" in err and json.loads(out)["test_acc"] == rec["test_acc"]
