"""Sweep rows (DR10 column set, upper-case names) for the synthetic objects of one brick.

The photometric and shape columns are the truth the images were drawn from (float32 as stored). The
depth and error columns follow from the brick's maps:

- ``PSFDEPTH_b`` = pixel invvar at the object / NEA of the PSF (pixels), i.e. the inverse variance of a
  PSF flux; 0 where the pixel has no data;
- ``FLUX_IVAR_b``, ``NEA_b`` and ``GALDEPTH_b`` use a Gaussian approximation of the object
  (σ² = σ_PSF² + (SHAPE_R/1.1774)²; a round 0.45″ exponential for GALDEPTH);
- ``FIBERFLUX_b`` is the flux of that Gaussian inside a 1.5″-diameter fibre;
- ``MW_TRANSMISSION_b`` = 10^(−0.4·R_b·EBV) with the DR9/DR10 DECam and WISE coefficients.

Columns with no meaning here (proper motions, Gaia errors, light curves) hold zeros, as Tractor writes
for objects without them. The i band is not observed in the synthetic sky (NOBS_I = 0, FLUX_I = 0).
"""

from __future__ import annotations

import numpy as np

from dhs.sampling.hashing import stable_hash64
from dhs.survey.bricks import Brick
from dhs.synth.columns import OPTICAL, SWEEP_SCHEMA, WISE
from dhs.synth.maps import BrickMaps
from dhs.synth.objects import BrickObjects
from dhs.synth.plan import BANDS, Conditions, psf_nea_pix

RELEASE_DR10_SOUTH = 10000
PIXSCALE = 0.262
#: Galactic extinction coefficients A_b / E(B−V) (DR9/DR10 data model).
EXTINCTION_COEFF = {"G": 3.214, "R": 2.165, "I": 1.592, "Z": 1.211,
                    "W1": 0.184, "W2": 0.113, "W3": 0.0241, "W4": 0.00910}
#: 5σ depths (AB mag) and typical exposure counts assumed for the unWISE photometry.
WISE_DEPTH5 = {"W1": 21.0, "W2": 20.3, "W3": 16.7, "W4": 15.0}
WISE_NOBS = {"W1": 180, "W2": 180, "W3": 15, "W4": 15}
FIBER_RADIUS_ARCSEC = 0.75
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
_SIGMA_PER_RE = 1.0 / 1.1774  # Gaussian σ of a profile with half-light radius r_e (Gaussian case)
_DCHISQ_ORDER = ("PSF", "REX", "DEV", "EXP", "SER")


def _empty(n: int) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name, fmt in SWEEP_SCHEMA:
        if fmt.endswith("A"):
            cols[name] = np.full(n, "", dtype=f"U{int(fmt[:-1])}")
        elif fmt == "L":
            cols[name] = np.zeros(n, dtype=bool)
        elif fmt == "5E":
            cols[name] = np.zeros((n, 5), dtype=np.float32)
        else:
            dtype = {"E": np.float32, "D": np.float64, "I": np.int16, "J": np.int32, "K": np.int64,
                     "B": np.uint8}[fmt]
            cols[name] = np.zeros(n, dtype=dtype)
    return cols


def _pix(objs: BrickObjects, size: int) -> tuple[np.ndarray, np.ndarray]:
    ix = np.clip(np.rint(objs.x).astype(int), 0, size - 1)
    iy = np.clip(np.rint(objs.y).astype(int), 0, size - 1)
    return ix, iy


def _fraction_masked(mask: np.ndarray, x: float, y: float, radius: float) -> float:
    size = mask.shape[0]
    r = int(np.ceil(radius))
    x0, x1 = max(int(np.rint(x)) - r, 0), min(int(np.rint(x)) + r + 1, size)
    y0, y1 = max(int(np.rint(y)) - r, 0), min(int(np.rint(y)) + r + 1, size)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius
    if not inside.any():
        return 0.0
    return float(mask[y0:y1, x0:x1][inside].mean())


def _wise_tile(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """unWISE-like 1.5° tile name and the position on its 2048² grid of 2.75″ pixels."""
    ra_t = (np.floor(ra / 1.5) + 0.5) * 1.5
    dec_t = np.round(dec / 1.5) * 1.5
    names = np.array([f"{int(r * 10):04d}{'p' if d >= 0 else 'm'}{int(np.rint(abs(d) * 10)):03d}"
                      for r, d in zip(ra_t, dec_t)])
    wx = 1024.0 + (ra_t - ra) * np.cos(np.radians(dec)) * 3600.0 / 2.75
    wy = 1024.0 + (dec - dec_t) * 3600.0 / 2.75
    return names, wx, wy


def sweep_columns(brick: Brick, objs: BrickObjects, maps: BrickMaps, cond: Conditions,
                  ra: np.ndarray, dec: np.ndarray, seed: int, size: int) -> dict[str, np.ndarray]:
    """All sweep columns (upper-case DR10 names) for the objects of one brick, OBJID = row order."""
    n = objs.n
    c = _empty(n)
    rng = np.random.Generator(np.random.PCG64(stable_hash64("dhs.synth.catalog", seed, brick.brickname)
                                              & 0xFFFFFFFFFFFFFFFF))
    ix, iy = _pix(objs, size)
    is_psf = objs.type == "PSF"

    c["RELEASE"][:] = RELEASE_DR10_SOUTH
    c["BRICKID"][:] = brick.brickid
    c["BRICKNAME"][:] = brick.brickname
    c["OBJID"][:] = np.arange(n)
    c["BRICK_PRIMARY"][:] = True
    c["MASKBITS"][:] = maps.maskbits[iy, ix]
    c["TYPE"][:] = objs.type
    c["RA"][:] = ra
    c["DEC"][:] = dec
    c["BX"][:] = objs.x
    c["BY"][:] = objs.y
    c["EBV"][:] = cond.ebv
    c["MJD_MIN"][:] = 56500.0 + rng.uniform(0, 300, n)
    c["MJD_MAX"][:] = 58500.0 + rng.uniform(0, 600, n)

    for b in OPTICAL + WISE:
        c[f"MW_TRANSMISSION_{b}"][:] = 10.0 ** (-0.4 * EXTINCTION_COEFF[b] * cond.ebv)
    for b in WISE:
        f5 = 10.0 ** (-0.4 * (WISE_DEPTH5[b] - 22.5))
        ivar = (5.0 / f5) ** 2
        c[f"FLUX_{b}"][:] = objs.flux[b.lower()]
        c[f"FLUX_IVAR_{b}"][:] = ivar
        c[f"PSFDEPTH_{b}"][:] = ivar
        c[f"NOBS_{b}"][:] = WISE_NOBS[b]
        c[f"RCHISQ_{b}"][:] = rng.uniform(0.8, 1.3, n)

    sig_gal2 = (objs.shape_r.astype(np.float64) * _SIGMA_PER_RE) ** 2
    snr_r = np.zeros(n)
    for b in BANDS:
        B = b.upper()
        psf_sigma = cond.psfsize[b] / _FWHM_PER_SIGMA  # arcsec
        nea_psf_pix = psf_nea_pix(cond.psfsize[b])
        pix_iv = maps.invvar[b][iy, ix].astype(np.float64)
        psfdepth = pix_iv / nea_psf_pix
        nea_obj = 4.0 * np.pi * (psf_sigma**2 + sig_gal2)  # arcsec²
        nea_obj_pix = nea_obj / PIXSCALE**2
        nea_rex = 4.0 * np.pi * (psf_sigma**2 + (0.45 * _SIGMA_PER_RE) ** 2) / PIXSCALE**2
        flux = objs.flux[b].astype(np.float64)
        fib = 1.0 - np.exp(-(FIBER_RADIUS_ARCSEC**2) / (2.0 * (psf_sigma**2 + sig_gal2)))
        has = pix_iv > 0
        c[f"FLUX_{B}"][:] = objs.flux[b]
        c[f"FLUX_IVAR_{B}"][:] = np.where(has, pix_iv / nea_obj_pix, 0.0)
        c[f"PSFDEPTH_{B}"][:] = psfdepth
        c[f"GALDEPTH_{B}"][:] = pix_iv / nea_rex
        c[f"PSFSIZE_{B}"][:] = cond.psfsize[b]
        c[f"NEA_{B}"][:] = nea_obj
        c[f"BLOB_NEA_{B}"][:] = nea_obj
        c[f"FIBERFLUX_{B}"][:] = flux * fib
        c[f"FIBERTOTFLUX_{B}"][:] = flux * fib
        c[f"NOBS_{B}"][:] = np.where(has, cond.nexp[b], 0)
        c[f"RCHISQ_{B}"][:] = rng.uniform(0.8, 1.3, n)
        c[f"FRACIN_{B}"][:] = 1.0
        nodata = (maps.invvar[b] == 0).astype(np.float64)
        c[f"FRACMASKED_{B}"][:] = [
            _fraction_masked(nodata, objs.x[k], objs.y[k], 2.0 * np.sqrt(psf_sigma**2 + sig_gal2[k]) / PIXSCALE)
            for k in range(n)]
        c[f"ALLMASK_{B}"][:] = np.where(has, 0, 1)
        c[f"ANYMASK_{B}"][:] = np.where(has, 0, 1)
        if b == "r":
            snr_r = flux * np.sqrt(c["FLUX_IVAR_R"].astype(np.float64))
    # i band: not observed in the synthetic sky
    c["MW_TRANSMISSION_I"][:] = 10.0 ** (-0.4 * EXTINCTION_COEFF["I"] * cond.ebv)

    c["WISEMASK_W1"][:] = maps.wisemask_w1[iy, ix]
    c["WISEMASK_W2"][:] = maps.wisemask_w2[iy, ix]
    names, wx, wy = _wise_tile(ra, dec)
    c["WISE_COADD_ID"][:] = names
    c["WISE_X"][:] = wx
    c["WISE_Y"][:] = wy

    # positions: σ ≈ FWHM / (2.35·SNR) per axis
    pos_sigma_deg = (cond.psfsize["r"] / _FWHM_PER_SIGMA) / np.maximum(snr_r, 1.0) / 3600.0
    c["RA_IVAR"][:] = 1.0 / pos_sigma_deg**2
    c["DEC_IVAR"][:] = 1.0 / pos_sigma_deg**2
    # DCHISQ (PSF, REX, DEV, EXP, SER): the object's own model is the best
    base = snr_r**2
    for j, model in enumerate(_DCHISQ_ORDER):
        better = objs.type == model
        c["DCHISQ"][:, j] = base * np.where(better, 1.05, 1.0 - 0.005 * j)

    gaia = is_psf & (objs.flux["r"] > 10.0 ** (-0.4 * (20.5 - 22.5)))
    c["REF_CAT"][gaia] = "GE"
    c["REF_ID"][gaia] = [abs(stable_hash64("gaia", brick.brickname, k)) for k in np.flatnonzero(gaia)]
    c["REF_EPOCH"][gaia] = 2016.0
    rmag = 22.5 - 2.5 * np.log10(objs.flux["r"][gaia].astype(np.float64))
    c["GAIA_PHOT_G_MEAN_MAG"][gaia] = rmag + 0.1
    c["GAIA_PHOT_BP_MEAN_MAG"][gaia] = rmag + 0.5
    c["GAIA_PHOT_RP_MEAN_MAG"][gaia] = rmag - 0.4
    c["GAIA_ASTROMETRIC_PARAMS_SOLVED"][gaia] = 31

    gal = ~is_psf
    c["SERSIC"][:] = objs.sersic
    c["SHAPE_R"][:] = objs.shape_r
    c["SHAPE_E1"][:] = objs.e1
    c["SHAPE_E2"][:] = objs.e2
    r_err = np.where(gal, objs.shape_r / np.maximum(snr_r, 1.0), np.inf)
    c["SHAPE_R_IVAR"][:] = np.where(gal, 1.0 / r_err**2, 0.0)
    e_ivar = np.where(gal & (objs.type != "REX"), np.maximum(snr_r, 1.0) ** 2 / 4.0, 0.0)
    c["SHAPE_E1_IVAR"][:] = e_ivar
    c["SHAPE_E2_IVAR"][:] = e_ivar
    c["SERSIC_IVAR"][:] = np.where(objs.type == "SER", np.maximum(snr_r, 1.0) ** 2 / 100.0, 0.0)
    return c
