"""Binomial confidence intervals for completeness and false-positive rates (vectorised).

Both intervals are two-sided, equal-tailed at confidence level ``cl`` (e.g. 0.68 or 0.95) and defined for
integer counts ``0 <= k <= n``; they are computed by :func:`astropy.stats.binom_conf_interval`. Where
``n == 0`` there is no information and the bounds are NaN.

- Wilson score interval (Wilson 1927): the set of p whose score test does not reject at level ``1 - cl``;
  identical to ``statsmodels.stats.proportion.proportion_confint(method="wilson")``.
- Jeffreys interval: equal-tailed quantiles of the Beta(k + 1/2, n - k + 1/2) posterior under the
  Beta(1/2, 1/2) prior. With ``boundary_fix=True`` (the default, and astropy's definition; Brown, Cai &
  DasGupta 2001, Stat. Sci. 16, 101) the lower bound is 0 when k = 0 and the upper bound is 1 when k = n;
  with ``False`` the plain Beta quantiles are returned (what statsmodels' ``method="jeffreys"`` gives).
"""

from __future__ import annotations

import numpy as np
from astropy.stats import binom_conf_interval
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["INTERVAL_METHODS", "binomial_interval", "jeffreys_interval", "wilson_interval"]

INTERVAL_METHODS = ("wilson", "jeffreys")


def _check(k: ArrayLike, n: ArrayLike, cl: float) -> tuple[np.ndarray, np.ndarray]:
    if not (0.0 < float(cl) < 1.0):
        raise ValueError(f"confidence level cl must be in (0, 1), got {cl!r}")
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    k_arr, n_arr = np.broadcast_arrays(k_arr, n_arr)
    bad = ~(np.isfinite(k_arr) & np.isfinite(n_arr)) | (k_arr < 0) | (n_arr < 0) | (k_arr > n_arr)
    bad |= (k_arr != np.floor(k_arr)) | (n_arr != np.floor(n_arr))
    if np.any(bad):
        idx = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"binomial interval needs integers 0 <= k <= n; element {idx} has k={float(k_arr.ravel()[idx])!r}, "
            f"n={float(n_arr.ravel()[idx])!r}"
        )
    return k_arr, n_arr


def _astropy_interval(k: ArrayLike, n: ArrayLike, cl: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """astropy's interval; empty bins (n = 0), which astropy refuses, give NaN."""
    k_arr, n_arr = _check(k, n, cl)
    empty = n_arr == 0
    lo, hi = binom_conf_interval(k_arr.astype(np.int64).ravel(), np.where(empty, 1, n_arr).astype(np.int64).ravel(),
                                 confidence_level=float(cl), interval=method)
    lo = np.where(empty, np.nan, lo.reshape(k_arr.shape))
    hi = np.where(empty, np.nan, hi.reshape(k_arr.shape))
    return lo, hi


def wilson_interval(k: ArrayLike, n: ArrayLike, cl: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials.

    Parameters
    ----------
    k, n : array-like of non-negative integers (broadcast together), k <= n.
    cl : two-sided confidence level in (0, 1), e.g. 0.68 or 0.95.

    Returns
    -------
    (lo, hi) : float64 arrays of the broadcast shape, fractions in [0, 1]; NaN where n == 0.
    """
    lo, hi = _astropy_interval(k, n, cl, "wilson")
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    # exact endpoints at the boundaries (the formula gives them up to rounding); empty bins stay NaN
    filled = n_arr > 0
    return np.where(filled & (k_arr == 0), 0.0, lo), np.where(filled & (k_arr == n_arr), 1.0, hi)


def jeffreys_interval(
    k: ArrayLike, n: ArrayLike, cl: float = 0.95, boundary_fix: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Jeffreys (Beta(1/2, 1/2) prior) equal-tailed interval for k successes in n trials.

    Parameters
    ----------
    k, n : array-like of non-negative integers (broadcast together), k <= n.
    cl : two-sided confidence level in (0, 1).
    boundary_fix : set lo = 0 at k = 0 and hi = 1 at k = n (Brown, Cai & DasGupta 2001), as astropy does;
        False gives the plain Beta quantiles.

    Returns
    -------
    (lo, hi) : float64 arrays, fractions in [0, 1]; NaN where n == 0.
    """
    lo, hi = _astropy_interval(k, n, cl, "jeffreys")
    if boundary_fix:
        return lo, hi
    k_arr, n_arr = _check(k, n, cl)
    alpha2 = 0.5 * (1.0 - float(cl))
    with np.errstate(invalid="ignore"):
        lo = np.where(k_arr == 0, stats.beta.ppf(alpha2, k_arr + 0.5, n_arr - k_arr + 0.5), lo)
        hi = np.where(k_arr == n_arr, stats.beta.isf(alpha2, k_arr + 0.5, n_arr - k_arr + 0.5), hi)
    empty = n_arr == 0
    return np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)


def binomial_interval(
    k: ArrayLike, n: ArrayLike, cl: float = 0.95, method: str = "wilson"
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch to :func:`wilson_interval` or :func:`jeffreys_interval` by name."""
    if method == "wilson":
        return wilson_interval(k, n, cl)
    if method == "jeffreys":
        return jeffreys_interval(k, n, cl)
    raise ValueError(f"unknown interval method {method!r}; expected one of {INTERVAL_METHODS}")
