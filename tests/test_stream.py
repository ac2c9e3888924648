"""The streamed data path (issue 22): choice by memory budget, splits, determinism, resume,
shards. Every image here is synthetic (seeded noise around a class brightness), written in
the real formats (PNG and JPEG files via PIL, tar shards via ``mixerlab shards``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mixerlab.checkpoint import DirCheckpoint, config_hash
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig, parse
from mixerlab.data import Dataset, load_dataset, open_data
from mixerlab.data.path import decoded_gb
from mixerlab.data.stream import CorruptImage, StreamData, open_stream, scan_stream
from mixerlab.data.stream_loader import stream_loaders
from mixerlab.data.workers import loader_workers
from mixerlab.errors import ConfigError
from mixerlab.train import train

SIDE = 16


def write_tree(root: Path, splits: dict[str, int], fmt: str = "png", classes=("ant", "bee", "cat"),
               seed: int = 0) -> Path:
    """Synthetic images: ``root/<split>/<class>/NNN.<fmt>``, class k around brightness 40 + 80 k."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        for k, c in enumerate(classes):
            d = root / split / c if split else root / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                px = (rng.integers(0, 50, (SIDE, SIDE, 3)) + 40 + 80 * k).astype(np.uint8)
                Image.fromarray(px).save(d / f"{i:03d}.{fmt}")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("tree"), {"train": 12, "test": 4})


def cfg_for(root, **kw) -> DataConfig:
    return DataConfig(name=kw.pop("name", "imagefolder"), data_dir=str(root), **kw)


def trial(data: DataConfig, epochs=2, **train_kw) -> TrialConfig:
    t = dict(epochs=epochs, batch_size=8, threads=2, measure_throughput=False, eval_batch_size=16)
    t.update(train_kw)
    return TrialConfig(model=ModelConfig(mixer="conv", patch_size=4, depth=1, width=8),
                       data=data, train=TrainConfig(**t), seed=5)


def batches(loader, seed: int) -> list[torch.Tensor]:
    loader.generator = torch.Generator().manual_seed(seed)
    return [torch.cat([x.flatten(1), y[:, None].float()], 1) for x, y in loader]


def test_unknown_dataset_keys_are_still_rejected():
    with pytest.raises(ConfigError, match="unknown key 'strem'"):
        parse(DataConfig, {"name": "imagefolder", "strem": True}, "dataset")


def test_existing_sources_keep_their_path_and_trial_ids():
    """The new fields at their defaults change neither a trial's id nor its data."""
    cfg = DataConfig(name="synthetic", synthetic_size=64)
    data = open_data(cfg)
    assert isinstance(data, Dataset) and torch.equal(data.train_x, load_dataset(cfg).train_x)
    # The ids these trials had before the streamed fields existed (computed on main at ceaab91).
    assert config_hash(TrialConfig()) == "79956e6d334f"
    folder = DataConfig(name="imagefolder", data_dir="/x", image_size=32)
    assert config_hash(TrialConfig(data=folder, seed=2)) == "49b616fbe5dc"
    base = TrialConfig(data=cfg)
    moved = base.model_copy(update={"data": cfg.model_copy(update={"workers": 3})})
    assert config_hash(moved) == config_hash(base)
    streamed = base.model_copy(update={"data": cfg.model_copy(update={"stream": True})})
    assert config_hash(streamed) != config_hash(base)
    with pytest.raises(ConfigError, match="synthetic has no streamed reader"):
        open_data(cfg.model_copy(update={"stream": True}))


def test_budget_chooses_the_path_with_one_notice(tree, capsys):
    src = scan_stream(cfg_for(tree))
    assert decoded_gb(cfg_for(tree), src) == pytest.approx(48 * SIDE * SIDE * 3 / 1e9)
    assert isinstance(open_data(cfg_for(tree)), Dataset)  # 37 kB: fits the default budget
    assert capsys.readouterr().err == ""
    data = open_data(cfg_for(tree, memory_budget_gb=1e-5))
    assert isinstance(data, StreamData)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "over dataset.memory_budget_gb" in err[0], err
    with pytest.raises(ConfigError, match="no path fits"):
        open_data(cfg_for(tree, memory_budget_gb=1e-5, stream=False))
    with pytest.raises(ConfigError, match="streamed path only"):
        open_data(cfg_for(tree, randaugment="rand-m9-mstd0.5"))


@pytest.mark.parametrize("layout", ["test-folder", "held-out"])
def test_streamed_split_is_the_in_memory_split(layout, tree, tmp_path):
    root = tree if layout == "test-folder" else write_tree(tmp_path, {"": 10})
    cfg = cfg_for(root, val_fraction=0.25, split_seed=3)
    mem, st = load_dataset(cfg), open_stream(cfg)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(mem, f"{split}_y"), getattr(st, f"{split}_y")), split
    assert (st.image_size, st.in_chans, st.classes) == (mem.image_size, mem.in_chans, mem.classes)
    other = st.for_trial(cfg.model_copy(update={"split_per_seed": True}), seed=9)
    assert not torch.equal(other.train_idx, st.train_idx)  # its own seed draws its own split


def test_an_epoch_depends_on_its_seed_not_on_the_workers(tree):
    data = open_stream(cfg_for(tree))
    loaders = {w: stream_loaders(data, cfg_for(tree), SIDE, 8, 16, workers=w, device="cpu",
                                 channels_last=False)[0] for w in (0, 2)}
    zero, two = batches(loaders[0], 11), batches(loaders[2], 11)
    assert len(zero) == 4 and all(torch.equal(a, b) for a, b in zip(zero, two))
    again, other = batches(loaders[0], 11), batches(loaders[0], 12)
    assert all(torch.equal(a, b) for a, b in zip(zero, again))
    assert not torch.equal(zero[0], other[0])  # another epoch seed: another order and crops
    # Augmented: the training stream is not the evaluation transform of the same images.
    plain = stream_loaders(open_stream(cfg_for(tree, augment=False)), cfg_for(tree), SIDE, 8, 16,
                           workers=0, device="cpu", channels_last=False)[0]
    assert not torch.equal(batches(plain, 11)[0], zero[0])


def test_resumed_trial_equals_the_undisturbed_one(tree, tmp_path):
    """2 epochs straight vs 1 epoch, a checkpoint, and 1 more: bit-identical on CPU."""
    cfg = trial(cfg_for(tree, stream=True))
    states = {}
    full = train(cfg, on_epoch=lambda row, s: states.setdefault(("full", row["epoch"]), s))

    class Killed(Exception):
        pass

    ckpt = DirCheckpoint(tmp_path, cfg)

    def die_after_one(row, state):
        ckpt.save(state)
        raise Killed

    with pytest.raises(Killed):
        train(cfg, on_epoch=die_after_one)
    resumed = train(cfg, checkpoint=DirCheckpoint(tmp_path, cfg),
                    on_epoch=lambda row, s: states.setdefault(("resumed", row["epoch"]), s))
    assert resumed["resumed_from_epoch"] == 1 and resumed["data_path"] == "stream"
    for k in ("train_loss", "val_acc", "val_loss", "test_acc", "test_loss"):
        assert resumed[k] == full[k], k
    a, b = states[("full", 2)]["model"], states[("resumed", 2)]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["loader_workers"] == 1  # threads 2: one worker, one for the step


def test_recipe_augmentation_and_record(tree):
    """RandAugment, random erasing and timm's Mixup/CutMix run on the streamed path."""
    cfg = trial(cfg_for(tree, stream=True, randaugment="rand-m9-mstd0.5", random_erasing=0.25,
                        workers=0), epochs=1, mixup=0.2, cutmix=0.2)
    rec = train(cfg)
    assert rec["status"] == "ok", rec["error"]
    assert (rec["data_path"], rec["randaugment"], rec["random_erasing"]) == (
        "stream", "rand-m9-mstd0.5", 0.25)
    schema = (Path(__file__).parents[1] / "docs/results-schema.md").read_text()
    for col in ("data_path", "loader_workers", "randaugment", "random_erasing", "crop_pct"):
        assert f"`{col}`" in schema, col
    in_memory = train(trial(cfg_for(tree), epochs=1))
    assert "data_path" not in in_memory and "randaugment" not in in_memory


def test_workers_count_in_the_cpus():
    assert loader_workers(None, 4) == 3 and loader_workers(None, 1) == 0
    assert loader_workers(2, 3) == 2
    with pytest.raises(ConfigError, match="raise resources.cpu to 3"):
        loader_workers(2, 2)


def test_shards_stream_the_folder_bit_for_bit(tree, tmp_path, run_cli):
    out = tmp_path / "shards"
    code, _, err = run_cli("shards", tree, out, "--shard-size", "10")
    assert code == 0, err
    assert "6/6 shards" in err.splitlines()[-2]  # 36 train + 12 test at 10 a shard
    folder, shards = open_stream(cfg_for(tree)), open_stream(cfg_for(out, name="shards"))
    assert shards.classes == folder.classes and torch.equal(shards.test_y, folder.test_y)
    cfg = cfg_for(tree)
    lf = stream_loaders(folder, cfg, SIDE, 8, 16, workers=0, device="cpu", channels_last=False)
    ls = stream_loaders(shards, cfg, SIDE, 8, 16, workers=1, device="cpu", channels_last=False)
    for f, s in zip(lf, ls):
        assert all(torch.equal(a, b) for a, b in zip(batches(f, 4), batches(s, 4)))


def test_shards_resume_a_partial_run(tree, tmp_path, run_cli):
    out = tmp_path / "shards"
    assert run_cli("shards", tree, out, "--shard-size", "16")[0] == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "train-000001.tar").rename(out / "train-000001.tar.tmp")  # as if killed mid-shard
    (out / "train-000001.tar.tmp").write_bytes(b"half")
    code, _, err = run_cli("shards", tree, out, "--shard-size", "16")
    assert code == 0 and "3 skipped" in err.splitlines()[-2], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # rewritten, no .tmp left


def test_corrupt_jpeg_fails_the_trial_naming_it(tmp_path):
    root = write_tree(tmp_path, {"train": 8}, fmt="jpg")
    bad = root / "train" / "bee" / "003.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated: the header reads, the pixels do not
    cfg = trial(cfg_for(root, stream=True, workers=1), epochs=1)
    with pytest.raises(CorruptImage, match=str(bad)):
        train(cfg)


def test_dry_run_times_the_loader_and_names_the_bound(tree, tmp_path, run_cli):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: s\nquestion: q?\ndataset: {{name: imagefolder, data_dir: {tree}, stream: true}}\n"
                    "train: {epochs: 1, batch_size: 8}\nmodel: {depth: 1, width: 8}\n"
                    "grid: {mixer: [conv, identity], patch_size: [4]}\nresources: {cpu: 2}\n")
    code, out, err = run_cli("sweep", spec, "--dry-run")
    assert code == 0, err
    table = [line.split() for line in out.splitlines() if line.split()[:1] in (["variant"], ["conv"],
                                                                              ["identity"])]
    header, *rows = table
    assert header[-4:] == ["loader_img_s", "model_img_s", "bound", "est_trial_s"], header
    assert len(rows) == 2 and all(r[-2] in ("loader", "model") for r in rows), (out, rows)
    assert all(float(r[-4].replace(",", "")) > 0 for r in rows), rows


def test_crop_pct_one_gives_the_in_memory_pixels(tree):
    """With crop_pct 1.0 the evaluation transform keeps the whole image: the streamed test
    batches, un-normalised, are the in-memory path's images (what ablations/stream*.yaml's
    comparison of the two paths rests on); timm's default 0.875 crops the border."""
    memory = open_data(cfg_for(tree, crop_pct=1.0))  # in memory (within budget), accepted
    assert isinstance(memory, Dataset)

    def first_test_batch(crop_pct):
        cfg = cfg_for(tree, stream=True, crop_pct=crop_pct)
        data = open_stream(cfg)
        test = stream_loaders(data, cfg, SIDE, 8, 64, workers=0, device="cpu",
                              channels_last=False)[2]
        x, _ = next(iter(test))
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (data.mean, data.std))
        return (x * std + mean) * 255

    whole = first_test_batch(1.0)
    assert torch.allclose(whole, memory.test_x.float(), atol=1e-3)
    assert not torch.allclose(first_test_batch(None), memory.test_x.float(), atol=1.0)
    with pytest.raises(ConfigError, match="dataset.crop_pct: applies to the streamed path only"):
        open_data(cfg_for(tree, crop_pct=0.9))
    with pytest.raises(ConfigError, match="crop_pct"):
        parse(DataConfig, {"name": "imagefolder", "crop_pct": 1.5}, "dataset")
