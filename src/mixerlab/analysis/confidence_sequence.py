"""Anytime-valid inference for the mean of seed-paired differences, for adaptive seeding.

A sweep runs a few seeds per arm and adds seeds only where a comparison is undecided; a
fixed-n t-test re-run after every seed is then no longer valid (optional stopping). These
are the sequential t-test and confidence sequence (CS) of Lindon, Ham, Tingley & Bojinov,
"Anytime-Valid Linear Models and Regression Adjusted Causal Inference in Randomized
Experiments" (arXiv:2210.08589), in closed form for the intercept-only model d_i = mu + e_i,
e_i ~ N(0, sigma^2): they reproduce ``savvi.linear_regression.LinearRegression(alpha, p=1,
phi)`` fed ``update([d_i, 1.0])`` then ``infer()`` (savvi 0.3.1) to ~1e-5 relative or better:
savvi's recursive least squares starts from covariance 1e6*I, a prior of precision 1e-6 on
mu; started from 1e12 it agrees to ~1e-11. (No equation numbers: the formulas below are
cited from savvi's source, ``savvi/linear_regression.py``.)

After n differences, with mean m, SS = sum (d_i - m)^2, s^2 = SS / (n-1) and se = s/sqrt(n)
(what savvi's RLS gives: beta = m, covariance = 1/n, sigma^2 = SSE/(n-p), z2 = n), savvi uses
nu = n - p - 1 = n - 2 and r = phi / (phi + n), and the Bayes factor against mu = mu0
(``savvi.linear_regression.log_bf``; the avlm R package's ``log_G_t`` is the same formula)

    BF(mu0) = sqrt(r) * ((1 + t^2/nu) / (1 + r t^2/nu)) ** ((nu + 1) / 2),  t = (m - mu0)/se.

It is a mixture likelihood ratio: a right-Haar (1/sigma) mixture over sigma and a
N(0, 1/phi) mixture over the standardized effect mu/sigma, so phi is the prior *precision*
of the effect in sd units (prior sd 1/sqrt(phi)). The p-value is min(1, 1/BF(0)), kept as a
running minimum; the CS is {mu0 : BF(mu0) < 1/alpha}. Solving BF = 1/alpha with
q = (r alpha^2) ** (1/(nu+1)) gives t^2 = nu (1 - q) / (q - r), so the CS is m +- radius,

    radius = se * sqrt(nu * (1 - q) / (q - r))   (``LinearRegression.calculate_conf_int``),

finite only when q > r, i.e. r**nu < alpha**2, and kept as a running intersection. Since an
intersection of intervals contains 0 only if every one does, "the CS excludes 0" and
"p <= alpha" are the same event. n < 3 (nu < 1) gives (-inf, +inf) and p = 1, as in savvi.

Degrees of freedom: the Haar-mixture integral for this model gives the same formula with
nu = n - 1 (exponent n/2), as the avlm R package's ``av.lm`` does for the intercept; savvi
takes one more (its nu = n - p - 1 with p counting the intercept). This module follows savvi,
the reference its tests check. It is conservative here: in ``benchmarks/optional_stopping.py`` the
false-positive rate over looks at 3-12 seeds is ~0.01 at alpha = 0.05.

sd = 0 (every difference equal, e.g. two arms that compute the same thing): t = +-inf for
every mu0 != m, BF -> r**(-nu/2), so the CS is the point [m, m] once its radius is finite
(the limit of the formula as sd -> 0; savvi's prior makes sd ~1e-3*|m| there instead), and
the p-value is r**(nu/2) if m != 0, and 1 if all differences are 0 (no evidence against 0).
"""

from __future__ import annotations

import numpy as np

from mixerlab.analysis.verdict import verdict

# Prior precision of the standardized effect (mu/sd), default phi for both functions.
# savvi's default phi = 1 (prior sd 1 sd) leaves the CS infinite until n = 7 at alpha = 0.05/6
# (n = 6 at 0.05): the radius is finite only when r**nu < alpha**2, r = phi/(phi+n). A smaller
# phi makes it finite sooner but wider at large n (radius grows like sqrt(log(1/phi))).
# benchmarks/optional_stopping.py prints the evidence: radius/sd at n = 3..12 and the mean seeds to
# "different" (12 if never; normal differences of 1, 1.5, 2, 3 sd; 100,000 studies), summed
# over the four effects, at alpha = 0.05/6 | 0.05: phi 0.001: 42.5 | 38.1, 0.01: 40.1 | 34.6,
# 0.1: 38.2 | 31.5, 0.2: 38.3 | 31.4, 0.3: 38.5 | 31.4, 1: 41.0 | 33.5. 0.1-0.3 are within 0.3
# seeds of each other; 0.1 is best at the split alpha, decides 3 sd soonest (7.0 seeds at
# 0.05/6, 5.4 at 0.05), and is finite from n = 5 at 0.05/6 (radius 6.3 sd; 3.6 at n = 6, 1.5
# at n = 12) and n = 4 at 0.05. As a prior: effects of ~3 sd (1/sqrt(0.1)) are plausible.
PHI = 0.1


def _check(d, phi: float, alpha: float = 0.5) -> np.ndarray:
    d = np.asarray(d, dtype=float)
    if d.ndim == 0 or not np.all(np.isfinite(d)):
        raise ValueError("d must be a sequence of finite paired differences")
    if not phi > 0 or not 0 < alpha < 1:
        raise ValueError(f"need phi > 0 and 0 < alpha < 1, got phi={phi}, alpha={alpha}")
    return d


def _prefix(d: np.ndarray):
    """n, mean and sum of squares about the mean of every prefix along the last axis
    (shifted by the first value, so constant differences give SS = 0 exactly)."""
    n = np.arange(1, d.shape[-1] + 1, dtype=float)
    c = d - d[..., :1]
    s1, s2 = np.cumsum(c, axis=-1), np.cumsum(c * c, axis=-1)
    return n, d[..., :1] + s1 / n, np.maximum(s2 - s1 * s1 / n, 0.0)


def radius_factor(n, alpha: float, phi: float = PHI) -> np.ndarray:
    """sqrt(nu (1-q) / (q-r)): the CS's half-width in standard errors (se = sd/sqrt(n))
    after n observations; +inf where undefined (n < 3) or infinite (r**nu >= alpha**2)."""
    n = np.asarray(n, dtype=float)
    nu = n - 2
    ok = nu >= 1
    nu_ = np.where(ok, nu, 1.0)
    r = phi / (phi + n)
    q = np.exp((np.log(r) + 2 * np.log(alpha)) / (nu_ + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.sqrt(nu_ * (1 - q) / (q - r))
    return np.where(ok & (q > r), f, np.inf)


def confidence_sequence(d, alpha: float, phi: float = PHI) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) after each prefix d[..., :n] of the paired differences: the running
    intersection of the anytime-valid (1 - alpha) intervals, -inf/+inf while undefined.

    d may be 2-D (one study per row, looks along the last axis), for simulations. The running
    intersection can come out empty (lo > hi); that has probability <= alpha under the model,
    and is kept as savvi keeps it."""
    d = _check(d, phi, alpha)
    n, m, ss = _prefix(d)
    f = radius_factor(n, alpha, phi)
    se = np.sqrt(ss / np.maximum(n - 1, 1) / n)
    with np.errstate(invalid="ignore"):
        rad = np.where(np.isinf(f), np.inf, se * np.where(np.isinf(f), 0.0, f))
    lo = np.maximum.accumulate(m - rad, axis=-1)
    hi = np.minimum.accumulate(m + rad, axis=-1)
    return lo, hi


def p_values(d, phi: float = PHI) -> np.ndarray:
    """Running-minimum anytime-valid p-value for mu = 0 after each prefix (1 while n < 3)."""
    d = _check(d, phi)
    n, m, ss = _prefix(d)
    nu = np.maximum(n - 2, 1.0)
    r = phi / (phi + n)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(ss > 0, n * (n - 1) * m * m / (nu * ss), np.where(m != 0, np.inf, 0.0))
        gain = np.where(np.isinf(u), -np.log(r), np.log1p(u) - np.log1p(r * u))
    log_bf = 0.5 * np.log(r) + 0.5 * (nu + 1) * gain
    p = np.where(n >= 3, np.minimum(1.0, np.exp(-log_bf)), 1.0)
    return np.minimum.accumulate(p, axis=-1)


def decide(lo: float, hi: float, rope: float) -> str:
    """The two-sided verdict of the sequence's interval: "equivalent" (inside ``[-rope,
    +rope]``), "different" (excludes 0) or "undecided", by the one rule
    (:func:`mixerlab.analysis.verdict.verdict`, kind ``differs``). Both statements hold with
    the CS's time-uniform coverage, so either can stop the seeding."""
    return verdict(lo, hi, "differs", rope)
