"""Pipeline bars: mixerlab's on-device pipeline against (a) no pipeline at all and (b) the
usual torchvision ``Dataset`` + ``DataLoader`` with per-sample transforms.

(a) Overhead: training steps fed by the real pipeline (index, crop, flip, normalise) versus
    steps on one pre-made in-memory batch, interleaved in one run. Bar: <= 1.05x.
(b) Against the usual way: one epoch of the same model and recipe through
    ``torchvision.datasets.FashionMNIST`` + ``DataLoader(num_workers=2)`` with
    ``RandomCrop(28, padding=2)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``
    (as the ConvMixer CIFAR-10 repository feeds its model), versus mixerlab's pipeline.

    python benchmarks/pipeline.py            # both, on the quick sweep's and the recipe's model
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mixerlab.config import DataConfig, ModelConfig
from mixerlab.data import DeviceLoader, load_dataset
from mixerlab.models import create_model

MODELS = {
    "quick (conv p4 w64 d4)": ModelConfig(mixer="conv", patch_size=4, depth=4, width=64),
    "recipe (conv p2 w64 d6)": ModelConfig(mixer="conv", patch_size=2, depth=6, width=64),
}


def _step(model, opt, x, y):
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def overhead(cfg: ModelConfig, data, steps: int, rounds: int) -> tuple[float, float, float]:
    """Median seconds per step with the pipeline and with a fixed batch, and their ratio."""
    torch.manual_seed(0)
    model = create_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DeviceLoader(data.train_x, data.train_y, 128, mean=data.mean, std=data.std, train=True,
                          crop_padding=data.crop_padding, flip=data.flip)
    fixed_x, fixed_y = next(iter(loader))
    it = iter(loader)
    real, fixed = [], []
    for _ in range(2):  # warm-up
        _step(model, opt, fixed_x, fixed_y)
    for _ in range(rounds):  # interleaved, so both see the same machine state
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = next(it)
            _step(model, opt, x, y)
        real.append((time.perf_counter() - t0) / steps)
        t0 = time.perf_counter()
        for _ in range(steps):
            _step(model, opt, fixed_x, fixed_y)
        fixed.append((time.perf_counter() - t0) / steps)
    r, f = statistics.median(real), statistics.median(fixed)
    return r, f, r / f


def torchvision_raw(root: Path, source: Path = Path("/usr/share/datasets/fashion-mnist")) -> Path:
    """Decompressed copies of the IDX files where ``torchvision.datasets.FashionMNIST(root)``
    looks for them (``root/FashionMNIST/raw/*-ubyte``); kept if already there. Returns root."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in Path(source).glob("*.gz"):
        if not (raw / gz.stem).is_file():
            with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return Path(root)


def usual_transform(train: bool):
    """Per-sample transforms with mixerlab's Fashion-MNIST augmentation (crop after 2 px zero
    padding, flip) and normalisation, applied one PIL image at a time."""
    from torchvision import transforms

    aug = [transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip()] if train else []
    return transforms.Compose([*aug, transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])


def _torchvision_loader(root: Path, batch_size: int, workers: int, subset: int):
    from torchvision import datasets

    ds = datasets.FashionMNIST(str(torchvision_raw(root)), train=True, transform=usual_transform(True),
                               download=False)
    ds = torch.utils.data.Subset(ds, range(subset))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       drop_last=True, persistent_workers=False)


def epoch_time(model, opt, batches) -> float:
    t0 = time.perf_counter()
    for x, y in batches:
        _step(model, opt, x, y)
    return time.perf_counter() - t0


def versus_dataloader(cfg: ModelConfig, data, subset: int, workers: int,
                      root: Path | None = None) -> tuple[float, float]:
    """Seconds for one epoch of ``subset`` images: (DataLoader, DeviceLoader), same model.

    ``root``: a folder already holding :func:`torchvision_raw`'s files (else a temporary one).
    """
    torch.manual_seed(0)
    model = create_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ours = DeviceLoader(data.train_x[:subset], data.train_y[:subset], 128, mean=data.mean,
                        std=data.std, train=True, crop_padding=data.crop_padding, flip=data.flip)
    with tempfile.TemporaryDirectory() as tmp:
        usual = _torchvision_loader(Path(root or tmp), 128, workers, subset)
        epoch_time(model, opt, ours)  # warm-up epoch for both paths' caches
        t_usual = epoch_time(model, opt, usual)
        t_ours = epoch_time(model, opt, ours)
    return t_usual, t_ours


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=7, help="interleaved blocks per path")
    p.add_argument("--subset", type=int, default=10000, help="images per epoch for (b)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for (b)")
    args = p.parse_args()
    data = load_dataset(DataConfig(name="fashion-mnist"))
    print(f"torch threads: {torch.get_num_threads()}, batch 128, Fashion-MNIST 28x28")
    print("\n(a) pipeline overhead: median s/step, real pipeline vs one pre-made batch")
    for name, cfg in MODELS.items():
        r, f, ratio = overhead(cfg, data, args.steps, args.rounds)
        print(f"  {name:<26} pipeline {r * 1e3:7.1f} ms   fixed batch {f * 1e3:7.1f} ms   ratio {ratio:.3f}x")
    print(f"\n(b) one epoch of {args.subset} images: torchvision DataLoader ({args.workers} workers, "
          "per-sample transforms) vs mixerlab")
    for name, cfg in MODELS.items():
        t_usual, t_ours = versus_dataloader(cfg, data, args.subset, args.workers)
        print(f"  {name:<26} DataLoader {t_usual:6.1f} s   mixerlab {t_ours:6.1f} s   "
              f"ratio {t_usual / t_ours:.2f}x")


if __name__ == "__main__":
    main()
