"""mixerlab.analysis.confidence_sequence against savvi 0.3.1 (a dev dependency), decide's cases, large n,
and the edge cases (sd 0, n < 3, bad input)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from savvi.linear_regression import LinearRegression
from scipy import stats

from mixerlab.analysis.confidence_sequence import (
    PHI,
    confidence_sequence,
    decide,
    p_values,
    radius_factor,
)

# alpha 0.2 with phi 1 is avoided: there r**nu == alpha**2 exactly at n = 4 (a radius on the
# edge of finite), where savvi's 1e-6 prior precision tips it to a finite 2e3.
ALPHAS = (0.05, 0.05 / 6, 0.1)
PHIS = (0.01, PHI, 1.0, 3.0)


def savvi_run(d, alpha: float, phi: float, prior_cov: float | None = None) -> np.ndarray:
    """(lo, hi, p) after each observation, from savvi's intercept-only LinearRegression.
    ``prior_cov`` replaces its recursive least squares' starting covariance (1e6)."""
    model = LinearRegression(alpha, p=1, phi=phi)
    if prior_cov is not None:
        model.covariance = np.eye(1) * prior_cov
    out = []
    with np.errstate(all="ignore"):  # savvi divides by zero before n = 3 and at sd 0
        for x in d:
            model.update(np.array([x, 1.0]))
            model.infer()
            out.append((model.conf_int[0, 0], model.conf_int[0, 1], model.p_value[0]))
    return np.array(out).T


def random_differences(seed: int, n: int = 15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(rng.uniform(-2, 2), rng.uniform(0.3, 3), n)


def assert_close(ours, ref, scale: float, rtol: float) -> None:
    """Same infinite entries; finite ones within rtol of (|ref| + scale)."""
    assert np.array_equal(np.isinf(ours), np.isinf(ref))
    f = np.isfinite(ref)
    assert np.all(np.abs(ours[f] - ref[f]) <= rtol * (np.abs(ref[f]) + scale))


@pytest.mark.parametrize("seed", range(6))
def test_matches_savvi(seed):
    # savvi's prior (covariance 1e6) moves the mean by m*1e-6/n and SS by m^2*1e-6: up to
    # ~1e-5 relative for |mean| / sd ~ 7 here; with a 1e12 prior the two agree to ~1e-11,
    # so the closed form is savvi's model exactly and the rest is its prior.
    d = random_differences(seed)
    for alpha, phi in itertools.product(ALPHAS, PHIS):
        lo, hi = confidence_sequence(d, alpha, phi)
        p = p_values(d, phi)
        for prior, rtol in ((None, 3e-5), (1e12, 1e-9)):
            ref_lo, ref_hi, ref_p = savvi_run(d, alpha, phi, prior)
            sd = d.std(ddof=1)
            assert_close(lo, ref_lo, sd, rtol)
            assert_close(hi, ref_hi, sd, rtol)
            assert_close(p, ref_p, 0.0, rtol)
        assert np.isinf(lo[:2]).all() and np.isinf(hi[:2]).all() and (p[:2] == 1).all()
        assert np.isfinite(lo[-1]) and np.isfinite(hi[-1])  # 15 seeds: finite for all of these


def test_defaults_and_2d():
    d = np.stack([random_differences(s, 12) for s in range(4)])
    lo, hi = confidence_sequence(d, 0.05)
    p = p_values(d)
    for row, dl, dh, dp in zip(d, lo, hi, p):
        ref_lo, ref_hi, ref_p = savvi_run(row, 0.05, PHI)
        assert_close(dl, ref_lo, row.std(ddof=1), 3e-5)
        assert_close(dh, ref_hi, row.std(ddof=1), 3e-5)
        assert_close(dp, ref_p, 0.0, 3e-5)
    # Running intersection and running minimum: never loosen.
    assert np.all(lo[:, 1:] >= lo[:, :-1]) and np.all(hi[:, 1:] <= hi[:, :-1])
    assert np.all(p[:, 1:] <= p[:, :-1])


def test_excludes_zero_iff_p_below_alpha():
    # The running intersection excludes 0 iff some look's BF(0) >= 1/alpha iff min p <= alpha.
    rng = np.random.default_rng(7)
    d = rng.normal(rng.uniform(0, 1.5, (2000, 1)), 1.0, (2000, 12))
    for alpha in (0.05, 0.05 / 6):
        lo, hi = confidence_sequence(d, alpha)
        excl = (lo > 0) | (hi < 0)
        assert np.array_equal(excl, p_values(d) <= alpha)
        assert 0 < excl[:, -1].mean() < 1


def test_decide():
    assert decide(-np.inf, np.inf, 1.0) == "undecided"
    assert decide(-0.5, 1.5, 1.0) == "undecided"  # straddles 0, leaves the ROPE
    assert decide(0.2, 3.0, 1.0) == "different"
    assert decide(-3.0, -0.2, 1.0) == "different"
    assert decide(0.2, np.inf, 1.0) == "different"
    assert decide(-0.4, 0.6, 1.0) == "equivalent"
    assert decide(-1.0, 1.0, 1.0) == "equivalent"  # the ROPE is closed
    # Excludes 0 and inside the ROPE: certainly non-zero, certainly negligible -> equivalent.
    assert decide(0.1, 0.8, 1.0) == "equivalent"
    assert decide(-0.8, -0.1, 1.0) == "equivalent"
    assert decide(0.1, 0.8, 0.0) == "different"
    assert decide(0.0, 0.0, 0.0) == "equivalent"
    assert decide(-0.1, 0.1, 0.0) == "undecided"
    with pytest.raises(ValueError):
        decide(0.1, 0.2, -1.0)


def test_large_n_centre_and_width():
    # The CS's centre approaches the fixed-n t interval's centre (the sample mean) as n grows,
    # and its half-width stays a modest multiple of the t interval's (1.3-2.0 here).
    for seed in range(5):
        d = np.random.default_rng(seed).normal(0.7, 2.0, 5000)
        lo, hi = confidence_sequence(d, 0.05)
        n, m = len(d), d.mean()
        h = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
        assert lo[-1] <= m <= hi[-1] and lo[-1] <= 0.7 <= hi[-1]
        assert abs((lo[-1] + hi[-1]) / 2 - m) < 0.1  # 0.05 sd; the t half-width is 0.055
        assert 1.0 < (hi[-1] - lo[-1]) / 2 / h < 2.5
    # Before the running intersection, the anytime radius is wider than the fixed-n t's.
    n = np.arange(3, 10001)
    assert np.all(radius_factor(n, 0.05) > stats.t.ppf(0.975, n - 1))


def test_constant_differences():
    # sd = 0: the CS is the point [c, c] once its radius is finite (savvi's prior gives it a
    # width of ~1e-3 |c| instead), p = r**(nu/2); no warning, no NaN.
    c, alpha = 0.3, 0.05
    d = np.full(8, c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = confidence_sequence(d, alpha)
        p = p_values(d)
    n = np.arange(1, 9)
    finite = np.isfinite(radius_factor(n, alpha))
    assert np.allclose(lo[finite], c) and np.allclose(hi[finite], c)
    assert np.isinf(lo[~finite]).all() and np.isinf(hi[~finite]).all()
    expected = np.where(n >= 3, (PHI / (PHI + n)) ** (np.maximum(n - 2, 1) / 2), 1.0)
    assert np.allclose(p, np.minimum.accumulate(np.minimum(expected, 1.0)))
    ref_lo, ref_hi, ref_p = savvi_run(d, alpha, PHI)
    assert np.array_equal(np.isinf(lo), np.isinf(ref_lo))
    assert np.allclose(lo[finite], ref_lo[finite], atol=1e-2 * c)
    assert np.allclose(p, ref_p, rtol=1e-3)
    assert decide(lo[-1], hi[-1], 0.5) == "equivalent"
    assert decide(lo[-1], hi[-1], 0.1) == "different"
    # All zeros (two arms computing the same thing): [0, 0] and p = 1, i.e. "equivalent";
    # savvi's NaN looks leave it at (-inf, inf).
    lo0, hi0 = confidence_sequence(np.zeros(8), alpha)
    assert (lo0[finite] == 0).all() and (hi0[finite] == 0).all()
    assert (p_values(np.zeros(8)) == 1).all()
    assert decide(lo0[-1], hi0[-1], 0.0) == "equivalent"


def test_few_observations_and_bad_input():
    for d in ([], [0.4], [0.4, -1.2]):
        lo, hi = confidence_sequence(d, 0.05)
        assert len(lo) == len(hi) == len(d) == len(p_values(d))
        assert np.isneginf(lo).all() and np.isposinf(hi).all() and (p_values(d) == 1).all()
    for bad in ([1.0, np.nan, 2.0], [np.inf, 1.0, 2.0], 1.0):
        with pytest.raises(ValueError):
            confidence_sequence(bad, 0.05)
    for alpha, phi in ((0.0, PHI), (1.0, PHI), (0.05, 0.0), (0.05, -1.0)):
        with pytest.raises(ValueError):
            confidence_sequence([1.0, 2.0, 3.0], alpha, phi)
    with pytest.raises(ValueError):
        p_values([1.0, 2.0, 3.0], phi=0.0)
