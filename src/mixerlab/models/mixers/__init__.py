"""Token mixers: one file each, registered on import."""

from mixerlab.models.mixers import attention, conv, identity, mlp, pool, random  # noqa: F401
from mixerlab.models.mixers.registry import MixerInfo, get_mixer, list_mixers, register_mixer

__all__ = ["MixerInfo", "get_mixer", "list_mixers", "register_mixer"]
