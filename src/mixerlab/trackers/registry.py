"""The tracker registry: ``mixerlab sweep --log NAME`` picks trackers from it.

Contract: a tracker is a class registered with :func:`register_tracker`, built as
``cls(root, study)`` (``root``: a folder of its own for local files, ``--log-dir``/NAME;
``study``: the study's name), with

* ``destination``: where its runs go, in words a user can paste (shown at start, and the
  key of the ledger of logged trials, so a new destination gets every trial again);
* ``log(run)``: one :class:`~mixerlab.trackers.run.TrackedRun` becomes one run, grouped by
  ``run.group``; logging a trial again replaces the run it has there, so a driver killed
  halfway through a log never leaves two;
* ``close()``.

A tracker imports its package inside its methods: naming none costs nothing, and a missing
package is found by :func:`require` before a sweep starts.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from mixerlab.errors import ConfigError


@dataclass(frozen=True)
class TrackerInfo:
    name: str
    cls: type
    packages: tuple[str, ...]  # import names it needs
    extra: str  # pip install 'mixerlab[<extra>]' brings them


_TRACKERS: dict[str, TrackerInfo] = {}


def register_tracker(name: str, *, packages: tuple[str, ...], extra: str):
    """Class decorator: register an experiment tracker under ``name``."""

    def wrap(cls):
        _TRACKERS[name] = TrackerInfo(name, cls, tuple(packages), extra)
        return cls

    return wrap


def list_trackers() -> list[str]:
    return sorted(_TRACKERS)


def get_tracker(name: str) -> TrackerInfo:
    if name not in _TRACKERS:
        raise ConfigError(f"--log: unknown tracker '{name}'; choose one of "
                          f"{', '.join(list_trackers())}")
    return _TRACKERS[name]


def require(names) -> None:
    """Import every package the named trackers need; a missing one is one line, exit 2.

    Importing (not only finding) the package also catches a broken install before the
    sweep spends anything.
    """
    for name in names:
        info = get_tracker(name)
        for package in info.packages:
            try:
                importlib.import_module(package)
            except ImportError as err:
                # Not installed: the message says what to install. Installed but broken (a
                # dependency of it missing or too old): also what went wrong.
                absent = (isinstance(err, ModuleNotFoundError)
                          and (err.name or "").split(".")[0] == package)
                why = "" if absent else f" (importing it failed: {first_line(err)})"
                raise ConfigError(f"--log {name} needs the {package} package: pip install "
                                  f"'mixerlab[{info.extra}]'{why}") from None


def first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
