"""Weight initialisation: the truncated normal of ViT and timm, as mixerlab's models use it.

``trunc_normal_`` is timm's (``timm.layers.weight_init.trunc_normal_``, itself the inverse-CDF
method PyTorch's ``nn.init.trunc_normal_`` used until recent releases; Burkardt, "The Truncated
Normal Distribution"): a uniform draw on the truncated CDF range mapped through erfinv. It is
written here for two reasons. PyTorch 2.14's ``nn.init.trunc_normal_`` now redraws values
outside ``[a, b]`` instead, which consumes the random stream differently, so with it every
committed trial's initial weights (and test accuracy) would change. And importing timm to get
the function loads torchvision and torch._dynamo, about 2 s of every trial worker's start-up.
tests/test_models.py checks it equal to timm's, bit for bit.
"""

from __future__ import annotations

import math

import torch


def trunc_normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0,
                  a: float = -2.0, b: float = 2.0) -> torch.Tensor:
    """Fill ``tensor`` in place from N(mean, std^2) truncated to ``[a, b]`` (absolute bounds,
    as timm's), with timm's arithmetic and random draws."""
    def norm_cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        lo, hi = norm_cdf((a - mean) / std), norm_cdf((b - mean) / std)
        tensor.uniform_(2 * lo - 1, 2 * hi - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
    return tensor
