"""WebDataset tar shards: written from an ImageFolder tree, and indexed for random access.

The format is WebDataset's (github.com/webdataset/webdataset, "WebDataset format"): plain
POSIX tar files whose members are grouped into samples by their base name, ``<key>.<ext>``
holding the image's bytes as they were (no re-encoding) and ``<key>.cls`` its label as
decimal text. Beside the shards, ``classes.json`` names the classes in label order and lists
each split's shards and sample counts; it is written last, so its presence means complete.

Samples are numbered in the order ``imagefolder`` reads the tree (class, then file name), so
the split a seed draws picks the same images from the shards as from the folder.

Reading: mixerlab indexes each shard once (member offsets, from the tar headers only) and
reads samples by offset, so the sample order is a seeded permutation of the whole split, as
on the in-memory path, and a resumed trial sees exactly the data of an undisturbed one.
Sequential shard streaming (webdataset's ``shardshuffle`` + shuffle buffer) would read
faster from network storage but makes the order depend on the worker count.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mixerlab.errors import ConfigError

INDEX = "classes.json"
SPLITS = ("train", "test")


def shard_name(split: str, i: int) -> str:
    return f"{split}-{i:06d}.tar"


def _write_shard(path: Path, items: list[tuple[int, Path, int]]) -> None:
    """One shard, atomically: a partial shard is only ever a ``.tmp`` file."""
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, src, label in items:
            for ext, data in ((src.suffix.lower().lstrip("."), src.read_bytes()),
                              ("cls", str(label).encode())):
                info = tarfile.TarInfo(f"{key:09d}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o444, 0  # mtime 0: reproducible bytes
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def write_shards(splits: dict[str, list[tuple[Path, int]]], classes: list[str], out: Path,
                 shard_size: int, progress: Callable[[int, int, int], None] | None = None) -> dict:
    """Write every split's ``(file, label)`` list as shards of ``shard_size`` samples, then
    ``classes.json``; returns that index. A complete shard (its final name exists) is kept,
    a partial one (``.tmp``) rewritten, so an interrupted run resumes where it stopped.
    ``progress(shards done, shards in all, shards skipped)`` after each shard."""
    out.mkdir(parents=True, exist_ok=True)
    plan = [(split, i, items[i * shard_size:(i + 1) * shard_size], i * shard_size)
            for split, items in splits.items() for i in range(-(-len(items) // shard_size))]
    index = {"classes": classes, "shard_size": shard_size, "splits": {}}
    skipped = 0
    for done, (split, i, items, first) in enumerate(plan, 1):
        path = out / shard_name(split, i)
        if path.exists():
            skipped += 1
        else:
            _write_shard(path, [(first + k, f, y) for k, (f, y) in enumerate(items)])
        entry = index["splits"].setdefault(split, {"shards": [], "count": 0})
        entry["shards"].append(path.name)
        entry["count"] += len(items)
        if progress:
            progress(done, len(plan), skipped)
    tmp = out / (INDEX + ".tmp")
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / INDEX)
    return index


@dataclass
class ShardIndex:
    """Where each sample of one split lies: shard file, byte offset and size of its image."""

    shards: list[str]
    where: list[tuple[int, int, int]]  # per sample: (shard number, offset, size)
    names: list[str]  # per sample: "shard.tar:member", for error messages
    labels: list[int]


def read_index(root: Path) -> dict:
    """``classes.json`` of a shard folder, or one line saying what is wrong."""
    path = root / INDEX
    try:
        index = json.loads(path.read_text())
        index["classes"], index["splits"]["train"]  # noqa: B018 - the keys every reader needs
    except FileNotFoundError:
        raise ConfigError(f"shards: {path} not found; make the shards with `mixerlab shards DIR "
                          f"{root}` (it writes {INDEX} last, once every shard is complete)") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"shards: {path} is not a shard index ({type(err).__name__}: {err}); "
                          "re-run `mixerlab shards`") from None
    return index


def index_split(root: Path, shards: list[str]) -> ShardIndex:
    """Index the members of ``shards`` (tar headers and the tiny ``.cls`` members only)."""
    out = ShardIndex([str(root / s) for s in shards], [], [], [])
    for n, name in enumerate(shards):
        path, images, labels = root / name, {}, {}
        try:
            with tarfile.open(path, "r:") as tar:
                for m in tar:
                    key, _, ext = m.name.partition(".")
                    if ext == "cls":
                        labels[key] = int(tar.extractfile(m).read())
                    elif m.isfile():
                        images[key] = (n, m.offset_data, m.size, f"{name}:{m.name}")
        except (OSError, tarfile.TarError, ValueError) as err:
            raise ConfigError(f"{path}: not a readable shard ({type(err).__name__}: {err}); "
                              "re-run `mixerlab shards` to rewrite it") from None
        if not images:
            raise ConfigError(f"{path}: an empty shard (no samples); re-run `mixerlab shards` "
                              "to rewrite it")
        for key in sorted(images):
            if key not in labels:
                raise ConfigError(f"{path}: sample {key} has no .cls label; re-run `mixerlab shards`")
            *where, label_name = images[key]
            out.where.append(tuple(where))
            out.names.append(label_name)
            out.labels.append(labels[key])
    return out
