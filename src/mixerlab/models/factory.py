"""``create_model(cfg)``: the one entry point that builds any model, after checking it can work."""

from __future__ import annotations

from torch import nn

from mixerlab.config import ModelConfig
from mixerlab.errors import ConfigError
from mixerlab.models.isotropic import IsotropicNet
from mixerlab.models.mixers import get_mixer, list_mixers
from mixerlab.models.reference import create_reference, is_reference, list_references

# Factors every isotropic model has, whatever its mixer.
SHARED_FACTORS = ("patch_size", "depth", "width", "mlp_ratio", "norm")


def check_model(cfg: ModelConfig) -> None:
    """Raise :class:`ConfigError` naming the field and the allowed values if ``cfg`` cannot work."""
    for name in ("image_size", "in_chans", "num_classes"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}: must be a positive integer (got {getattr(cfg, name)})")
    if cfg.model != "isotropic":
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
    if "kernel_size" in info.uses and (cfg.kernel_size <= 0 or cfg.kernel_size % 2 == 0):
        raise ConfigError(
            f"kernel_size: must be a positive odd integer for mixer '{cfg.mixer}' "
            f"(got {cfg.kernel_size}); e.g. 3, 5, 7, 9"
        )
    if "heads" in info.uses:
        if cfg.heads <= 0 or cfg.width % cfg.heads:
            allowed = [h for h in range(1, cfg.width + 1) if cfg.width % h == 0]
            raise ConfigError(
                f"heads: {cfg.heads} does not divide width {cfg.width}; allowed heads: {allowed}"
            )


def create_model(cfg: ModelConfig) -> nn.Module:
    """Build the model ``cfg`` describes (isotropic skeleton or timm reference)."""
    check_model(cfg)
    if cfg.model == "isotropic":
        return IsotropicNet(cfg)
    return create_reference(cfg.model, cfg.image_size, cfg.in_chans, cfg.num_classes)


def relevant_factors(cfg: ModelConfig) -> tuple[str, ...]:
    """The model factors that change the model ``cfg`` builds (others have no effect)."""
    if cfg.model != "isotropic":
        return ("model",)
    return tuple(dict.fromkeys(("mixer", *SHARED_FACTORS, *get_mixer(cfg.mixer).uses)))


def canonical(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with factors its mixer ignores reset to their defaults, so duplicates compare equal."""
    keep = set(relevant_factors(cfg)) | {"model", "image_size", "in_chans", "num_classes"}
    default = ModelConfig()
    return cfg.model_copy(
        update={k: getattr(default, k) for k in ModelConfig.model_fields if k not in keep}
    )


def uses_pos_embed(cfg: ModelConfig) -> bool:
    return cfg.model == "isotropic" and get_mixer(cfg.mixer).pos_embed


def list_models() -> dict[str, list[str]]:
    return {"mixers": list_mixers(), "references": list_references()}
