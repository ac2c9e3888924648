"""``mixerlab shards DIR OUT``: an ImageFolder tree as WebDataset tar shards, resumable.

Reads ``DIR`` by the streamed path's layout rules (``data/stream_sources.py``), writes
``OUT/train-NNNNNN.tar`` (and ``test-``) of ``--shard-size`` samples each and
``OUT/classes.json`` (``data/shards.py``). A re-run keeps complete shards and rewrites a
partial one, so an interrupted conversion continues where it stopped.

Before anything is written, every image is decoded once, as the loader decodes it
(``data/imagecheck.py``): a corrupt file stops the command with exit 2 and the list of every
such file, instead of being packed and failing a trial mid-study. ``--no-check`` skips that
for data already known to decode.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mixerlab.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("shards", help="convert an ImageFolder tree to WebDataset tar shards",
                       description="Convert an ImageFolder tree to WebDataset tar shards. Every "
                       "image is first decoded once (in --workers processes); if any fails, "
                       "nothing is written and each bad file is named (exit 2).")
    p.add_argument("dir", help="DIR/train/<class>/ (and DIR/test/<class>/), or DIR/<class>/")
    p.add_argument("out", help="folder for the shards and classes.json (created; re-run to resume)")
    p.add_argument("--shard-size", type=int, default=1000,
                   help="samples per shard (default 1000: ~110 MB of ImageNet JPEGs, within "
                        "webdataset's advice of 100 MB-1 GB per shard)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes that decode the images for the check (default: the CPUs "
                        "this process may use, at most 8)")
    p.add_argument("--no-check", action="store_true",
                   help="skip decoding every image before packing: only for trusted data (e.g. "
                        "resuming a run whose check passed); a corrupt image is then packed and "
                        "found only when a trial decodes it")
    p.set_defaults(func=run)


def _progress(done: int, total: int, skipped: int) -> None:
    end = "\n" if done == total else ""
    print(f"\rshards: {done}/{total} shards ({skipped} skipped: already complete)", end=end,
          file=sys.stderr, flush=True)


def _checked(done: int, total: int) -> None:
    end = "\n" if done == total else ""
    print(f"\rshards: checked {done:,}/{total:,} images", end=end, file=sys.stderr, flush=True)


def _check(splits: dict, workers: int | None) -> None:
    """Decode every image to be packed; any failure is a ConfigError naming each bad file,
    raised before anything is written (a corrupt image would otherwise stop a trial)."""
    from mixerlab.data.imagecheck import check_images, default_workers

    files = [f for items in splits.values() for f, _ in items]
    bad = check_images(files, workers or default_workers(), progress=_checked)
    if bad:
        lines = "".join(f"\n  {f}: {reason}" for f, reason in bad)
        raise ConfigError(f"{len(bad):,} of {len(files):,} images cannot be decoded; nothing was "
                          f"written:{lines}\nremove or replace these files, or pass --no-check "
                          "for trusted data")


def run(args) -> int:
    from mixerlab.data.shards import write_shards
    from mixerlab.data.stream_sources import folder_splits

    if args.shard_size < 1:
        raise ConfigError(f"--shard-size: {args.shard_size}; give a positive number of samples")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers: {args.workers}; give a positive number of processes")
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
    if not args.no_check:
        _check(splits, args.workers)  # before write_shards creates OUT: a failure writes nothing
    try:
        index = write_shards(splits, classes, out, args.shard_size, progress=_progress)
    except OSError as err:
        raise ConfigError(f"shards: cannot read or write ({err}); the shards written so far are "
                          "complete, re-run to resume") from None
    counts = ", ".join(f"{s} {e['count']:,} images" for s, e in index["splits"].items())
    print(f"{out}: {len(classes)} classes, {counts}", file=sys.stderr)
    return 0
