"""Atomic writes: write to a temporary file in the same folder, then rename.

A rename within one file system is atomic on POSIX, so a reader (or a process killed
mid-write) never sees half a table.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from mixerlab.failpoints import failpoint

# The file that makes a folder a study's: written when its sweep starts (sweep/study.py),
# read by the analysis for the number of trials the study plans.
MARKER = ".mixerlab-study.json"

_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        failpoint(f"{path.name}:before-rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    _atomic(path, write)


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    _atomic(path, lambda tmp: df.to_parquet(tmp, index=False))


def atomic_write_csv(path: Path, df: pd.DataFrame) -> None:
    _atomic(path, lambda tmp: df.to_csv(tmp, index=False))
