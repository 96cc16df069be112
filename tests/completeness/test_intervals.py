"""Binomial intervals against statsmodels / scipy references and by coverage simulation."""

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from dhs.completeness.intervals import binomial_interval, jeffreys_interval, wilson_interval

NS = [1, 2, 7, 20, 50, 333]


@pytest.mark.parametrize("cl", [0.68, 0.95])
@pytest.mark.parametrize("n", NS)
def test_wilson_matches_statsmodels_and_scipy(n, cl):
    k = np.arange(n + 1)  # includes k = 0 and k = n
    lo, hi = wilson_interval(k, n, cl)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - cl, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, rtol=0, atol=1e-12)
    for kk in (0, n // 2, n):
        ci = binomtest(int(kk), n).proportion_ci(confidence_level=cl, method="wilson")
        assert lo[kk] == pytest.approx(ci.low, abs=1e-12)
        assert hi[kk] == pytest.approx(ci.high, abs=1e-12)
    assert lo[0] == 0.0 and hi[n] == 1.0


@pytest.mark.parametrize("cl", [0.68, 0.95])
@pytest.mark.parametrize("n", NS)
def test_jeffreys_matches_statsmodels(n, cl):
    k = np.arange(n + 1)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - cl, method="jeffreys")
    lo, hi = jeffreys_interval(k, n, cl, boundary_fix=False)
    np.testing.assert_allclose(lo, ref_lo, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hi, ref_hi, rtol=1e-10, atol=1e-14)
    # default: Brown-Cai-DasGupta boundary modification only changes lo at k=0 and hi at k=n
    lo2, hi2 = jeffreys_interval(k, n, cl)
    assert lo2[0] == 0.0 and hi2[n] == 1.0
    np.testing.assert_allclose(lo2[1:], ref_lo[1:], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hi2[:-1], ref_hi[:-1], rtol=1e-10, atol=1e-14)
    assert hi2[0] == pytest.approx(ref_hi[0], rel=1e-10)
    assert lo2[n] == pytest.approx(ref_lo[n], rel=1e-10)


def test_jeffreys_known_value():
    # Beta(3.5, 7.5) 2.5 % and 97.5 % quantiles, independent of the implementation (scipy.stats.beta).
    from scipy.stats import beta

    lo, hi = jeffreys_interval(3, 10, 0.95)
    assert lo == pytest.approx(beta(3.5, 7.5).ppf(0.025), rel=1e-12)
    assert hi == pytest.approx(beta(3.5, 7.5).ppf(0.975), rel=1e-12)


def test_empty_and_invalid_inputs():
    lo, hi = wilson_interval([0, 1], [0, 2])
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and np.isfinite(lo[1])
    lo, hi = jeffreys_interval(0, 0)
    assert np.isnan(lo) and np.isnan(hi)
    with pytest.raises(ValueError, match="k=3.0, n=2.0"):
        wilson_interval([1, 3], [2, 2])
    with pytest.raises(ValueError, match="cl"):
        jeffreys_interval(1, 2, cl=95)
    with pytest.raises(ValueError, match="unknown interval method"):
        binomial_interval(1, 2, method="wald")
    with pytest.raises(ValueError):
        wilson_interval(1.5, 3)


@pytest.mark.parametrize("method", ["wilson", "jeffreys"])
@pytest.mark.parametrize("cl", [0.68, 0.95])
@pytest.mark.parametrize("n", [50, 100, 400])
def test_coverage_by_simulation(method, cl, n):
    """Coverage averaged over p ~ U(0.05, 0.95), 200,000 simulated experiments: within 1 % of nominal.

    (Pointwise coverage of both intervals oscillates with p at fixed n — the known lattice effect — so the
    criterion is on the average over p; Monte Carlo error here is ≈ 0.001.)
    """
    rng = np.random.default_rng(20261122 + n)
    m = 200_000
    p = rng.uniform(0.05, 0.95, size=m)
    k = rng.binomial(n, p)
    lo, hi = binomial_interval(k, np.full(m, n), cl, method)
    cover = np.mean((lo <= p) & (p <= hi))
    assert abs(cover - cl) < 0.01, f"{method} n={n} cl={cl}: coverage {cover:.4f}"


def test_vectorised_broadcast_shapes():
    k = np.array([[0, 1], [2, 3]])
    lo, hi = wilson_interval(k, 3, 0.68)
    assert lo.shape == (2, 2) and np.all(lo <= k / 3) and np.all(hi >= k / 3)


def _wilson_closed_form(k, n, cl):
    """The Wilson score interval written out (Wilson 1927), the reference for astropy's implementation."""
    from scipy.special import ndtri

    z = ndtri(0.5 + 0.5 * cl)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return np.where(k == 0, 0.0, np.clip(centre - half, 0, 1)), np.where(k == n, 1.0, np.clip(centre + half, 0, 1))


@pytest.mark.parametrize("cl", [0.68, 0.95, 0.997])
def test_astropy_intervals_equal_closed_forms_and_keep_nan_for_empty_bins(cl):
    """Random counts (n up to 5,000, both boundaries, empty bins): Wilson equals the closed form and Jeffreys
    the Beta(k + ½, n − k + ½) quantiles (with the boundary fix) to 1e-12; n = 0 gives NaN."""
    from scipy.stats import beta

    rng = np.random.default_rng(24)
    n = rng.integers(1, 5000, size=3000).astype(float)
    k = np.floor(rng.random(3000) * (n + 1))
    k[:40], k[40:80] = 0, n[40:80]
    lo, hi = wilson_interval(k, n, cl)
    ref_lo, ref_hi = _wilson_closed_form(k, n, cl)
    np.testing.assert_allclose(lo, ref_lo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, rtol=0, atol=1e-12)
    lo, hi = jeffreys_interval(k, n, cl)
    a2 = 0.5 * (1 - cl)
    np.testing.assert_allclose(lo, np.where(k == 0, 0.0, beta.ppf(a2, k + 0.5, n - k + 0.5)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(hi, np.where(k == n, 1.0, beta.isf(a2, k + 0.5, n - k + 0.5)), rtol=0, atol=1e-12)
    for fn in (wilson_interval, jeffreys_interval):
        lo, hi = fn([0, 3, 0], [0, 5, 0], cl)
        assert np.isnan(lo[[0, 2]]).all() and np.isnan(hi[[0, 2]]).all() and np.isfinite([lo[1], hi[1]]).all()
