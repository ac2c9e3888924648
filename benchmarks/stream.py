"""Streamed path against in-memory: decoded training images/s (issue 22).

Writes ``--images`` Fashion-MNIST training images as JPEG files (quality 95) into a temporary
ImageFolder tree, then times one pass of the training loader of each path: the streamed one
(``data/stream_loader.py``: decode + timm's random-resized crop + flip in DataLoader workers)
at 64 and 224 px with 1 and 2 workers, and the in-memory ``DeviceLoader`` (random crop + flip
batched on the device) on the same images, resized once at load time.

    python benchmarks/stream.py                 # 20,000 images: the figures (an idle machine!)
    python benchmarks/stream.py --images 500    # a check that it runs

Prints one row per (path, side, workers) and writes results/benchmarks/stream-<images>.json
with provenance. The figures are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from jpeg_tree import write_tree  # a script beside this one: its folder is on sys.path

from mixerlab import provenance
from mixerlab.config import DataConfig
from mixerlab.data import DeviceLoader, load_dataset
from mixerlab.data.stream import open_stream
from mixerlab.data.stream_loader import stream_loaders
from mixerlab.results import atomic_write_text

BATCH = 256  # at most; a small --images check uses ~10 batches so something is timed


def rate(loader) -> float:
    """Images/s of one pass, after the first batch (worker start-up)."""
    loader.generator = torch.Generator().manual_seed(0)
    n, t0 = 0, None
    for i, (x, _) in enumerate(loader):
        if i == 0:
            t0 = time.perf_counter()
        else:
            n += len(x)
    return n / (time.perf_counter() - t0) if n else float("nan")


def measure(root: Path, side: int, workers: int | None, batch: int) -> dict:
    """One row: the streamed path with ``workers``, or in memory (``workers`` None)."""
    cfg = DataConfig(name="imagefolder", data_dir=str(root), image_size=side, val_fraction=0.0)
    if workers is None:
        data = load_dataset(cfg)
        loader = DeviceLoader(data.train_x, data.train_y, batch, train=True, mean=data.mean,
                              std=data.std, crop_padding=data.crop_padding, flip=data.flip)
    else:
        data = open_stream(cfg)
        loader = stream_loaders(data, cfg, side, batch, batch, workers=workers, device="cpu",
                                channels_last=False)[0]
    return {"path": "memory" if workers is None else "stream", "side": side, "workers": workers,
            "images_per_s": rate(loader)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20_000, help="JPEGs written (default 20,000)")
    p.add_argument("--sides", type=int, nargs="+", default=[64, 224])
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows, batch = [], min(BATCH, max(8, args.images // 10))
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), args.images)
        for side in args.sides:
            for workers in (None, 1, 2):
                rows.append(measure(Path(tmp), side, workers, batch))
                r = rows[-1]
                print(f"{r['path']:>6} {side:>4} px workers {workers or '-':>2}: "
                      f"{r['images_per_s']:>10,.0f} images/s", file=sys.stderr)
    out = Path(args.out) / f"stream-{args.images}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"images": args.images, "batch": batch, "rows": rows,
                                       **provenance.versions(), **provenance.hardware()},
                                      indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
