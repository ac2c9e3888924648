"""Item 3: time per training step against the number of tokens, with the expected fits.

At 28 px, patch sizes 1, 2, 4, 7 give N = 784, 196, 49, 16 tokens. Attention costs
O(N^2) (the N x N score matrix: Vaswani et al. 2017, Table 1), the token-mixing MLP too
(its hidden width is ``mlp_ratio`` x N, so each of its two layers has N x 2N weights per
channel: Tolstikhin et al. 2021, Sec. 2), and the depthwise convolution O(N) (k^2 taps per
token: Trockman & Kolter 2022). Everything else in a block (channel MLP, norms) is O(N).

Every configuration's steps are timed in turns with all the others' (the benchmarks' one
timing helper, ``_timing.py``), so a slow spell of the machine falls on every N alike and
does not bend a fit: the figures are step times and fits measured in turns in this one run.

Fits, by least squares on the median step times: a*N^2 + b*N + c for attention and mlp,
a*N + c for conv, each with its R^2; for attention and mlp also the straight-line fit for
contrast (with four sizes a three-parameter fit has one degree of freedom, so its R^2 is
close to 1 by construction; the straight line's R^2 says whether the N^2 term is visible).
Plotted to ``<out>/<device>-tokens.png``.

    python benchmarks/tokens.py [--quick] [--device auto]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _timing import ENGINE_WAY, loop, train_step_seconds
from figures import Context, figure, standalone

from mixerlab.config import ModelConfig

ITEM = "tokens"
PATCH_SIZES = (1, 2, 4, 7)
EXPECTED = {"attention": 2, "mlp": 2, "conv": 1}  # degree of the polynomial in N
# The quick sweep's model. Batch 32, not 128: attention at one token per pixel is ~0.4G
# MACs per image here, and a batch of 128 would take several seconds a step on a 2-core CPU.
MODEL = ModelConfig(depth=4, width=64)
BATCH = 32


def fit(n, t, degree: int) -> dict:
    """Least-squares polynomial of ``degree`` in ``n`` through ``t``: coefficients (highest
    first, as numpy.polyfit) and R^2 = 1 - SS_res / SS_tot."""
    n, t = np.asarray(n, float), np.asarray(t, float)
    coef = np.polyfit(n, t, degree)
    ss_res = float(((t - np.polyval(coef, n)) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return {"coef": coef.tolist(), "r2": 1.0 - ss_res / ss_tot if ss_tot else float("nan")}


def step_seconds(cfgs: list[ModelConfig], device, batch: int, quick: bool) -> list[float]:
    """Median seconds per training step of each configuration (AdamW, fp32, channels_last as
    the engine trains), all timed in turns. One step at a time, warmed up once: at one token
    per pixel a step of attention takes about a second here, so pairs would double the cost."""
    return train_step_seconds([(cfg, ENGINE_WAY) for cfg in cfgs], batch, device,
                              **{**loop(quick), "warmup": 1, "block": 1})


def plot(times: dict, fits: dict, path: Path, title: str) -> None:
    """One line of points per mixer with its expected fit, log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (mixer, points) in enumerate(times.items()):
        n = np.array(sorted(points))
        colour = f"C{i}"
        ax.plot(n, [1e3 * points[k] for k in n], "o", color=colour)
        dense = np.geomspace(n.min(), n.max(), 100)
        f = fits[mixer]
        order = "N^2" if len(f["coef"]) == 3 else "N"
        ax.plot(dense, 1e3 * np.polyval(f["coef"], dense), "-", color=colour,
                label=f"{mixer}: fit O({order}), R$^2$={f['r2']:.4f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens N (28 px image, patch 28/sqrt(N))")
    ax.set_ylabel("ms per training step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(ctx: Context) -> list[dict]:
    model = MODEL.model_copy(update=dict(depth=1, width=16)) if ctx.quick else MODEL
    batch = 4 if ctx.quick else BATCH
    # Smoke: coarser grids only (p1 would take a while even at this size); 4 points still.
    patch_sizes = (2, 4, 7, 14) if ctx.quick else PATCH_SIZES
    threads = torch.get_num_threads()
    shape = f"depth {model.depth}, width {model.width}, batch {batch}, float32, {threads} threads"
    patch_sizes = sorted(patch_sizes, reverse=True)  # fewest tokens first
    cfgs = {(mixer, ps): model.model_copy(update=dict(mixer=mixer, patch_size=ps))
            for mixer in EXPECTED for ps in patch_sizes}
    seconds = dict(zip(cfgs, step_seconds(list(cfgs.values()), ctx.device, batch, ctx.quick)))
    rows, times, fits = [], {}, {}
    for mixer, degree in EXPECTED.items():
        times[mixer] = {}
        for ps in patch_sizes:
            n = (cfgs[mixer, ps].image_size // ps) ** 2
            times[mixer][n] = s = seconds[mixer, ps]
            rows.append(figure(ITEM, f"{mixer} N={n} (p{ps}): step time", 1e3 * s, "ms/step",
                               f"median of steps timed in turns; {shape}"))
        n, t = zip(*sorted(times[mixer].items()))
        fits[mixer] = f = fit(n, t, degree)
        terms = " + ".join(f"{c:.4g}{p}" for c, p in zip(f["coef"], ["*N^2", "*N", ""][-degree - 1:]))
        rows.append(figure(ITEM, f"{mixer}: R^2 of the O(N{'^2' if degree == 2 else ''}) fit",
                           f["r2"], "R^2", f"t[s] = {terms}; {len(n)} sizes; plot {ctx.tag}-tokens.png"))
        if degree == 2:
            line = fit(n, t, 1)
            rows.append(figure(ITEM, f"{mixer}: R^2 of a straight line (contrast)", line["r2"], "R^2",
                               "a*N + c on the same points: how visible the N^2 term is"))
    plot(times, fits, ctx.out_dir / f"{ctx.tag}-tokens.png", f"{ctx.tag}: {shape}")
    return rows


def main() -> None:
    standalone(__doc__.splitlines()[0], ITEM, run)


if __name__ == "__main__":
    main()
