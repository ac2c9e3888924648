"""Fashion-MNIST written as an ImageFolder tree of JPEG files: real images in the layout of
ImageNet's, for the streamed path's benchmark and its comparison with the in-memory path.

    python benchmarks/jpeg_tree.py data/fmnist-jpeg --train 10000        # train/ and test/
    python benchmarks/jpeg_tree.py DIR --train 20000 --test 0             # train/ only

Writes ``DIR/train/<class>/NNNNN.jpg`` from the first ``--train`` training images and
``DIR/test/<class>/NNNNN.jpg`` from the first ``--test`` test images (all 10,000 by default),
greyscale JPEG at quality 95 (PIL), file names the image's index in its IDX file. The same
arguments write the same bytes, so a tree can be remade for a re-run. The tree is written
beside ``DIR`` and renamed into place at the end: an interrupted run leaves no half tree, and
an existing ``DIR`` is refused rather than mixed with.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from mixerlab.config import DataConfig
from mixerlab.data import load_dataset

QUALITY = 95


def write_split(x, y, classes: list[str], folder: Path, n: int) -> None:
    """The first ``n`` images of ``x`` (N, 1, H, W uint8) as ``folder/<class>/NNNNN.jpg``."""
    from PIL import Image

    for i in range(n):
        d = folder / classes[int(y[i])].replace("/", "-")  # "T-shirt/top"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i, 0].numpy()).save(d / f"{i:05d}.jpg", quality=QUALITY)


def write_tree(root: Path, train: int, test: int = 0) -> Path:
    """Fashion-MNIST's first ``train`` training and ``test`` test images under ``root``."""
    data = load_dataset(DataConfig(name="fashion-mnist", val_fraction=0.0))
    write_split(data.train_x, data.train_y, data.classes, root / "train", train)
    if test:
        write_split(data.test_x, data.test_y, data.classes, root / "test", test)
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the folder to write (must not exist)")
    p.add_argument("--train", type=int, default=10_000, help="training images (default 10,000)")
    p.add_argument("--test", type=int, default=10_000, help="test images (default all 10,000)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists; remove it or choose another folder", file=sys.stderr)
        return 2
    for flag, n, most in (("--train", args.train, 60_000), ("--test", args.test, 10_000)):
        if not 0 <= n <= most:
            print(f"error: {flag} {n}: Fashion-MNIST has {most:,} such images; pass 0 to {most:,}",
                  file=sys.stderr)
            return 2
    part = out.with_name(out.name + ".partial")
    shutil.rmtree(part, ignore_errors=True)  # a run interrupted before
    write_tree(part, args.train, args.test)
    part.rename(out)
    print(f"wrote {args.train:,} training and {args.test:,} test JPEGs under {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
