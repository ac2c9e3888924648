"""Adaptive seeding: is the anytime-valid confidence sequence valid under optional stopping?

Simulates the adaptive procedure on seed-paired differences (arm a - arm b on the same seed):
look after every seed from 3 to 12, stop as soon as the rule says "different". Differences
are normal, or t with 3 degrees of freedom scaled to sd 1 (heavy tails); effects are in sd
units. Prints

1. the PHI table: per alpha (0.05, and 0.05/6 for six comparisons in one Bonferroni family)
   and prior precision phi, the first n with a finite radius, the radius in sd units at
   n = 3..12 (it does not depend on the data), and, on normal differences, the mean seeds at
   stopping (12 if never) for effects of 1, 1.5, 2 and 3 sd: the evidence for ``PHI``;
2. per distribution, effect and alpha: (a) the CS ("interval excludes 0 at any look",
   ``mixerlab.analysis.confidence_sequence`` with the default PHI), (b) the naive rule "re-run a
   fixed-n t-test after every seed, stop at the first p < alpha", and (c) one fixed-n t-test
   at 12 seeds. At effect 0 the rate is the false-positive rate (a must be <= alpha); at
   other effects it is the power within 12 seeds, with (a)'s mean seeds at stopping.

    .venv/bin/python benchmarks/optional_stopping.py [--studies 100000] [--seed 0]   # ~20 s here
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy
from scipy import stats

import mixerlab
from mixerlab import provenance
from mixerlab.analysis.confidence_sequence import PHI, p_values, radius_factor

LOOKS = np.arange(3, 13)  # seeds at each look
ALPHAS = (0.05, 0.05 / 6)
PHIS = (0.001, 0.01, 0.03, 0.1, 0.2, 0.3, 1.0)
TABLE_EFFECTS = (1.0, 1.5, 2.0, 3.0)
EFFECTS = (0.0, 0.5, 1.0, 2.0)


def draws(rng, dist: str, studies: int) -> np.ndarray:
    """(studies, 12) differences with mean 0 and sd 1."""
    if dist == "normal":
        return rng.standard_normal((studies, LOOKS[-1]))
    return rng.standard_t(3, (studies, LOOKS[-1])) / np.sqrt(3.0)  # Var t_3 = 3


def stop_at(reject: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rejected at any look, seeds at stopping: the first rejecting look, else 12)."""
    anyr = reject.any(axis=1)
    return anyr, np.where(anyr, LOOKS[reject.argmax(axis=1)], LOOKS[-1])


def error_rate(x: np.ndarray) -> str:
    """Share of True, +- two binomial standard errors."""
    m = x.mean()
    return f"{m:.4f} +- {2 * np.sqrt(m * (1 - m) / len(x)):.4f}"


def power(x: np.ndarray) -> str:
    return f"{x.mean():.3f}"


def naive_p(d: np.ndarray) -> np.ndarray:
    """Two-sided fixed-n one-sample t-test p-value after every prefix (columns = LOOKS)."""
    n = np.arange(1, d.shape[1] + 1, dtype=float)
    m = np.cumsum(d, axis=1) / n
    var = (np.cumsum(d * d, axis=1) - n * m * m) / np.maximum(n - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 1 has no variance; not a look
        t = m / np.sqrt(var / n)
    return (2 * stats.t.sf(np.abs(t), n - 1))[:, LOOKS - 1]


def phi_table(rng, studies: int) -> None:
    z = draws(rng, "normal", studies)
    cols = " | ".join(f"n={n}" for n in LOOKS)
    effs = " | ".join(f"{e:g} sd" for e in TABLE_EFFECTS)
    for alpha in ALPHAS:
        print(f"\n### PHI table, alpha = {alpha:.4g}: radius / sd; mean seeds at stopping")
        print(f"\n| phi | first finite n | {cols} | {effs} | sum |")
        print("|---:|---:|" + "---:|" * (len(LOOKS) + len(TABLE_EFFECTS) + 1))
        for phi in PHIS:
            rad = radius_factor(LOOKS, alpha, phi) / np.sqrt(LOOKS)
            first = LOOKS[np.isfinite(rad)][0] if np.isfinite(rad).any() else "> 12"
            seeds = [stop_at(p_values(z + e, phi)[:, LOOKS - 1] <= alpha)[1].mean()
                     for e in TABLE_EFFECTS]
            mark = " (PHI)" if phi == PHI else ""
            print(f"| {phi:g}{mark} | {first} | " + " | ".join(
                "inf" if np.isinf(x) else f"{x:.2f}" for x in rad) + " | "
                + " | ".join(f"{s:.2f}" for s in seeds) + f" | {sum(seeds):.2f} |")


def validity(rng, studies: int) -> None:
    print(f"\n### Optional stopping: looks after seeds 3..12, phi = {PHI:g}, {studies:,} studies "
          "per row")
    print("\n(a) CS: the interval excludes 0 at any look; (b) naive: a fixed-n t-test re-run "
          "after every seed, stop at the first p < alpha; (c) one t-test at 12 seeds. "
          "Effect 0: false-positive rate (+- 2 Monte Carlo SE); otherwise power within 12 "
          "seeds. Seeds: (a)'s mean seeds at stopping (12 if never), and the mean over the "
          "studies it stopped.\n")
    print("| differences | effect (sd) | alpha | (a) CS | (b) naive, every seed | "
          "(c) t-test at 12 | (a) mean seeds | (a) seeds when stopped |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for dist in ("normal", "t3"):
        for effect in EFFECTS:
            d = draws(rng, dist, studies) + effect
            pv, naive = p_values(d)[:, LOOKS - 1], naive_p(d)
            for alpha in ALPHAS:
                a, seeds = stop_at(pv <= alpha)
                b, _ = stop_at(naive < alpha)
                c = naive[:, -1] < alpha
                rate = error_rate if effect == 0 else power
                stopped = f"{seeds[a].mean():.2f}" if a.any() else "-"
                print(f"| {dist} | {effect:g} | {alpha:.4g} | {rate(a)} | {rate(b)} | {rate(c)} | "
                      f"{seeds.mean():.2f} | {stopped} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=100_000, help="simulated studies per case")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"benchmarks/optional_stopping.py: {provenance.cpu_model()}, {os.cpu_count()} cores; Python "
          f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"mixerlab {mixerlab.__version__} (commit {provenance.git_commit()}); "
          f"{args.studies:,} studies per case, seed {args.seed}")
    rng = np.random.default_rng(args.seed)
    phi_table(rng, args.studies)
    validity(rng, args.studies)
    print(f"\nwall {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
