"""Item 2, follow-up: the attention kernel for the least efficient mixer, by token count.

Item 2 found attention at patch 4 (49 tokens, head dim 16) the least efficient mixer on
CPU, with PyTorch's fused attention kernel (a blocked flash kernel) its largest cost. The
same function written as three batched matmuls (``plain_attention``) has no blocking
overhead on small grids. This item times a training step of the attention model with each
kernel at several token counts (28 px at patch 7, 4, 2 and larger inputs at patch 4), both
orders alternated twice, and reports plain / fused images per second: above 1 where the
plain form is faster. The mixer uses the fused kernel unless told otherwise
(``Attention.kernel``): a switch needs this ratio clearly above 1 on the machine at hand.

    python benchmarks/attention_kernels.py [--quick] [--device auto]
"""

from __future__ import annotations

import torch
from figures import Context, figure, standalone

from mixerlab.config import ModelConfig, TrainConfig
from mixerlab.measure import benchmark_training
from mixerlab.models import create_model
from mixerlab.models.mixers.attention import Attention

ITEM = "attention_kernels"
# (image size, patch size): 16, 49, 64, 100, 144 and 196 tokens.
GRIDS = ((28, 7), (28, 4), (32, 4), (40, 4), (48, 4), (28, 2))
MODEL = ModelConfig(mixer="attention")  # the recipe's shape, as item 2: depth 6, width 64
BATCH = 128


def rate(model, cfg: ModelConfig, kernel: str, device, quick: bool) -> float:
    for m in model.modules():
        if isinstance(m, Attention):
            m.kernel = kernel
    timing = dict(warmup=1, repeats=2, iters=1) if quick else dict(warmup=2, repeats=5, iters=2)
    return benchmark_training(model, (cfg.in_chans, cfg.image_size, cfg.image_size),
                              num_classes=cfg.num_classes, batch_size=4 if quick else BATCH,
                              device=device, channels_last=TrainConfig().channels_last,
                              **timing)["train_step_images_per_s"]


def run(ctx: Context) -> list[dict]:
    base = MODEL.model_copy(update=dict(depth=1, width=16)) if ctx.quick else MODEL
    grids = GRIDS[:2] if ctx.quick else GRIDS
    threads = torch.get_num_threads()
    rows = []
    for size, patch in grids:
        cfg = base.model_copy(update=dict(image_size=size, patch_size=patch))
        n = (size // patch) ** 2
        torch.manual_seed(0)
        model = create_model(cfg)
        rates = {"plain": [], "fused": []}
        for order in (("plain", "fused"), ("fused", "plain")):  # alternate: drift cancels
            for kernel in order:
                rates[kernel].append(rate(model, cfg, kernel, ctx.device, ctx.quick))
        plain, fused = (sum(rates[k]) / len(rates[k]) for k in ("plain", "fused"))
        rows.append(figure(ITEM, f"N={n} ({size} px, p{patch}): plain / fused attention", plain / fused,
                           "x", f"training images/s {plain:.0f} vs {fused:.0f}; depth {cfg.depth}, width "
                           f"{cfg.width}, batch {4 if ctx.quick else BATCH}, {threads} threads"))
    return rows


def main() -> None:
    standalone(__doc__.splitlines()[0], ITEM, run)


if __name__ == "__main__":
    main()
