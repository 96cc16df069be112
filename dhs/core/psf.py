"""Moffat PSF: pixel kernels and the analytic transfer function of PSF convolved with the pixel.

The Moffat profile is I(r) = (beta - 1) / (pi alpha^2) * (1 + r^2 / alpha^2)^(-beta) (unit flux), with
alpha = FWHM / (2 sqrt(2^(1/beta) - 1)).  Its 2-D Fourier transform (unit DC, k = 2 pi |f|) is
    OTF(k) = 2^(2 - beta) / Gamma(beta - 1) * (alpha k)^(beta - 1) * K_(beta - 1)(alpha k),
the Hankel transform of the profile; the renderer multiplies it by the square-pixel transfer
sinc(fx p) sinc(fy p), so images are source (x) PSF (x) pixel with an untruncated Moffat.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from scipy import optimize, special

__all__ = [
    "TruncatedKernelWarning",
    "check_moffat",
    "moffat_alpha",
    "moffat_enclosed_fraction",
    "moffat_kernel",
    "moffat_otf",
    "moffat_otf_cutoff",
    "moffat_otf_interp",
    "moffat_kernel_size",
    "moffat_radius_for_fraction",
    "moffat_radius_for_level",
]


#: an explicit kernel size whose square holds less than this fraction of the Moffat flux is reported
KERNEL_FLUX_FRACTION = 0.995
#: the default kernel's inscribed circle holds this fraction of the flux (so the kernel, normalised to 1,
#: is within ~0.1 % of the untruncated pixel-integrated Moffat pixel by pixel) ...
DEFAULT_KERNEL_FRACTION = 0.999
#: ... unless that takes more than this many pixels: then it holds KERNEL_FLUX_FRACTION at least
#: (only beta close to 1, whose wings hold a large part of the flux far out)
DEFAULT_KERNEL_MAX_SIZE = 255


class TruncatedKernelWarning(UserWarning):
    """A kernel of an explicitly requested size cuts off a noticeable part of the PSF's flux."""


def check_moffat(fwhm_arcsec: float, beta: float) -> tuple[float, float]:
    """(FWHM, beta) as floats, or ValueError unless FWHM is a positive finite number and beta > 1."""
    fwhm = float(fwhm_arcsec)
    beta = float(beta)
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"Moffat FWHM must be a positive finite number of arcsec, got {fwhm_arcsec!r}")
    if not (math.isfinite(beta) and beta > 1.0):
        raise ValueError(f"Moffat beta must be > 1, got {beta!r}")
    return fwhm, beta


def moffat_alpha(fwhm_arcsec: float, beta: float = 3.5) -> float:
    """Moffat core radius alpha (arcsec) for a given FWHM (arcsec) and index beta."""
    fwhm, beta = check_moffat(fwhm_arcsec, beta)
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_enclosed_fraction(radius_arcsec: float | np.ndarray, fwhm_arcsec: float, beta: float = 3.5):
    """Fraction of an untruncated Moffat's flux inside a circle of the given radius (arcsec)."""
    alpha = moffat_alpha(fwhm_arcsec, beta)
    r = np.asarray(radius_arcsec, dtype=np.float64)
    return 1.0 - (1.0 + (r / alpha) ** 2) ** (1.0 - beta)


def moffat_radius_for_fraction(fraction: float, fwhm_arcsec: float, beta: float = 3.5) -> float:
    """Radius (arcsec) of the circle holding ``fraction`` of an untruncated Moffat's flux."""
    alpha = moffat_alpha(fwhm_arcsec, beta)
    return alpha * math.sqrt((1.0 - fraction) ** (1.0 / (1.0 - float(beta))) - 1.0)


def moffat_kernel_size(fwhm_arcsec: float, beta: float, pixscale: float, fraction: float) -> int:
    """Smallest odd kernel side (pixels) whose inscribed circle holds ``fraction`` of the Moffat flux."""
    half = math.ceil(moffat_radius_for_fraction(fraction, fwhm_arcsec, beta) / pixscale - 0.5)
    return 2 * max(half, 0) + 1


def moffat_radius_for_level(level: float, fwhm_arcsec: float, beta: float = 3.5) -> float:
    """Radius (arcsec) where the Moffat profile falls to ``level`` times its central value."""
    alpha = moffat_alpha(fwhm_arcsec, beta)
    return alpha * math.sqrt(level ** (-1.0 / beta) - 1.0)


def moffat_otf(freq_per_arcsec: np.ndarray, fwhm_arcsec: float, beta: float = 3.5) -> np.ndarray:
    """Optical transfer function of the untruncated, unit-flux Moffat at spatial frequency |f| (cycles/arcsec)."""
    fwhm, beta = check_moffat(fwhm_arcsec, beta)
    alpha = moffat_alpha(fwhm, beta)
    nu = beta - 1.0
    z = 2.0 * math.pi * alpha * np.asarray(freq_per_arcsec, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        zs = np.where(z > 0, z, 1.0)
        log_val = (
            (2.0 - beta) * math.log(2.0)
            - special.gammaln(nu)
            + nu * np.log(zs)
            + np.log(special.kve(nu, zs))
            - zs
        )
        val = np.exp(log_val)
    val = np.where(z > 0, val, 1.0)
    return np.where(np.isfinite(val), val, 0.0)


@functools.lru_cache(maxsize=64)
def _otf_cutoff_z(beta: float, level: float) -> float:
    """z = 2 pi alpha |f| beyond which the Moffat OTF (a function of z and beta only) stays below ``level``."""
    fwhm = 2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0)  # alpha = 1
    f_hi = 1.0
    while float(moffat_otf(f_hi, fwhm, beta)) > level:
        f_hi *= 2.0
    f = optimize.brentq(lambda f: float(moffat_otf(f, fwhm, beta)) - level, 0.0, f_hi, xtol=1e-9)
    return 2.0 * math.pi * float(f)


def moffat_otf_cutoff(fwhm_arcsec: float, beta: float, level: float) -> float:
    """Spatial frequency (cycles/arcsec) beyond which the Moffat OTF stays below ``level``.

    The OTF depends on alpha |f| only (for a given beta): the cutoff is solved once per (beta, level) and
    scaled by 1 / alpha.
    """
    fwhm, beta = check_moffat(fwhm_arcsec, beta)
    return _otf_cutoff_z(beta, float(level)) / (2.0 * math.pi * moffat_alpha(fwhm, beta))


def _moffat_profile(r2: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return (beta - 1.0) / (math.pi * alpha * alpha) * (1.0 + r2 / (alpha * alpha)) ** (-beta)


def moffat_kernel(
    fwhm_arcsec: float, beta: float = 3.5, pixscale: float = 0.262, size: int | None = None
) -> np.ndarray:
    """Pixel-integrated Moffat kernel centred on the middle pixel of an odd square array.

    Args:
        fwhm_arcsec: Moffat FWHM, arcsec.
        beta: Moffat index (> 1).
        pixscale: pixel size, arcsec.
        size: odd side length in pixels; default: the smallest odd size whose inscribed circle holds
            >= 99.9 % of the untruncated Moffat flux (so that the normalised kernel is within ~0.1 % of
            the untruncated PSF), or, when that would exceed 255 pixels (beta close to 1), the larger of
            255 and the smallest size holding >= 99.5 %.

    Returns:
        (size, size) float64 array, each pixel the Moffat integrated over the pixel (8x8 Gauss-Legendre
        per pixel), normalised to sum to 1.

    Warns:
        TruncatedKernelWarning: an explicit ``size`` whose square holds less than 99.5 % of the
            untruncated Moffat flux; the message gives the fraction held (the kernel is still normalised,
            so the wings' light is moved into the core).
    """
    fwhm, beta = check_moffat(fwhm_arcsec, beta)
    pixscale = float(pixscale)
    if not (math.isfinite(pixscale) and pixscale > 0):
        raise ValueError(f"pixscale must be > 0 arcsec, got {pixscale!r}")
    alpha = moffat_alpha(fwhm, beta)
    if size is None:
        size = moffat_kernel_size(fwhm, beta, pixscale, DEFAULT_KERNEL_FRACTION)
        if size > DEFAULT_KERNEL_MAX_SIZE:
            size = max(DEFAULT_KERNEL_MAX_SIZE, moffat_kernel_size(fwhm, beta, pixscale, KERNEL_FLUX_FRACTION))
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"moffat_kernel size must be a positive odd integer, got {size}")
    half = size // 2
    nodes, weights = np.polynomial.legendre.leggauss(8)
    sub = 0.5 * nodes * pixscale  # offsets within a pixel, arcsec
    w = 0.5 * weights  # weights sum to 1 per axis
    centres = (np.arange(size) - half) * pixscale
    pos = (centres[:, None] + sub[None, :]).reshape(-1)  # (size*8,)
    wts = np.tile(w, size)
    kern = np.empty((size, size))
    rows = max(1, 2**22 // (64 * size))  # pixel rows per block: bounded memory for large kernels
    for r0 in range(0, size, rows):
        r1 = min(size, r0 + rows)
        r2 = pos[8 * r0 : 8 * r1, None] ** 2 + pos[None, :] ** 2
        prof = _moffat_profile(r2, alpha, beta) * np.outer(wts[8 * r0 : 8 * r1], wts)
        kern[r0:r1] = prof.reshape(r1 - r0, 8, size, 8).sum(axis=(1, 3))
    held = float(kern.sum()) * pixscale * pixscale  # fraction of the unit-flux profile inside the square
    if held < KERNEL_FLUX_FRACTION:
        warnings.warn(
            f"moffat_kernel: a {size}x{size} kernel at {pixscale} arcsec/pixel holds {100.0 * held:.2f} % of "
            f"the flux of a Moffat with FWHM {fwhm} arcsec, beta {beta}; the rest is dropped by normalising "
            f"to 1 (the default size holds >= {100.0 * DEFAULT_KERNEL_FRACTION:g} %)",
            TruncatedKernelWarning,
            stacklevel=2,
        )
    return kern / kern.sum()


#: dimensionless argument z = 2 pi alpha |f| of the tabulated OTF; beyond _Z_MAX the OTF is < 1e-12.
_Z_MAX = 60.0
_Z_STEP = 2.0e-3


@functools.lru_cache(maxsize=64)
def _otf_table(beta: float) -> np.ndarray:
    """OTF of a Moffat with alpha = 1 sampled on z = 0, _Z_STEP, ..., _Z_MAX (float64)."""
    z = np.arange(0.0, _Z_MAX + _Z_STEP, _Z_STEP)
    fwhm = 2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0)  # alpha = 1
    tab = moffat_otf(z / (2.0 * math.pi), fwhm, beta)
    tab.setflags(write=False)
    return tab


def moffat_otf_interp(freq_per_arcsec: np.ndarray, fwhm_arcsec: float, beta: float = 3.5) -> np.ndarray:
    """Fast Moffat OTF at |f| (cycles/arcsec) by linear interpolation of a per-beta table.

    The table step (2e-3 in 2 pi alpha |f|) keeps the interpolation error below 1e-6 of the DC value.
    Returns float64 values of the same shape as the input.
    """
    fwhm, beta = check_moffat(fwhm_arcsec, beta)
    alpha = moffat_alpha(fwhm, beta)
    tab = _otf_table(beta)
    # the table is uniform in z: index it directly (np.interp would bisect for every point)
    z = np.asarray(freq_per_arcsec, dtype=np.float64) * (2.0 * math.pi * alpha / _Z_STEP)
    last = tab.size - 1
    np.clip(z, 0.0, float(last), out=z)
    i = z.astype(np.intp)
    np.minimum(i, last - 1, out=i)
    z -= i
    lo = tab[i]
    out = tab[i + 1] - lo
    out *= z
    out += lo
    out[i + z >= last] = 0.0  # beyond the table (OTF < 1e-12): zero
    return out
