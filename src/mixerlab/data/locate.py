"""Where a data set's files are looked for, the download fallback, and the error naming both.

Search order: ``--data-dir`` (the folder or its ``<name>`` sub-folder), ``$MIXERLAB_DATA``
(likewise), a system folder (Debian's ``/usr/share/datasets/<name>``, for sources that
have one), then the user cache ``~/.cache/mixerlab/<name>``, where downloads go.
Set ``MIXERLAB_OFFLINE=1`` to never try the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mixerlab.errors import DataNotFoundError


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mixerlab"


def candidates(name: str, data_dir: str | None, system: Path | None = None) -> list[Path]:
    """Every folder tried, in order."""
    out = []
    for root in (data_dir, os.environ.get("MIXERLAB_DATA")):
        if root:
            root = Path(root).expanduser()
            out += [root, root / name]
    if system is not None:
        out.append(system)
    return out + [cache_root() / name]


def find(dirs: list[Path], complete: Callable[[Path], bool]) -> Path | None:
    """The first folder that exists and holds everything ``complete`` checks for."""
    return next((d for d in dirs if d.is_dir() and complete(d)), None)


def download(name: str, fetch: Callable[[Path], None]) -> Path:
    """Run ``fetch(tmp)`` into a scratch folder, then move its files into the cache folder.

    A failed or interrupted download leaves nothing behind that a later search could take
    for a complete data set.
    """
    if os.environ.get("MIXERLAB_OFFLINE"):
        raise OSError("MIXERLAB_OFFLINE is set")
    dest = cache_root() / name
    tmp = cache_root() / f".{name}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fetch(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            shutil.rmtree(dest / item.name, ignore_errors=True)
            item.replace(dest / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            cache_root().rmdir()  # only succeeds if we created it and it stayed empty
        except OSError:
            pass
    return dest


def not_found(name: str, dirs: list[Path], needs: str, download_error: Exception,
              fix: str) -> DataNotFoundError:
    """One line: what was missing, every place looked, why the download failed, the fix."""
    looked = ", ".join(str(d) for d in dirs)
    env = "" if os.environ.get("MIXERLAB_DATA") else " ($MIXERLAB_DATA is not set)"
    reason = str(download_error).replace("\n", " ") or type(download_error).__name__
    return DataNotFoundError(
        f"{name} not found: no folder holds {needs}; looked in {looked}{env}; "
        f"download into {cache_root() / name} failed ({reason}). Fix: {fix}")
