"""Reference architectures, built by timm itself (no re-implementations).

Small registered variants are named by what defines them, timm-style
(``convmixer_256_8_ks5_p2`` = width 256, depth 8, kernel 5, patch 2). Any other name
timm knows (``timm.list_models()``) is accepted too, e.g. the paper's ``convmixer_1536_20``.
All are built for the data set's ``image_size``, ``in_chans`` and ``num_classes``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mixerlab.errors import ConfigError

_REFERENCES: dict[str, Callable[..., nn.Module]] = {}


def register_reference(fn):
    _REFERENCES[fn.__name__] = fn
    return fn


@register_reference
def convmixer_256_8_ks5_p2(image_size, in_chans, num_classes):
    """ConvMixer-256/8, the CIFAR-10 model of the paper's repository (594,186 params at 10 classes)."""
    from timm.models.convmixer import ConvMixer
    return ConvMixer(256, 8, kernel_size=5, patch_size=2, in_chans=in_chans, num_classes=num_classes)


@register_reference
def convmixer_64_6_ks5_p2(image_size, in_chans, num_classes):
    """A CPU-sized ConvMixer, the same scale as mixerlab's default isotropic model."""
    from timm.models.convmixer import ConvMixer
    return ConvMixer(64, 6, kernel_size=5, patch_size=2, in_chans=in_chans, num_classes=num_classes)


@register_reference
def vit_64_6_h4_p4(image_size, in_chans, num_classes):
    """A CPU-sized ViT with a class token, 64 wide, 6 deep, 4 heads, 4 px patches."""
    from timm.models.vision_transformer import VisionTransformer
    return VisionTransformer(
        img_size=image_size, patch_size=4, in_chans=in_chans, num_classes=num_classes,
        embed_dim=64, depth=6, num_heads=4, mlp_ratio=2.0,
    )


@register_reference
def mixer_64_6_p4(image_size, in_chans, num_classes):
    """A CPU-sized MLP-Mixer, 64 wide, 6 blocks, 4 px patches."""
    from timm.models.mlp_mixer import MlpMixer
    return MlpMixer(
        num_classes=num_classes, img_size=image_size, in_chans=in_chans, patch_size=4,
        num_blocks=6, embed_dim=64,
    )


@register_reference
def resnet18(image_size, in_chans, num_classes):
    """ResNet-18 (He et al. 2016): the pyramid, non-patch baseline."""
    return _timm().create_model("resnet18", in_chans=in_chans, num_classes=num_classes)


def list_references() -> list[str]:
    return sorted(_REFERENCES)


def reference_description(name: str) -> str:
    """The first line of a registered reference builder's docstring ("" if it has none)."""
    doc = (_REFERENCES[name].__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def _timm():
    """timm, imported when a reference architecture is asked for: importing it loads
    torchvision and torch._dynamo (~2 s), which a trial of mixerlab's own models never needs."""
    import timm
    return timm


def is_reference(name: str) -> bool:
    return name in _REFERENCES or name in _timm().list_models()


def create_reference(name: str, image_size: int, in_chans: int, num_classes: int) -> nn.Module:
    if name in _REFERENCES:
        return _REFERENCES[name](image_size, in_chans, num_classes)
    timm = _timm()
    if name not in timm.list_models():
        raise ConfigError(
            f"model: unknown '{name}'; use 'isotropic', one of {', '.join(list_references())}, "
            "or a name from timm.list_models() (see `mixerlab models`)"
        )
    kw = dict(pretrained=False, in_chans=in_chans, num_classes=num_classes)
    try:  # patch-based timm models take the image size; CNNs do not accept it
        return timm.create_model(name, img_size=image_size, **kw)
    except TypeError:
        return timm.create_model(name, **kw)
