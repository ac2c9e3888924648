"""``mixerlab shards DIR OUT``: an ImageFolder tree as WebDataset tar shards, resumable.

Reads ``DIR`` by the streamed path's layout rules (``data/stream_sources.py``), writes
``OUT/train-NNNNNN.tar`` (and ``test-``) of ``--shard-size`` samples each and
``OUT/classes.json`` (``data/shards.py``). A re-run keeps complete shards and rewrites a
partial one, so an interrupted conversion continues where it stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mixerlab.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("shards", help="convert an ImageFolder tree to WebDataset tar shards")
    p.add_argument("dir", help="DIR/train/<class>/ (and DIR/test/<class>/), or DIR/<class>/")
    p.add_argument("out", help="folder for the shards and classes.json (created; re-run to resume)")
    p.add_argument("--shard-size", type=int, default=1000,
                   help="samples per shard (default 1000: ~110 MB of ImageNet JPEGs, within "
                        "webdataset's advice of 100 MB-1 GB per shard)")
    p.set_defaults(func=run)


def _progress(done: int, total: int, skipped: int) -> None:
    end = "\n" if done == total else ""
    print(f"\rshards: {done}/{total} shards ({skipped} skipped: already complete)", end=end,
          file=sys.stderr, flush=True)


def run(args) -> int:
    from mixerlab.data.shards import write_shards
    from mixerlab.data.stream_sources import folder_splits

    if args.shard_size < 1:
        raise ConfigError(f"--shard-size: {args.shard_size}; give a positive number of samples")
    root, out = Path(args.dir).expanduser(), Path(args.out).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder; give an ImageFolder tree")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another OUT")
    train, test = folder_splits(root)  # every layout error before anything is written
    classes = sorted(train)
    splits = {"train": [(f, k) for k, c in enumerate(classes) for f in train[c]]}
    if test:
        splits["test"] = [(f, k) for k, c in enumerate(classes) for f in test.get(c, [])]
    try:
        index = write_shards(splits, classes, out, args.shard_size, progress=_progress)
    except OSError as err:
        raise ConfigError(f"shards: cannot read or write ({err}); the shards written so far are "
                          "complete, re-run to resume") from None
    counts = ", ".join(f"{s} {e['count']:,} images" for s, e in index["splits"].items())
    print(f"{out}: {len(classes)} classes, {counts}", file=sys.stderr)
    return 0
