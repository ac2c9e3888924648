"""Which fields are factors: the one definition the sweep and the analysis share.

A spec's grid may vary any of :data:`GRID_FACTORS`; the analysis treats every one of them as
a factor of the trial table (:func:`analysis_factors`), so a varied factor is compared, never
pooled as if its levels were seeds. The lists are derived from the typed configuration
(:mod:`mixerlab.config`), so a field added there is a factor in both places at once.
"""

from __future__ import annotations

from mixerlab.config import ModelConfig

# The model's fields (``model`` selects reference architectures), less the data set's shape.
MODEL_FACTORS = tuple(k for k in ModelConfig.model_fields if k not in ("image_size", "in_chans", "num_classes"))
# The input's side: varied with the patch size, it holds the token grid fixed while the
# information per image changes (the second sweep of Nguyen et al. 2024, arXiv:2406.09415).
# Each trial resizes the loaded data set at its start (data.registry.resized).
DATA_FACTORS = ("image_size",)
# Recipe values a grid may vary, or a spec may tune per arm (``nuisance:``).
RECIPE_FACTORS = ("lr", "weight_decay", "batch_size", "epochs", "schedule", "label_smoothing",
                  "grad_clip", "mixup", "cutmix", "ema", "precise_bn")
GRID_FACTORS = MODEL_FACTORS + DATA_FACTORS + RECIPE_FACTORS

# In the trial table ``model`` and ``mixer`` are one column, ``variant`` (ModelConfig.label:
# the mixer, or the reference architecture), so a study comparing both reads as one factor.
LABELLED = ("model", "mixer")
# Structure before scale: where the layout (or stem) varies, the patch size follows from it,
# and design_factors keeps the earlier of two confounded factors.
STRUCTURE = ("layout", "stem")
# Columns that are not grid factors but still tell trials apart: each capacity matching is its
# own comparison, and studies analysed together may differ in their training subset.
TABLE_FACTORS = ("match_by",)
STUDY_FACTORS = ("train_subset",)


def analysis_factors() -> tuple[str, ...]:
    """Every factor of the trial table, in the order reports list them: the variant, the
    structure, the other model factors, the input, the matching, the recipe, the study."""
    model = [f for f in MODEL_FACTORS if f not in LABELLED and f not in STRUCTURE]
    return ("variant", *STRUCTURE, *model, *DATA_FACTORS, *TABLE_FACTORS, *RECIPE_FACTORS,
            *STUDY_FACTORS)


def column(factor: str) -> str:
    """The trial table's column for a grid factor (``mixer`` and ``model`` -> ``variant``)."""
    return "variant" if factor in LABELLED else factor
