"""Command-line options shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import get_args

from mixerlab.config import ModelConfig, parse

_DEFAULT = ModelConfig()


def _choices(name: str) -> tuple[str, ...]:
    """The values a Literal field of ModelConfig allows (no torch import for --help)."""
    return get_args(ModelConfig.model_fields[name].annotation)


class Registered:
    """An option's choices read from a registry when first needed (parsing the option, or
    printing ``--help``), so every registered entry is offered, a plugin's too, and a command
    that does not use the option never imports the registry (it imports torch)."""

    def __init__(self, names):
        self._names, self._cached = names, None

    def _all(self) -> list[str]:
        if self._cached is None:
            self._cached = list(self._names())
        return self._cached

    def __contains__(self, value) -> bool:
        return value in self._all()

    def __iter__(self):
        return iter(self._all())


def _mixers() -> list[str]:
    from mixerlab.models.mixers import list_mixers

    return list_mixers()


def dataset_names() -> list[str]:
    """Every data set a trial can read: the in-memory sources and the streamed ones."""
    from mixerlab.data import list_datasets
    from mixerlab.data.stream import list_streams

    return sorted(set(list_datasets()) | set(list_streams()))


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (defaults: mixerlab's isotropic ConvMixer-like model)")
    g.add_argument("--model", default=_DEFAULT.model,
                   help="'isotropic' (default; alias 'skeleton': mixerlab's skeleton in either --layout) "
                        "or a reference architecture (see `mixerlab models`)")
    g.add_argument("--mixer", default=_DEFAULT.mixer, choices=Registered(_mixers), metavar="MIXER",
                   help="token mixer of the skeleton: %(choices)s (the mixer registry)")
    for name, typ in (("patch_size", int), ("kernel_size", int), ("depth", int), ("width", int),
                      ("mlp_ratio", float), ("heads", int), ("image_size", int),
                      ("in_chans", int), ("num_classes", int)):
        g.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None,
                       help=f"default {getattr(_DEFAULT, name)}")
    g.add_argument("--channel-mlp-ratio", type=float, default=None,
                   help="hidden ratio of the channel MLP when it differs from --mlp-ratio "
                        "(default: --mlp-ratio; the token MLP of mixer 'mlp' keeps --mlp-ratio)")
    for name, what in (("norm", ""),
                       ("layout", "; pyramid = 3 stages, each halving the grid and doubling the width"),
                       ("stem", "; conv = overlapping 3x3 stride-2 convs, power-of-two patch sizes"),
                       ("downsample", "; pyramid only: merge2 = non-overlapping 2x2 merge (Swin)")):
        g.add_argument(f"--{name}", choices=_choices(name), default=None,
                       help=f"default {getattr(_DEFAULT, name)}{what}")


def model_config(args: argparse.Namespace, **overrides) -> ModelConfig:
    """The ModelConfig the options describe; ``overrides`` fill options left unset."""
    values = {k: v for k, v in overrides.items() if v is not None}
    for name in ModelConfig.model_fields:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    return parse(ModelConfig, values, "model options")
