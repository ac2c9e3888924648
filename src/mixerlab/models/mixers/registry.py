"""The token-mixer registry.

Contract (after MetaFormer, Yu et al. 2022): a mixer is an ``nn.Module`` built as
``cls(dim, grid=(H, W), **factors)`` and maps a normalised (B, C, H, W) tensor to a tensor
of the same shape. The skeleton adds the residual. ``factors`` are exactly the
:class:`~mixerlab.config.ModelConfig` fields the mixer declares in ``uses``; a factor it
does not use has no effect, so sweeps collapse such combinations into one trial.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mixerlab.errors import ConfigError


@dataclass(frozen=True)
class MixerInfo:
    name: str
    cls: type[nn.Module]
    uses: tuple[str, ...] = ()  # ModelConfig factors passed to the constructor
    pos_embed: bool = False  # needs learned position embeddings (permutation-invariant mixers)
    description: str = ""
    paper: str = ""
    # A control mixes no tokens at all (MetaFormer's IdentityFormer): the report measures the
    # real mixers against it, and the answer leaves it out of "among the real mixers".
    control: bool = False
    # bf16 autocast reached fp32's test accuracy, paired over seeds (benchmarks/precision.py):
    # only then may the sweep run this mixer in bf16 where that is faster (mixerlab/execution.py).
    bf16: bool = False

    @property
    def has_heads(self) -> bool:
        """It splits its width among ``heads`` (multi-head attention): the factory requires a
        width divisible by heads, and capacity matching steps the width by heads."""
        return "heads" in self.uses


_MIXERS: dict[str, MixerInfo] = {}


def register_mixer(name: str, *, uses=(), pos_embed=False, paper="", control=False, bf16=False):
    """Class decorator: register a token mixer under ``name`` (``control``: it mixes no tokens;
    ``bf16``: its accuracy in bf16 autocast was shown equal to fp32's)."""

    def wrap(cls):
        doc = (cls.__doc__ or "").strip().splitlines()
        _MIXERS[name] = MixerInfo(name, cls, tuple(uses), pos_embed, doc[0] if doc else "", paper,
                                  control=control, bf16=bf16)
        return cls

    return wrap


def list_mixers() -> list[str]:
    from mixerlab.plugins import load_plugins

    load_plugins()
    return sorted(_MIXERS)


def get_mixer(name: str) -> MixerInfo:
    if name not in _MIXERS:
        from mixerlab.plugins import load_plugins

        load_plugins()
    if name not in _MIXERS:
        raise ConfigError(f"mixer: unknown '{name}'; choose one of {', '.join(list_mixers())}")
    return _MIXERS[name]


def list_controls() -> set[str]:
    """The registered mixers that mix no tokens (the controls a report compares against)."""
    return {name for name in list_mixers() if _MIXERS[name].control}
