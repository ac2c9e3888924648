"""The layout registry: how the skeleton arranges its blocks (the ``layout`` factor).

Contract: a layout is a model class built as ``cls(cfg)`` from a
:class:`~mixerlab.config.ModelConfig`; it answers timm's model methods and ``stage_plan()``
(one row per stage, for ``mixerlab describe``). ``uses`` names the ModelConfig fields only
this layout reads (the pyramid's ``downsample``): elsewhere they have no effect, so sweeps
collapse their levels into one trial, as they do for a mixer's factors.
"""

from __future__ import annotations

from torch import nn

from mixerlab.errors import ConfigError

# name -> model class; each class carries its ``uses`` (set by register_layout).
LAYOUTS: dict[str, type[nn.Module]] = {}


def register_layout(name: str, *, uses: tuple[str, ...] = ()):
    """Class decorator: register a layout under ``name``; ``uses``: the fields it alone reads."""

    def wrap(cls):
        cls.uses = tuple(uses)
        LAYOUTS[name] = cls
        return cls

    return wrap


def get_layout(name: str) -> type[nn.Module]:
    if name not in LAYOUTS:
        raise ConfigError(f"layout: unknown '{name}'; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def list_layouts() -> list[str]:
    return list(LAYOUTS)
