"""Where data sets are looked for, in order, and the error that lists every place tried."""

from __future__ import annotations

import os
from pathlib import Path

from mixerlab.errors import DataNotFoundError

DEBIAN_ROOT = Path("/usr/share/datasets")


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mixerlab"


def candidates(name: str, data_dir: str | None, debian: bool = True) -> list[Path]:
    """--data-dir (itself or its <name> sub-folder), $MIXERLAB_DATA, Debian's, the user cache."""
    out = []
    for root in (data_dir, os.environ.get("MIXERLAB_DATA")):
        if root:
            out += [Path(root), Path(root) / name]
    if debian:
        out.append(DEBIAN_ROOT / name)
    out.append(cache_root() / name)
    return out


def find(name: str, data_dir: str | None, has_files, debian: bool = True) -> Path | None:
    for path in candidates(name, data_dir, debian):
        if path.is_dir() and has_files(path):
            return path
    return None


def not_found(name: str, data_dir: str | None, debian: bool, download_error: str, fix: str) -> DataNotFoundError:
    looked = ", ".join(str(p) for p in candidates(name, data_dir, debian))
    return DataNotFoundError(
        f"{name} not found (looked in: {looked}; download failed: {download_error}); {fix}"
    )
