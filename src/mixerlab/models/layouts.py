"""The layout registry: how the skeleton arranges its blocks (the ``layout`` factor).

Contract: a layout is a model class built as ``cls(cfg)`` from a
:class:`~mixerlab.config.ModelConfig`; it answers timm's model methods and ``stage_plan()``
(one row per stage, for ``mixerlab describe``). ``uses`` names the ModelConfig fields only
this layout reads (the pyramid's ``downsample``): elsewhere they have no effect, so sweeps
collapse their levels into one trial, as they do for a mixer's factors. ``stages`` (the class attribute ``n_stages``) is the
number of resolutions: 1 for a layout that keeps one grid and width through every block (its
cost is then affine in depth, which the capacity matcher uses); a layout of more stages halves
the grid's side at each stage after the first, so the model factory checks that every stage
gets a block and a token (models/factory.py). Code asks these entries, never a layout's name.
"""

from __future__ import annotations

from torch import nn

from mixerlab.errors import ConfigError

# name -> model class; each class carries its ``uses`` (set by register_layout).
LAYOUTS: dict[str, type[nn.Module]] = {}


def register_layout(name: str, *, uses: tuple[str, ...] = (), stages: int = 1):
    """Class decorator: register a layout under ``name``; ``uses``: the fields it alone reads;
    ``stages``: its number of resolutions (1: isotropic)."""

    def wrap(cls):
        cls.uses, cls.n_stages = tuple(uses), stages
        LAYOUTS[name] = cls
        return cls

    return wrap


def get_layout(name: str) -> type[nn.Module]:
    if name not in LAYOUTS:
        raise ConfigError(f"layout: unknown '{name}'; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def list_layouts() -> list[str]:
    return list(LAYOUTS)


def layout_uses(name: str) -> tuple[str, ...]:
    """The fields only layout ``name`` reads; () for a name not registered (an old record)."""
    return getattr(LAYOUTS.get(name), "uses", ())
