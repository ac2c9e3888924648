"""``create_model(cfg)``: the one entry point that builds any model, after checking it can work."""

from __future__ import annotations

from torch import nn

from mixerlab.config import ModelConfig
from mixerlab.errors import ConfigError
from mixerlab.models import isotropic, pyramid  # noqa: F401  (each registers its layout)
from mixerlab.models.layouts import get_layout, list_layouts
from mixerlab.models.mixers import get_mixer, list_mixers
from mixerlab.models.reference import create_reference, is_reference, list_references
from mixerlab.models.stems import STEMS, is_power_of_two

# Factors every model of mixerlab's skeleton has, whatever its mixer and layout. A layout's
# own factors are its ``uses`` (models/layouts.py), a mixer's its ``uses`` (mixers/registry.py).
SHARED_FACTORS = ("patch_size", "depth", "width", "mlp_ratio", "norm", "layout", "stem")


def check_model(cfg: ModelConfig) -> None:
    """Raise :class:`ConfigError` naming the field and the allowed values if ``cfg`` cannot work."""
    for name in ("image_size", "in_chans", "num_classes"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}: must be a positive integer (got {getattr(cfg, name)})")
    if not cfg.is_skeleton:
        if not is_reference(cfg.model):
            create_reference(cfg.model, cfg.image_size, cfg.in_chans, cfg.num_classes)  # raises
        return
    info = get_mixer(cfg.mixer)
    for name in ("depth", "width", "patch_size"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}: must be a positive integer (got {getattr(cfg, name)})")
    if cfg.mlp_ratio <= 0:
        raise ConfigError(f"mlp_ratio: must be positive (got {cfg.mlp_ratio})")
    if cfg.image_size % cfg.patch_size:
        divisors = [d for d in range(1, cfg.image_size + 1) if cfg.image_size % d == 0]
        raise ConfigError(
            f"patch_size: {cfg.patch_size} does not divide image_size {cfg.image_size}; "
            f"allowed patch sizes: {divisors}"
        )
    _check_stem(cfg)
    _check_layout(cfg)
    if "kernel_size" in info.uses and (cfg.kernel_size <= 0 or cfg.kernel_size % 2 == 0):
        raise ConfigError(
            f"kernel_size: must be a positive odd integer for mixer '{cfg.mixer}' "
            f"(got {cfg.kernel_size}); e.g. 3, 5, 7, 9"
        )
    if info.has_heads:
        if cfg.heads <= 0 or cfg.width % cfg.heads:
            allowed = [h for h in range(1, cfg.width + 1) if cfg.width % h == 0]
            raise ConfigError(
                f"heads: {cfg.heads} does not divide width {cfg.width}; allowed heads: {allowed}"
            )


def _check_stem(cfg: ModelConfig) -> None:
    if cfg.stem == "conv" and not is_power_of_two(cfg.patch_size):
        allowed = [p for p in _patch_sizes(cfg) if is_power_of_two(p)]
        raise ConfigError(
            f"stem: 'conv' needs a power-of-two patch_size (got {cfg.patch_size}); "
            f"use patch_size {_or(allowed)}, or stem 'patch'"
        )


def _check_layout(cfg: ModelConfig) -> None:
    """A layout of several stages (the registry's ``stages``) needs a block per stage and, as
    each stage halves the side, a stem grid of at least 2**(stages-1) tokens per side."""
    stages = get_layout(cfg.layout).n_stages  # raises for an unknown layout
    if stages == 1:
        return
    if cfg.depth < stages:
        raise ConfigError(
            f"depth: the {cfg.layout} layout needs at least one block per stage, {stages} in all "
            f"(got {cfg.depth}); use depth >= {stages} or layout 'isotropic'"
        )
    need = 2 ** (stages - 1)
    side = cfg.image_size // cfg.patch_size
    if side < need:
        ok = [p for p in _patch_sizes(cfg) if cfg.image_size // p >= need
              and (cfg.stem != "conv" or is_power_of_two(p))]
        fix = f"use patch_size {_or(ok)} (largest {max(ok)})" if ok else "use a larger image_size"
        raise ConfigError(
            f"patch_size: {cfg.patch_size} gives a {side}x{side} grid, too small for layout "
            f"'{cfg.layout}' ({stages} stages each halve the side, so the stem grid needs a side of at "
            f"least {need}); {fix}, or layout 'isotropic'"
        )


def _patch_sizes(cfg: ModelConfig) -> list[int]:
    return [d for d in range(1, cfg.image_size + 1) if cfg.image_size % d == 0]


def _or(values: list) -> str:
    return ", ".join(map(str, values[:-1])) + f" or {values[-1]}" if len(values) > 1 else str(values[0])


def has_heads(cfg: ModelConfig) -> bool:
    """Whether ``cfg`` is the skeleton with a mixer that splits its width among heads: the
    mixer registry's ``has_heads``, asked here for the capacity matcher and the execution
    chooser alike."""
    return cfg.is_skeleton and get_mixer(cfg.mixer).has_heads


def create_model(cfg: ModelConfig) -> nn.Module:
    """Build the model ``cfg`` describes: the skeleton in the arrangement its ``layout`` names
    (the layout registry, models/layouts.py), or a reference architecture."""
    check_model(cfg)
    if not cfg.is_skeleton:
        return create_reference(cfg.model, cfg.image_size, cfg.in_chans, cfg.num_classes)
    return get_layout(cfg.layout)(cfg)


def relevant_factors(cfg: ModelConfig) -> tuple[str, ...]:
    """The model factors that change the model ``cfg`` builds (others have no effect).

    ``channel_mlp_ratio`` counts only when set: unset, the channel MLP follows ``mlp_ratio``.
    A layout's own factors (the pyramid's ``downsample``) count only in that layout.
    """
    if not cfg.is_skeleton:
        return ("model",)
    own = ("channel_mlp_ratio",) if cfg.channel_mlp_ratio is not None else ()
    return tuple(dict.fromkeys(("mixer", *SHARED_FACTORS, *own, *get_mixer(cfg.mixer).uses,
                                *get_layout(cfg.layout).uses)))


def canonical(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with factors its mixer ignores reset to their defaults, so duplicates compare equal."""
    keep = set(relevant_factors(cfg)) | {"model", "image_size", "in_chans", "num_classes"}
    default = ModelConfig()
    return cfg.model_copy(
        update={k: getattr(default, k) for k in ModelConfig.model_fields if k not in keep}
    )


def uses_pos_embed(cfg: ModelConfig) -> bool:
    return cfg.is_skeleton and get_mixer(cfg.mixer).pos_embed


def list_models() -> dict[str, list[str]]:
    return {"mixers": list_mixers(), "layouts": list_layouts(), "stems": list(STEMS),
            "references": list_references()}
