"""Capacity matching: solve a variant's width so that its cost equals a reference's.

``match: {by: params}`` (or ``macs``) compares mixers at equal cost rather than equal width.
The solver moves the width first (in steps of ``heads`` for a mixer that splits its width
among heads, as the mixer registry says), then, only where those steps are too coarse, the
channel MLP's hidden width. :func:`odd_shape` names a solution that is equal in cost but far
from a usual block. Grid expansion (:mod:`mixerlab.sweep.trials`) calls these per arm.
"""

from __future__ import annotations

from functools import lru_cache

from mixerlab.config import ModelConfig
from mixerlab.errors import ConfigError
from mixerlab.measure import count_flops, count_params
from mixerlab.models import create_model, get_layout, has_heads

# How far a matched variant's shape may drift from a usual block before the plan says so: the
# channel MLP's ratio within 2x of the spec's mlp_ratio either way, and heads of at least 4
# channels. Every committed spec stays inside (ratios 1.4-2.8, head dims >= 7).
RATIO_DRIFT = 2.0
MIN_HEAD_DIM = 4


@lru_cache(maxsize=4096)
def _cost_json(cfg_json: str, by: str) -> int:
    cfg = ModelConfig.model_validate_json(cfg_json)
    if cfg.is_skeleton and get_layout(cfg.layout).n_stages == 1 and cfg.depth > 2:
        # The isotropic trunk is ``depth`` identical blocks at one grid and width, so both
        # parameters and MACs are exactly affine in depth: two shallow models give the cost of
        # any depth. Solving a width builds dozens of models; at ConvMixer-1536/20 or a
        # 32-block ImageNet arm that is most of a dry run's planning time.
        one, two = (_cost_json(cfg.model_copy(update={"depth": d}).model_dump_json(), by)
                    for d in (1, 2))
        return one + (cfg.depth - 1) * (two - one)
    model = create_model(cfg)
    if by == "params":
        return count_params(model)["params"]
    return count_flops(model, (cfg.in_chans, cfg.image_size, cfg.image_size))["macs"]


def cost(cfg: ModelConfig, by: str) -> int:
    """Parameters (``by="params"``) or MACs per image (``"macs"``) of ``cfg``'s model (cached)."""
    return _cost_json(cfg.model_dump_json(), by)


def _closest(cost_at, lo: int, target: int) -> int:
    """The smallest k >= lo whose cost reaches ``target``, or its predecessor, whichever is closer
    (cost grows with k). Bracket by doubling, so a huge model is never built."""
    hi = max(lo, 1)
    while cost_at(hi) < target:
        lo, hi = hi + 1, hi * 2
        if hi > 1 << 16:
            return -1
    while lo < hi:
        mid = (lo + hi) // 2
        if cost_at(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    return min({max(1, lo - 1), lo}, key=lambda k: abs(cost_at(k) - target))


def solve_width(cfg: ModelConfig, target: int, by: str, tolerance: float) -> tuple[ModelConfig, int]:
    """Match ``cfg``'s cost to ``target`` within ``tolerance``: first the width (a multiple of
    ``heads`` for a mixer with heads), then, only where the width's steps are too coarse to land
    within the tolerance, the channel MLP's hidden width (``channel_mlp_ratio`` = hidden / width,
    so every stage of a pyramid gets an integer hidden width)."""
    step = cfg.heads if has_heads(cfg) else 1
    width_at = lambda k: cost(cfg.model_copy(update={"width": k * step}), by)  # noqa: E731
    k = _closest(width_at, 1, target)
    if k < 0:
        raise ConfigError(f"match: {cfg.label} cannot reach {target:,} {by} below width 65536; "
                          "lower the reference or remove this variant")
    solved, reached = cfg.model_copy(update={"width": k * step}), width_at(k)
    if abs(reached - target) > tolerance * target:
        solved, reached = _solve_hidden(cfg, target, by, k, step, (solved, reached))
    if abs(reached - target) > tolerance * target:
        raise ConfigError(
            f"match: no width brings {cfg.label} (patch {cfg.patch_size}, {cfg.layout}) within "
            f"{tolerance:.0%} of {target:,} {by} (closest: width {solved.width}"
            + (f", channel_mlp_ratio {solved.channel_mlp_ratio:.3g}" if solved.channel_mlp_ratio else "")
            + f", {reached:,}); loosen match.tolerance or change the reference"
        )
    return solved, reached


def _solve_hidden(cfg: ModelConfig, target: int, by: str, k: int, step: int,
                  best_so_far: tuple[ModelConfig, int]) -> tuple[ModelConfig, int]:
    """The width alone misses: try the two widths around the target, each with the channel
    MLP's hidden width solved, and keep whichever lands closer. (Preferring, among those within
    the tolerance, the ratio nearest the usual one would give more ordinary blocks, but it
    changes the committed studies' plans; odd shapes are warned of instead.)"""
    ratio = cfg.channel_mlp_ratio or cfg.mlp_ratio
    solved, reached = best_so_far
    best = (abs(reached - target), solved, reached)
    for kk in {max(1, k - 1), k, k + 1}:
        w = kk * step
        base = cfg.model_copy(update={"width": w})
        hidden_at = lambda h: cost(base.model_copy(update={"channel_mlp_ratio": h / w}), by)  # noqa: E731,B023
        h = _closest(hidden_at, 1, target)
        if h > 0 and h / w <= 8 * ratio:  # keep the block recognisable: at most 8x the ratio
            c = hidden_at(h)
            if abs(c - target) < best[0]:
                best = (abs(c - target), base.model_copy(update={"channel_mlp_ratio": h / w}), c)
    return best[1], best[2]


def odd_shape(cfg: ModelConfig, by: str) -> str | None:
    """Why a matched configuration is a very different block from the reference, or None.

    Matching lands every variant within the tolerance, but where the width's steps are coarse
    (heads, the pyramid's 4x last stage) the second knob can end far from a usual block,
    e.g. attention at width 4 with a channel MLP 13.5x wide. Such a variant is matched in cost
    yet not a fair instance of its mixer; the plan warns instead of refusing, since a study of
    extremes may want it."""
    why = []
    ratio = cfg.channel_mlp_ratio
    if ratio is not None and not cfg.mlp_ratio / RATIO_DRIFT <= ratio <= cfg.mlp_ratio * RATIO_DRIFT:
        why.append(f"channel_mlp_ratio {ratio:.3g} (mlp_ratio {cfg.mlp_ratio:g})")
    if has_heads(cfg) and cfg.width // cfg.heads < MIN_HEAD_DIM:
        why.append(f"{cfg.heads} heads of {cfg.width // cfg.heads} channel(s)")
    if not why:
        return None
    return (f"match by {by}: {cfg.label} ({cfg.layout}, {cfg.stem} stem, patch {cfg.patch_size}) is "
            f"solved to width {cfg.width} with {' and '.join(why)}: equal in cost, but far from a "
            "usual block; compare it with care, or choose a reference nearer its size")
