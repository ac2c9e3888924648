"""Models: the skeleton with a token-mixer slot (isotropic or pyramid), and timm references."""

from mixerlab.models.factory import (
    LAYOUTS,
    canonical,
    check_model,
    create_model,
    list_models,
    relevant_factors,
    uses_pos_embed,
)
from mixerlab.models.isotropic import Block, IsotropicNet
from mixerlab.models.mixers import get_mixer, list_mixers, register_mixer
from mixerlab.models.pyramid import PyramidNet
from mixerlab.models.reference import create_reference, list_references, register_reference
from mixerlab.models.stems import STEMS

__all__ = [
    "LAYOUTS", "STEMS", "Block", "IsotropicNet", "PyramidNet", "canonical", "check_model",
    "create_model", "create_reference", "get_mixer", "list_mixers", "list_models", "list_references", "register_mixer",
    "register_reference", "relevant_factors", "uses_pos_embed",
]
