"""Models: the skeleton with a token-mixer slot (isotropic or pyramid), and timm references."""

from mixerlab.models.blocks import Block, make_blocks
from mixerlab.models.factory import (
    canonical,
    check_model,
    create_model,
    has_heads,
    list_models,
    relevant_factors,
    uses_pos_embed,
)
from mixerlab.models.isotropic import IsotropicNet
from mixerlab.models.layouts import LAYOUTS, get_layout, layout_uses, list_layouts, register_layout
from mixerlab.models.mixers import get_mixer, list_mixers, register_mixer
from mixerlab.models.pyramid import DOWNSAMPLES, PyramidNet
from mixerlab.models.reference import create_reference, list_references, register_reference
from mixerlab.models.stems import STEMS

__all__ = [
    "DOWNSAMPLES", "LAYOUTS", "STEMS", "Block", "IsotropicNet", "PyramidNet", "canonical", "check_model",
    "create_model", "create_reference", "has_heads", "get_layout", "get_mixer", "layout_uses", "list_layouts", "list_mixers", "list_models",
    "list_references", "make_blocks", "register_layout", "register_mixer", "register_reference",
    "relevant_factors", "uses_pos_embed",
]
