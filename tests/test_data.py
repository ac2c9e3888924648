"""The data layer: every source on files written here in the real formats, the split and
subset rules, the not-found message, and the batched device pipeline.

Nothing here touches the network: downloads are replaced by a stand-in that fails (or
serves local files), exactly as an offline machine would behave.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from mixerlab.config import DataConfig
from mixerlab.data import (
    DeviceLoader,
    list_datasets,
    load_dataset,
    make_loaders,
    pixel_stats,
    resized,
)
from mixerlab.data import idx as idx_source
from mixerlab.data.split import allocate, split_indices
from mixerlab.errors import ConfigError, DataNotFoundError

FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = idx_source.FILES


# ---- writers of the real formats ------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """IDX: 0x0000, type 0x08 (ubyte), ndim, big-endian uint32 sizes, then the bytes."""
    data = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def make_idx(folder: Path, n_train=200, n_test=50, gz=True, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10,
              rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10)
    for stem, a in zip(IDX_FILES, arrays):
        write_idx(folder / (stem + (".gz" if gz else "")), a, gz)
    return folder


def make_cifar(root: Path, name: str, n=20) -> Path:
    """The python-pickle layout: bytes keys, (N, 3072) uint8 rows, channel-major."""
    rng = np.random.default_rng(1)
    k, sub, label_key, names_key, meta = (
        (10, "cifar-10-batches-py", b"labels", b"label_names", "batches.meta") if name == "cifar10"
        else (100, "cifar-100-python", b"fine_labels", b"fine_label_names", "meta"))
    folder = root / sub
    folder.mkdir(parents=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10" \
        else ["train", "test"]
    for f in files:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        data[0] = np.arange(3072) % 256  # a known image, to check the channel-major layout
        batch = {b"data": data, label_key: [int(i) % k for i in range(n)], b"batch_label": b"x"}
        (folder / f).write_bytes(pickle.dumps(batch))
    names = {names_key: [f"class{i}".encode() for i in range(k)]}
    (folder / meta).write_bytes(pickle.dumps(names))
    return folder


def make_pngs(root: Path, counts: dict[str, int], size=(12, 12), mode="L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(2)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / cls / f"{i}.png")
    return root


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No data anywhere and no network: an empty HOME, no MIXERLAB_DATA, downloads refused."""
    from torchvision.datasets import utils

    def refuse(url, *a, **k):
        raise urllib.error.URLError("network unreachable (test stand-in)")

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("MIXERLAB_DATA", raising=False)
    monkeypatch.delenv("MIXERLAB_OFFLINE", raising=False)
    monkeypatch.setattr(idx_source, "DEBIAN_ROOT", tmp_path / "debian")
    monkeypatch.setattr(utils, "download_url", refuse)
    return tmp_path


# ---- registry and sources --------------------------------------------------------------------

def test_registry_names_every_source_and_rejects_unknown_ones():
    assert {"fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "synthetic"} <= set(list_datasets())
    with pytest.raises(ConfigError, match="imagenet-22k.*fashion-mnist.*synthetic"):
        load_dataset(DataConfig(name="imagenet-22k"))


@pytest.mark.parametrize("name,flip", [("fashion-mnist", True), ("mnist", False)])
def test_idx_sources_read_the_real_format(tmp_path, offline, name, flip):
    make_idx(tmp_path / "d")
    d = load_dataset(DataConfig(name=name, data_dir=str(tmp_path / "d")))
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (180, 20, 50)
    assert d.train_x.shape[1:] == (1, 28, 28) and d.train_x.dtype == torch.uint8
    assert (d.num_classes, d.in_chans, d.image_size) == (10, 1, 28)
    assert (d.crop_padding, d.flip) == (2, flip)  # digits are never mirrored
    raw = torch.from_numpy(idx_source.read_idx(tmp_path / "d" / "t10k-images-idx3-ubyte.gz").copy())
    assert torch.equal(d.test_x[:, 0], raw)


def test_idx_search_order_env_subfolder_and_plain_files(tmp_path, offline, monkeypatch):
    make_idx(tmp_path / "env" / "mnist", gz=False, seed=5)
    make_idx(tmp_path / "home" / ".cache" / "mixerlab" / "mnist", seed=6)  # found later
    monkeypatch.setenv("MIXERLAB_DATA", str(tmp_path / "env"))
    d = load_dataset(DataConfig(name="mnist"))
    assert d.source == str(tmp_path / "env" / "mnist")


@pytest.mark.parametrize("content,why", [(b"\x00\x00\x0f\x03" + b"\0" * 20, "magic"),
                                         (b"PK\x03\x04 a zip file", "magic"),
                                         (b"\x1f\x8b not really gzip", "cannot read"),
                                         (b"\x00\x00\x08\x01\x00\x00\x00\x10abc", "truncated")])
def test_corrupt_idx_is_a_config_error_naming_the_file(tmp_path, offline, content, why):
    folder = make_idx(tmp_path / "d")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(content)
    with pytest.raises(ConfigError, match=f"train-labels-idx1-ubyte.gz.*{why}.*delete it"):
        load_dataset(DataConfig(name="fashion-mnist", data_dir=str(folder)))


def test_missing_data_names_every_place_and_the_fix(offline, monkeypatch):
    monkeypatch.setenv("MIXERLAB_DATA", str(offline / "shared"))
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(DataConfig(name="fashion-mnist", data_dir=str(offline / "mine")))
    msg = str(err.value)
    for place in ("mine", "mine/fashion-mnist", "shared", "shared/fashion-mnist",
                  "debian/fashion-mnist", "home/.cache/mixerlab/fashion-mnist"):
        assert str(offline / place) in msg, place
    assert "network unreachable" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "--data-dir" in msg and "MIXERLAB_DATA" in msg and "\n" not in msg
    assert not (offline / "home" / ".cache").exists(), "a failed download leaves nothing"
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py.*--data-dir"):
        load_dataset(DataConfig(name="cifar10"))


def test_download_fills_the_cache(offline, monkeypatch):
    """The download path with a local 'mirror': files land in the cache and are read from there."""
    from torchvision.datasets import utils

    mirror = make_idx(offline / "mirror")
    monkeypatch.setattr(utils, "download_url", lambda url, root, filename, md5: (
        Path(root).mkdir(parents=True, exist_ok=True),
        (Path(root) / filename).write_bytes((mirror / filename).read_bytes())))
    d = load_dataset(DataConfig(name="mnist"))
    assert d.source == str(offline / "home" / ".cache" / "mixerlab" / "mnist")
    assert len(d.test_y) == 50 and not list((offline / "home" / ".cache" / "mixerlab").glob(".*part"))


@pytest.mark.parametrize("name,k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_reads_the_pickle_layout(tmp_path, offline, name, k):
    folder = make_cifar(tmp_path / "c", name)
    n_train = 100 if name == "cifar10" else 20
    for data_dir in (tmp_path / "c", folder):  # the parent or the batch folder itself
        d = load_dataset(DataConfig(name=name, data_dir=str(data_dir), val_fraction=0.2))
        assert (len(d.train_y) + len(d.val_y), len(d.test_y), d.num_classes) == (n_train, 20, k)
        assert d.classes[:2] == ["class0", "class1"] and d.train_x.shape[1:] == (3, 32, 32)
        assert (d.crop_padding, d.flip, d.source) == (4, True, str(folder))
    c, h, w = 2, 5, 7  # data row = R(1024) G(1024) B(1024), each row-major
    assert d.test_x[0, c, h, w] == (c * 1024 + h * 32 + w) % 256


def test_imagefolder_with_and_without_a_test_folder(tmp_path):
    make_pngs(tmp_path / "a" / "train", {"cat": 10, "dog": 10})
    make_pngs(tmp_path / "a" / "test", {"cat": 2, "dog": 3})
    d = load_dataset(DataConfig(name="imagefolder", data_dir=str(tmp_path / "a"), val_fraction=0.1))
    assert d.classes == ["cat", "dog"] and (len(d.train_y), len(d.val_y), len(d.test_y)) == (18, 2, 5)
    assert d.train_x.shape[1:] == (1, 12, 12) and (d.crop_padding, d.flip) == (1, True)
    allx = torch.cat([d.train_x, d.val_x])
    assert d.mean == pytest.approx(pixel_stats(allx)[0], abs=0.05)  # stats of the training pool
    assert d.describe()["notes"] == ""

    make_pngs(tmp_path / "b", {"x": 10, "y": 10, "z": 5}, size=(20, 16), mode="RGB")
    with pytest.raises(ConfigError, match="image_size"):  # not square
        load_dataset(DataConfig(name="imagefolder", data_dir=str(tmp_path / "b")))
    d = load_dataset(DataConfig(name="imagefolder", data_dir=str(tmp_path / "b"), image_size=16))
    assert len(d.test_y) == 5 and torch.bincount(d.test_y).tolist() == [2, 2, 1]  # stratified 20%
    assert d.train_x.shape[1:] == (3, 16, 16) and "held out as the test set" in d.describe()["notes"]
    with pytest.raises(ConfigError, match="--data-dir"):
        load_dataset(DataConfig(name="imagefolder"))


# ---- split, subset, resize, augmentation switch -----------------------------------------------

def test_validation_split_is_exact_stratified_disjoint_and_deterministic():
    y = torch.arange(1000) % 10
    train, val = split_indices(y, 0.1, None, seed=0)
    assert len(val) == 100 and torch.bincount(y[val]).tolist() == [10] * 10
    assert set(train.tolist()).isdisjoint(val.tolist()) and len(train) + len(val) == 1000
    assert torch.equal(val, split_indices(y, 0.1, None, seed=0)[1])
    assert not torch.equal(val, split_indices(y, 0.1, None, seed=1)[1])
    # The validation set does not depend on the subset size.
    assert torch.equal(val, split_indices(y, 0.1, 50, seed=0)[1])
    assert allocate(torch.tensor([5, 3, 2]), 3).tolist() == [1, 1, 1]  # largest remainders
    assert allocate(torch.tensor([6, 3, 1]), 5).tolist() == [3, 2, 0]  # a tie: lower class
    assert split_indices(y, 0.0, None, seed=0)[1].numel() == 0


def test_split_on_unique_images_leaks_nothing():
    cfg = DataConfig(name="synthetic", synthetic_size=400, val_fraction=0.25)
    d = load_dataset(cfg)
    rows = lambda x: {bytes(r) for r in x.flatten(1).numpy()}  # noqa: E731
    assert len(rows(d.train_x)) == len(d.train_x) == 300  # images are unique
    assert rows(d.train_x).isdisjoint(rows(d.val_x)) and len(d.val_y) == 100
    again = load_dataset(cfg)
    assert torch.equal(again.val_x, d.val_x) and torch.equal(again.train_y, d.train_y)
    # The synthetic label is a function of the image: its brightness band.
    assert torch.equal(d.train_x.flatten(1).float().mean(1).div(64).floor().long(), d.train_y)


def test_train_subset_is_balanced_and_bounded():
    d = load_dataset(DataConfig(name="synthetic", synthetic_size=800, train_subset=40))
    assert len(d.train_y) == 40 and torch.bincount(d.train_y).tolist() == [10] * 4
    assert len(d.val_y) == 80  # the validation split is untouched
    with pytest.raises(ConfigError, match="train_subset.*720"):
        load_dataset(DataConfig(name="synthetic", synthetic_size=800, train_subset=721))


def test_augment_switch_and_resize(tmp_path, offline):
    s = lambda **kw: load_dataset(DataConfig(name="synthetic", synthetic_size=64, **kw))  # noqa: E731
    assert (s().crop_padding, s().flip) == (0, False)  # synthetic: off unless asked
    assert (s(augment=True).crop_padding, s(augment=True).flip) == (2, True)
    make_idx(tmp_path / "d")
    f = lambda **kw: load_dataset(DataConfig(name="fashion-mnist", data_dir=str(tmp_path / "d"), **kw))  # noqa: E731
    assert (f(augment=False).crop_padding, f(augment=False).flip) == (0, False)
    big = f(image_size=56)
    assert big.image_size == 56 and big.test_x.shape[1:] == (1, 56, 56)
    assert big.crop_padding == 4 and "resized from 28 to 56" in big.describe()["notes"]



def test_a_shared_data_set_resized_per_trial_equals_one_loaded_at_that_size(tmp_path, offline):
    # A sweep loads the data once; a trial whose image_size differs resizes its copy. It must
    # get exactly what loading at that size gives: pixels, labels, crop padding.
    make_idx(tmp_path / "d")
    f = lambda **kw: load_dataset(DataConfig(name="fashion-mnist", data_dir=str(tmp_path / "d"), **kw))  # noqa: E731
    native = f()
    for size in (7, 14):
        shared, direct = resized(native, size), f(image_size=size)
        assert shared.image_size == size and shared.crop_padding == direct.crop_padding
        for split in ("train", "val", "test"):
            assert torch.equal(getattr(shared, f"{split}_x"), getattr(direct, f"{split}_x"))
            assert torch.equal(getattr(shared, f"{split}_y"), getattr(direct, f"{split}_y"))
        assert f"resized from 28 to {size} px" in shared.describe()["notes"]
    assert resized(native, 28) is native
    assert native.image_size == 28  # the shared copy is never changed in place

# ---- the device pipeline --------------------------------------------------------------------

def _indexed(n=70, c=1, size=8):
    """Unique, left-right asymmetric images whose label is their own index."""
    x = torch.randint(0, 256, (n, c, size, size), generator=torch.Generator().manual_seed(0),
                      dtype=torch.uint8)
    return x, torch.arange(n)


def _raw(xb, mean=0.0, std=1.0):
    return torch.round((xb * std + mean) * 255).to(torch.uint8)


def test_loader_shapes_lengths_and_eval_order():
    x, y = _indexed(70)
    ev = DeviceLoader(x, y, 32, mean=(0.0,), std=(1.0,), train=False)
    batches = list(ev)
    assert len(ev) == len(batches) == 3 and [len(b[1]) for b in batches] == [32, 32, 6]
    xb, yb = batches[0]
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64 and xb.shape == (32, 1, 8, 8)
    assert torch.equal(torch.cat([b[1] for b in batches]), y)  # in order, nothing dropped
    assert torch.equal(_raw(torch.cat([b[0] for b in batches])), x)  # and untouched
    tr = DeviceLoader(x, y, 32, mean=(0.0,), std=(1.0,), train=True)
    assert len(tr) == len(list(tr)) == 2  # the partial batch is dropped when training
    assert len(DeviceLoader(x[:0], y[:0], 32, mean=(0.0,), std=(1.0,), train=False)) == 0


def test_loader_is_deterministic_and_covers_every_sample_once():
    x, y = _indexed(70)
    kw = dict(mean=(0.5,), std=(0.25,), train=True, crop_padding=2, flip=True, drop_last=False)
    epoch = lambda seed: list(DeviceLoader(x, y, 16, generator=torch.Generator().manual_seed(seed), **kw))  # noqa: E731
    a, b, c = epoch(1), epoch(1), epoch(2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(torch.cat([p[1] for p in a]), torch.cat([p[1] for p in c]))
    seen = torch.cat([p[1] for p in a])
    assert sorted(seen.tolist()) == list(range(70))


def test_augmentation_is_a_crop_and_flip_of_the_source_image():
    x, y = _indexed(200, c=2)
    p = 2
    loader = DeviceLoader(x, y, 50, mean=(0.0, 0.0), std=(1.0, 1.0), train=True, crop_padding=p,
                          flip=True, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    shifts, flips = set(), set()
    for xb, yb in loader:
        for img, i in zip(_raw(xb), yb.tolist()):  # the reference: try every variant
            hits = [(dy, dx, f) for dy in range(2 * p + 1) for dx in range(2 * p + 1) for f in (0, 1)
                    if torch.equal(img, (lambda v: v.flip(-1) if f else v)(padded[i, :, dy:dy + 8, dx:dx + 8]))]
            assert hits, "every augmented image is a padded crop of its source, maybe mirrored"
            shifts.add(hits[0][:2])
            flips.add(hits[0][2])
    assert len(shifts) > 10 and flips == {0, 1}  # the augmentation really varies


def test_mnist_loader_never_flips(tmp_path, offline):
    make_idx(tmp_path / "d")
    d = load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path / "d"), val_fraction=0.0))
    train, _, _ = make_loaders(d, 64, generator=torch.Generator().manual_seed(0))
    assert not train.flip and train.crop == 2
    d.crop_padding = 0  # without the crop, every image must come back exactly as stored
    train, val, test = make_loaders(d, 64, eval_batch_size=100, generator=torch.Generator().manual_seed(0))
    xb, yb = next(iter(train))
    order = [int(torch.nonzero((_raw(img, d.mean[0], d.std[0]) == d.train_x).flatten(1).all(1))[0])
             for img in xb]
    assert torch.equal(d.train_y[order], yb)
    assert len(test) == 1 and len(val) == 0


def test_channels_last_output():
    x, y = _indexed(8, c=3)
    for train in (True, False):
        xb, _ = next(iter(DeviceLoader(x, y, 4, mean=(0.5,) * 3, std=(0.5,) * 3, train=train,
                                       crop_padding=1, flip=True, channels_last=True)))
        assert xb.shape == (4, 3, 8, 8) and xb.is_contiguous(memory_format=torch.channels_last)


# ---- the real Fashion-MNIST --------------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion():
    if not all((FASHION / (f + ".gz")).exists() for f in IDX_FILES):
        pytest.skip(f"real Fashion-MNIST not installed at {FASHION} (apt-get install dataset-fashion-mnist)")
    return load_dataset(DataConfig(name="fashion-mnist", data_dir=str(FASHION)))


def test_real_fashion_mnist_splits_and_statistics(fashion):
    assert (len(fashion.train_y), len(fashion.val_y), len(fashion.test_y)) == (54000, 6000, 10000)
    assert torch.bincount(fashion.val_y).tolist() == [600] * 10
    mean, std = pixel_stats(torch.cat([fashion.train_x, fashion.val_x]))  # all 60k training images
    assert mean[0] == pytest.approx(fashion.mean[0], abs=5e-4)
    assert std[0] == pytest.approx(fashion.std[0], abs=5e-4)


def test_real_fashion_mnist_normalises_to_zero_mean_unit_std(fashion):
    loader = DeviceLoader(fashion.train_x, fashion.train_y, 4096, mean=fashion.mean,
                          std=fashion.std, train=False)
    total = sq = n = 0.0
    for xb, _ in loader:
        total, sq, n = total + xb.double().sum(), sq + (xb.double() ** 2).sum(), n + xb.numel()
    assert abs(total / n) < 0.01 and abs((sq / n).sqrt() - 1) < 0.01


def test_idx_class_names_are_torchvisions():
    """mixerlab keeps torchvision's class names so a trial need not import torchvision."""
    from torchvision.datasets import MNIST, FashionMNIST

    assert idx_source.CLASSES == {"FashionMNIST": FashionMNIST.classes, "MNIST": MNIST.classes}
