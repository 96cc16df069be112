"""Photometric conventions of the Legacy Surveys.

Fluxes are nanomaggies; AB magnitude m = 22.5 − 2.5·log10(flux). A non-positive or NaN flux has a NaN
magnitude (never an exception). PSFDEPTH is an inverse variance of the PSF flux (nanomaggy⁻²). PSFSIZE
is the FWHM (arcsec) of the Gaussian with the PSF's noise-equivalent area (NEA); a Moffat PSF of index
β with the same NEA has a smaller FWHM (see :func:`psfsize_to_moffat_fwhm`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

ZEROPOINT_MAG = 22.5
GAUSS_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.35482


def flux_to_mag(flux: ArrayLike) -> np.ndarray:
    """AB magnitude from flux in nanomaggies (float64); NaN where flux ≤ 0 or not finite."""
    f = np.asarray(flux, dtype=np.float64)
    out = np.full(f.shape, np.nan, dtype=np.float64)
    good = np.isfinite(f) & (f > 0)
    out[good] = ZEROPOINT_MAG - 2.5 * np.log10(f[good])
    return out


def mag_to_flux(mag: ArrayLike) -> np.ndarray:
    """Flux in nanomaggies from AB magnitude (float64); NaN magnitude → NaN flux."""
    m = np.asarray(mag, dtype=np.float64)
    return 10.0 ** (-0.4 * (m - ZEROPOINT_MAG))


def psfdepth_ivar_to_mag5(ivar: ArrayLike) -> np.ndarray:
    """5σ point-source depth (AB mag) from PSFDEPTH inverse variance (nanomaggy⁻²):
    22.5 − 2.5·log10(5/sqrt(ivar)); NaN for ivar ≤ 0 or not finite."""
    iv = np.asarray(ivar, dtype=np.float64)
    out = np.full(iv.shape, np.nan, dtype=np.float64)
    good = np.isfinite(iv) & (iv > 0)
    out[good] = ZEROPOINT_MAG - 2.5 * np.log10(5.0 / np.sqrt(iv[good]))
    return out


def mag5_to_psfdepth_ivar(mag5: ArrayLike) -> np.ndarray:
    """Inverse of :func:`psfdepth_ivar_to_mag5`: PSFDEPTH (nanomaggy⁻²) from a 5σ depth magnitude."""
    m = np.asarray(mag5, dtype=np.float64)
    sigma = mag_to_flux(m) / 5.0
    return 1.0 / sigma**2


def _moffat_factor(beta: float) -> float:
    """Moffat FWHM / NEA-equivalent Gaussian FWHM for index β (> 1).

    A normalised Moffat I ∝ (1 + r²/α²)^−β has NEA = 1/∫I² = πα²(2β−1)/(β−1)² and FWHM =
    2α·sqrt(2^(1/β)−1); a Gaussian has NEA = 4πσ². Equating NEAs gives FWHM_moffat = PSFSIZE·4(β−1)·sqrt(2^(1/β)−1) /
    (sqrt(2β−1)·2.3548).
    """
    if not beta > 1.0:
        raise ValueError(f"Moffat beta must be > 1 (finite flux), got {beta}")
    return 4.0 * (beta - 1.0) * np.sqrt(2.0 ** (1.0 / beta) - 1.0) / (np.sqrt(2.0 * beta - 1.0)
                                                                      * GAUSS_FWHM_PER_SIGMA)


def psfsize_to_moffat_fwhm(psfsize: ArrayLike, beta: float = 3.5) -> np.ndarray:
    """FWHM (arcsec) of the Moffat(β) PSF with the same noise-equivalent area as the Gaussian of FWHM
    ``psfsize`` (arcsec). ≈ 0.81·PSFSIZE at β = 3.5. Non-positive/NaN psfsize → NaN."""
    p = np.asarray(psfsize, dtype=np.float64)
    out = np.where(np.isfinite(p) & (p > 0), p, np.nan) * _moffat_factor(beta)
    return out


def moffat_fwhm_to_psfsize(fwhm: ArrayLike, beta: float = 3.5) -> np.ndarray:
    """Inverse of :func:`psfsize_to_moffat_fwhm`: PSFSIZE (arcsec) of a Moffat(β) with FWHM ``fwhm``."""
    f = np.asarray(fwhm, dtype=np.float64)
    return np.where(np.isfinite(f) & (f > 0), f, np.nan) / _moffat_factor(beta)
