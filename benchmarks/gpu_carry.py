"""What ``benchmarks/gpu_check.sh`` needs carried to a lent GPU machine, packed small.

The device machine has PyTorch, numpy, pandas, pyarrow, scipy, PyYAML, timm and more
(``/work/.library/device/KINDS.md``), but no pydantic and no Ray, no Fashion-MNIST, and no
package index; the working tree and everything carried with it must fit 64 MiB. Two of the
three things carried would not fit as they come, so this packs them:

* **Ray** (``ray SRC DEST``): its cp312 wheel is 79 MB. Unpacked, much of it is what a local
  Tune sweep never loads (the Java jars, RLlib, Serve, the LLM library, the dashboard's
  JavaScript build and source maps, test folders); left out, with the three large binaries
  (``_raylet.so``, ``raylet``, ``gcs_server``) stripped of their debugging symbols
  (``strip --strip-unneeded``: the dynamic symbols stay), it packs into 19 MiB of xz (Ray
  2.60.0). A real local sweep ran on such a trimmed Ray (the cp311 build, on the CPU).
* **Fashion-MNIST** (``data DEST``): 30 MB of gzip. Every item of the GPU check trains on
  the same images (mixerlab's split with ``split_seed`` 0, ``val_fraction`` 0.1,
  ``train_subset`` 10,000): the 16,000 training images they read are kept, the other 44,000
  are set to zero (all 60,000 labels are kept, so ``split_indices`` draws exactly the same
  indices), and the test set is whole. A trial on it is the trial on the full files, image
  for image (``tests/test_gpu_check.py`` checks this). ``KEPT`` says which images are kept.

    python benchmarks/gpu_carry.py ray ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl .carry/ray.tar.xz
    python benchmarks/gpu_carry.py data .carry/fashion-mnist.tar.xz

``benchmarks/gpu_carry.sh`` runs both after downloading the wheels.
"""

from __future__ import annotations

import argparse
import io
import lzma
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

# Folders and files of the Ray wheel a local Tune sweep does not load.
# (Ray Data stays: ray.air imports it.)
RAY_LEFT_OUT = ("ray/jars", "ray/rllib", "ray/serve", "ray/llm", "ray/dashboard/client")
RAY_LEFT_OUT_NAMES = ("tests",)
RAY_LEFT_OUT_SUFFIXES = (".map",)
RAY_STRIPPED = ("ray/_raylet.so", "ray/core/src/ray/raylet/raylet", "ray/core/src/ray/gcs/gcs_server")
# The images every item of the GPU check reads: mixerlab's split of these settings.
KEPT = {"val_fraction": 0.1, "train_subset": 10000, "split_seed": 0}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _left_out(rel: str) -> bool:
    parts = rel.split("/")
    return (any(rel == p or rel.startswith(p + "/") for p in RAY_LEFT_OUT)
            or any(n in parts for n in RAY_LEFT_OUT_NAMES) or rel.endswith(RAY_LEFT_OUT_SUFFIXES))


def _wheel_members(src: Path):
    """(path inside, mode, bytes) of every file of a wheel (``.whl``) or an unpacked one."""
    if src.is_dir():
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src).as_posix()
            if path.is_file() and (rel.startswith("ray/") or rel.split("/")[0].endswith(".dist-info")):
                yield rel, path.stat().st_mode & 0o777, path.read_bytes
        return
    with zipfile.ZipFile(src) as whl:
        for info in whl.infolist():
            if not info.is_dir():  # a wheel keeps the Unix mode in the high bits
                yield info.filename, (info.external_attr >> 16) & 0o777 or 0o644, \
                    lambda name=info.filename: whl.read(name)


def ray_archive(src: Path, dest: Path) -> int:
    """Ray's wheel ``src`` (the ``.whl``, or a folder holding ``ray/`` and its
    ``.dist-info``) as a trimmed ``.tar.xz`` at ``dest``; returns its size in bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(dest, "w:xz", preset=9) as tar:
        for rel, mode, read in _wheel_members(src):
            if _left_out(rel):
                continue
            raw = read()
            if rel in RAY_STRIPPED:
                copy = Path(tmp) / Path(rel).name
                copy.write_bytes(raw)
                subprocess.run(["strip", "--strip-unneeded", str(copy)], check=True)
                raw = copy.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(raw), mode, int(time.time())
            tar.addfile(info, io.BytesIO(raw))
            n += rel.startswith("ray/")
    if not n:
        raise SystemExit(f"gpu_carry: {src} holds no ray/ files (give Ray's wheel or its unpacked folder)")
    return dest.stat().st_size


def _idx_bytes(array) -> bytes:
    """An IDX file of a uint8 array: magic (0, 0, type 0x08, dims), big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def masked_train_images(images, labels):
    """``images`` with every image the GPU check does not read set to zero (a copy)."""
    import numpy as np
    import torch

    from mixerlab.data.split import split_indices

    train, val = split_indices(torch.from_numpy(labels.astype("int64")), KEPT["val_fraction"],
                               KEPT["train_subset"], KEPT["split_seed"])
    out = np.zeros_like(images)
    keep = torch.cat([train, val]).numpy()
    out[keep] = images[keep]
    return out


def data_archive(dest: Path, source: Path | None = None) -> int:
    """Fashion-MNIST's four files, the unread training images zeroed, as ``.tar.xz`` of
    ``fashion-mnist/<file>`` (uncompressed IDX inside); returns its size in bytes."""
    from mixerlab.data import locate
    from mixerlab.data.idx import DEBIAN_ROOT, _file, read_idx

    dirs = [source] if source else locate.candidates("fashion-mnist", None, DEBIAN_ROOT / "fashion-mnist")
    folder = locate.find(dirs, lambda d: all(_file(d, s) for s in FILES))
    if folder is None:
        raise SystemExit(f"gpu_carry: no Fashion-MNIST in {', '.join(map(str, dirs))}")
    arrays = {s: read_idx(_file(folder, s)) for s in FILES}
    arrays["train-images-idx3-ubyte"] = masked_train_images(arrays["train-images-idx3-ubyte"],
                                                            arrays["train-labels-idx1-ubyte"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:xz", preset=9 | lzma.PRESET_EXTREME) as tar:
        for stem, array in arrays.items():
            raw = _idx_bytes(array)
            info = tarfile.TarInfo(f"fashion-mnist/{stem}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return dest.stat().st_size


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("ray", help="a trimmed Ray from an unpacked wheel")
    r.add_argument("src", type=Path, help="Ray's wheel, or a folder holding ray/ and its .dist-info")
    r.add_argument("dest", type=Path)
    d = sub.add_parser("data", help="Fashion-MNIST with the unread training images zeroed")
    d.add_argument("dest", type=Path)
    d.add_argument("--source", type=Path, default=None, help="folder of the four IDX files")
    args = p.parse_args(argv)
    size = ray_archive(args.src, args.dest) if args.what == "ray" else data_archive(args.dest, args.source)
    print(f"wrote {args.dest}: {size / 2**20:.1f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
