"""Item 2, follow-up: the attention kernel for the least efficient mixer, by token count.

Item 2 found attention at patch 4 (49 tokens, head dim 16) the least efficient mixer on
CPU, with PyTorch's fused attention kernel (a blocked flash kernel) its largest cost. The
same function written as three batched matmuls (``plain_attention``) has no blocking
overhead on small grids. This item times a training step of the attention model with each
kernel at several token counts (28 px at patch 7, 4, 2 and larger inputs at patch 4), the two
kernels' steps timed in turns (the benchmarks' one timing helper, ``_timing.py``), and
reports plain / fused images per second: above 1 where the plain form is faster. Every figure
is a ratio of rates measured in turns in this one run. The mixer uses the fused kernel unless
told otherwise (``Attention.kernel``): a switch needs this ratio clearly above 1 on the
machine at hand.

    python benchmarks/attention_kernels.py [--quick] [--device auto]
"""

from __future__ import annotations

import torch
from _timing import ENGINE_WAY, loop, train_step_seconds
from figures import Context, figure, standalone

from mixerlab.config import ModelConfig
from mixerlab.execution import Execution

ITEM = "attention_kernels"
# (image size, patch size): 16, 49, 64, 100, 144 and 196 tokens.
GRIDS = ((28, 7), (28, 4), (32, 4), (40, 4), (48, 4), (28, 2))
MODEL = ModelConfig(mixer="attention")  # the recipe's shape, as item 2: depth 6, width 64
BATCH = 128
KERNELS = ("plain", "fused")


def rate(cfg: ModelConfig, device, quick: bool) -> dict[str, float]:
    """Training images/s of ``cfg`` with each attention kernel (fp32, the engine's layout),
    the two kernels' steps timed in turns. Twice the helper's rounds, so that each kernel
    keeps the timed steps it had when the two were alternated by hand (20; 4 at smoke size)."""
    batch = 4 if quick else BATCH
    ways = [ENGINE_WAY.model_copy(update={"attention_kernel": k}) for k in KERNELS]
    timing = loop(quick)
    seconds = train_step_seconds([(cfg, way) for way in ways], batch, device,
                                 **{**timing, "rounds": 2 * timing["rounds"]})
    return {k: batch / s for k, s in zip(KERNELS, seconds)}


def run(ctx: Context) -> list[dict]:
    base = MODEL.model_copy(update=dict(depth=1, width=16)) if ctx.quick else MODEL
    grids = GRIDS[:2] if ctx.quick else GRIDS
    threads = torch.get_num_threads()
    rows = []
    for size, patch in grids:
        cfg = base.model_copy(update=dict(image_size=size, patch_size=patch))
        n = (size // patch) ** 2
        rates = rate(cfg, ctx.device, ctx.quick)
        plain, fused = rates["plain"], rates["fused"]
        rows.append(figure(ITEM, f"N={n} ({size} px, p{patch}): plain / fused attention", plain / fused,
                           "x", f"training images/s {plain:.0f} vs {fused:.0f}; depth {cfg.depth}, width "
                           f"{cfg.width}, batch {4 if ctx.quick else BATCH}, {threads} threads"))
    return rows


# ---- why plain / fused differed between harnesses (issue: 1.2x bare, 0.91x here) -----------
def _alone(cfg: ModelConfig, way_json: str, threads: int, queue) -> None:
    """A fresh process times one way only: the 'bare process' condition."""
    torch.set_num_threads(threads)
    way = Execution.model_validate_json(way_json)
    queue.put(_images_per_s(cfg, [way], rounds=7)[0])


def _images_per_s(cfg: ModelConfig, ways, rounds: int) -> list[float]:
    """Training images/s of each way at batch ``BATCH`` on the CPU, timed in turns (round
    after round) in this process, each step warmed up twice."""
    seconds = train_step_seconds([(cfg, way) for way in ways], BATCH, "cpu", rounds=rounds, warmup=2)
    return [BATCH / s for s in seconds]


def kernel_factors(ctx: Context) -> list[dict]:
    """plain / fused at 49 tokens (the recipe's attention at patch 4) under each condition the
    two harnesses could have differed in: threads, precision, memory layout, and one process
    timing both kernels in turns against a fresh process per kernel."""
    import multiprocessing as mp
    import statistics

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
                    fused, plain = _images_per_s(cfg, ways, rounds)
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
