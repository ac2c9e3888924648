"""Which path a data set takes, in memory or streamed, and opening it on that path.

The one owner of the choice (``train``, ``mixerlab train`` and the sweep all call
:func:`open_data`). A source with no streamed reader takes the in-memory path exactly as
before (``load_dataset``, nothing else is read). A source with both is streamed when
``dataset.stream`` says so, or, left unset, when its decoded size would exceed
``dataset.memory_budget_gb``; the estimate is images x side^2 x channels bytes from a scan of
the file names and a few image headers, never from decoding the set. A sweep whose grid varies
``image_size`` passes the sides its configurations ask for (``sides``): a trial holds its data
at its own side, so the largest one decides.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from mixerlab.config import DataConfig
from mixerlab.data.registry import list_datasets, load_dataset
from mixerlab.data.stream import (  # noqa: F401
    STREAM_ONLY_FIELDS,
    StreamData,
    list_streams,
    open_stream,
    probe,
    scan_stream,
)
from mixerlab.data.stream import image_size as side
from mixerlab.errors import ConfigError


@dataclass(frozen=True)
class Choice:
    stream: bool
    decoded_gb: float | None  # None: not estimated (a source without a streamed reader)
    why: str


def decoded_gb(cfg: DataConfig, src, sides: tuple[int, ...] = ()) -> float:
    """GB the in-memory path would hold: every image at its side (the largest of ``sides``
    where a configuration asks for a larger one), plus the training pool it keeps again under
    ``split_per_seed``."""
    mode, first = probe(src.train)
    channels = 1 if mode == "L" else 3
    n = len(src.train) + (len(src.test) if src.test is not None else 0)
    n += len(src.train) if cfg.split_per_seed else 0
    return n * max((side(cfg, first), *sides)) ** 2 * channels / 1e9


def choose(cfg: DataConfig, src, sides: tuple[int, ...] = ()) -> Choice:
    """Decide the path of a streamable source ``src`` (its listing) under ``cfg``, for
    configurations at ``sides`` (a grid's ``image_size``; none: the data set's own)."""
    gb = decoded_gb(cfg, src, sides)
    budget = cfg.memory_budget_gb
    if cfg.name not in list_datasets():
        if cfg.stream is False:
            raise ConfigError(f"dataset.stream: {cfg.name} is read streamed only; remove "
                              "'stream: false'")
        return Choice(True, gb, f"{cfg.name} is read streamed only")
    if cfg.stream is not None:
        if cfg.stream is False and gb > budget:
            at = f" at image_size {max(sides)} (a configuration's)" if gb > decoded_gb(cfg, src) else ""
            raise ConfigError(f"dataset.memory_budget_gb: {cfg.name} decoded{at} is {_gb(gb)} GB, over "
                              f"the budget of {budget:g} GB, and stream is false: no path fits; set "
                              "stream: true (or remove it) or raise memory_budget_gb")
        return Choice(cfg.stream, gb, f"dataset.stream is {str(cfg.stream).lower()}")
    if gb > budget:
        return Choice(True, gb, f"decoded it would be {_gb(gb)} GB, over dataset.memory_budget_gb "
                                f"{budget:g}; set stream: false to load it in memory anyway")
    return Choice(False, gb, f"decoded it is {gb:,.2f} GB, within memory_budget_gb {budget:g}")


def open_data(cfg: DataConfig, *, notice=None, sides: tuple[int, ...] = ()):
    """The data set of ``cfg`` on its path: a ``Dataset`` or a :class:`StreamData`.
    ``notice(line)``: told once when the path was chosen by size (stderr by default);
    ``sides``: the image sizes a sweep's configurations ask for (see :func:`choose`)."""
    if cfg.name not in list_streams():
        if cfg.stream:
            raise ConfigError(f"dataset.stream: {cfg.name} has no streamed reader; streamed data "
                              f"sets: {', '.join(list_streams())}")
        _in_memory_check(cfg)
        return load_dataset(cfg)  # the in-memory path, untouched
    src = scan_stream(cfg)
    choice = choose(cfg, src, tuple(sides))
    if not choice.stream:
        _in_memory_check(cfg)
        return load_dataset(cfg)
    if cfg.stream is None:
        (notice or _stderr)(f"dataset {cfg.name}: streamed from {cfg.data_dir}: {choice.why}")
    return open_stream(cfg, src)


# Values of those fields that say what the in-memory path does anyway: it keeps the whole image
# (crop_pct 1.0), so one spec can run on either path (ablations/stream*.yaml).
IN_MEMORY_ALSO = {"crop_pct": 1.0}


def _in_memory_check(cfg: DataConfig) -> None:
    for key in STREAM_ONLY_FIELDS:
        value = getattr(cfg, key)
        if value != DataConfig.model_fields[key].default and value != IN_MEMORY_ALSO.get(key):
            raise ConfigError(f"dataset.{key}: applies to the streamed path only (timm's per-image "
                              f"transforms); set dataset.stream: true, or remove {key}")


def _gb(gb: float) -> str:
    return f"{gb:,.1f}" if gb >= 0.1 else f"{gb:.2g}"  # a test tree is not "0.0 GB"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def is_streamed(data) -> bool:
    return isinstance(data, StreamData)
