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


# ---- why plain / fused differed between harnesses (issue: 1.2x bare, 0.91x here) -----------
def _alone(cfg: ModelConfig, way_json: str, threads: int, queue) -> None:
    """A fresh process times one way only: the 'bare process' condition."""
    from mixerlab.execution import Execution

    torch.set_num_threads(threads)
    way = Execution.model_validate_json(way_json)
    queue.put(_steps_per_s(cfg, [way], rounds=7)[0])


def _steps_per_s(cfg: ModelConfig, ways, rounds: int) -> list[float]:
    """Training images/s of each way, timed in turns (round after round) in this process."""
    import statistics

    from mixerlab.execution import time_in_turns, train_step

    steps = []
    for way in ways:
        torch.manual_seed(0)
        steps.append(train_step(create_model(cfg), cfg, BATCH, way, torch.device("cpu")))
    times = time_in_turns(steps, torch.device("cpu"), rounds=rounds, warmup=2)
    return [BATCH / statistics.median(t) for t in times]


def kernel_factors(ctx: Context) -> list[dict]:
    """plain / fused at 49 tokens (the recipe's attention at patch 4) under each condition the
    two harnesses could have differed in: threads, precision, memory layout, and one process
    timing both kernels in turns against a fresh process per kernel."""
    import multiprocessing as mp
    import statistics

    from mixerlab.execution import Execution

    cfg = MODEL.model_copy(update=dict(image_size=28, patch_size=4))
    if ctx.quick:
        cfg = cfg.model_copy(update=dict(depth=1, width=16))
    rows, before = [], torch.get_num_threads()
    rounds = 3 if ctx.quick else 9
    try:
        for threads in (1,) if ctx.quick else (1, 2):
            torch.set_num_threads(threads)
            for precision in ("fp32", "bf16"):
                for layout in (True, False):
                    ways = [Execution(precision=precision, channels_last=layout, attention_kernel=k)
                            for k in ("fused", "plain")]
                    fused, plain = _steps_per_s(cfg, ways, rounds)
                    rows.append(figure("kernel_factors", f"N=49, {threads} thread(s), {ways[0].label.replace(' fused', '')}: "
                                       "plain / fused, one process in turns", plain / fused, "x",
                                       f"training images/s {plain:.0f} vs {fused:.0f}; depth {cfg.depth}, "
                                       f"width {cfg.width}, batch {BATCH}, {rounds} rounds"))
            spawn = mp.get_context("spawn")
            for precision in ("fp32",):
                got = {}
                order = ("fused", "plain") if ctx.quick else ("fused", "plain", "plain", "fused")
                for kernel in order:  # alternated (ABBA): a drift falls on both alike
                    q = spawn.Queue()
                    way = Execution(precision=precision, channels_last=True, attention_kernel=kernel)
                    p = spawn.Process(target=_alone, args=(cfg, way.model_dump_json(), threads, q))
                    p.start()
                    got.setdefault(kernel, []).append(q.get(timeout=600))
                    p.join()
                plain, fused = (statistics.mean(got[k]) for k in ("plain", "fused"))
                rows.append(figure("kernel_factors", f"N=49, {threads} thread(s), {precision} channels_last: plain / "
                                   "fused, a fresh process per kernel", plain / fused, "x",
                                   f"training images/s {plain:.0f} vs {fused:.0f}; {len(got['plain'])} "
                                   "process(es) per kernel"))
    finally:
        torch.set_num_threads(before)
    return rows


def main() -> None:
    standalone(__doc__.splitlines()[0], ITEM, lambda ctx: run(ctx) + kernel_factors(ctx))


if __name__ == "__main__":
    main()
