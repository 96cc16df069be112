"""Rendering of catalogue objects into synthetic coadd pixels (pure numpy/scipy).

Each object is drawn in its own postage stamp and added into the brick image. The stamp is computed as
``source ⊗ PSF ⊗ pixel`` sampled at pixel centres:

1. the source surface brightness (elliptical Sersic, truncated; or a point source) is sampled on a
   ``supersample``-times finer grid whose samples include every pixel centre;
2. its discrete Fourier transform, kept below the pixel Nyquist frequency, is multiplied by the
   analytic transfer function of an untruncated Moffat PSF (β, FWHM) and by that of the square 0.262″
   pixel (a product of sincs);
3. the inverse transform on the pixel grid gives the values at the pixel centres.

The analytic transfer functions keep the flux exactly (both equal 1 at k = 0) and centre the PSF
exactly; the stamp is padded so that the periodic wrap of the FFT moves < 1e-3 of the flux. Checked
against GalSim (tests/synth): ≤ 0.5 % of the peak for Sersic galaxies, ≤ 1e-4 for point sources.

Shape conventions are Tractor's (the Legacy Surveys catalogue model): ``SHAPE_R`` is the half-light
radius (arcsec) along the *major* axis, |e| = hypot(e1, e2), axis ratio b/a = (1 − |e|)/(1 + |e|), and the
major axis lies at position angle θ = ½·atan2(e2, e1) East of North. On the coadd the column index grows
toward *lower* RA (West) and the row index toward higher Dec (North): East = −x, North = +y.
Profiles are truncated at ``truncation_radius(n)·SHAPE_R`` along the elliptical radius and normalised
numerically so that the rendered stamp holds exactly the catalogue flux (Tractor fluxes are total model
fluxes of its truncated profiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy.special import gamma, gammaincinv, kv

PIXSCALE = 0.262  # arcsec / pixel

#: Sersic index used for each Tractor morphological TYPE (SER uses the catalogue SERSIC).
TYPE_SERSIC_N: dict[str, float] = {"REX": 1.0, "EXP": 1.0, "DEV": 4.0}

#: Stamp half-sizes (pixels) an object may use; a short list keeps the transfer-function cache small.
HALF_SIZES: tuple[int, ...] = (10, 14, 18, 24, 32, 40, 48, 64, 80, 96, 128)


def sersic_bn(n: float) -> float:
    """Exact Sersic b_n: the half-light radius encloses half of the (untruncated) light."""
    return float(gammaincinv(2.0 * n, 0.5))


def truncation_radius(n: float) -> float:
    """Truncation radius of a Sersic profile in units of its half-light radius: 4 for n ≤ 1 rising
    linearly to 8 for n ≥ 4 (as Tractor's exponential and de Vaucouleurs mixtures)."""
    return 4.0 + 4.0 * min(max((n - 1.0) / 3.0, 0.0), 1.0)


def moffat_alpha(fwhm_arcsec: float, beta: float) -> float:
    """Moffat core radius α (arcsec) of a profile (1 + r²/α²)^−β with the given FWHM (arcsec)."""
    return fwhm_arcsec / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_transfer(k: np.ndarray, fwhm_arcsec: float, beta: float = 3.5) -> np.ndarray:
    """Fourier transform (normalised to 1 at k = 0) of a circular Moffat PSF.

    ``k`` is the angular wavenumber in radians per arcsec (2π × cycles/arcsec). For
    I(r) ∝ (1 + r²/α²)^−β the 2-D transform is T(k) = 2·(kα/2)^(β−1)·K_{β−1}(kα)/Γ(β−1).
    """
    if not beta > 1.0:
        raise ValueError(f"Moffat beta must be > 1, got {beta}")
    if not fwhm_arcsec > 0:
        raise ValueError(f"Moffat FWHM must be positive arcsec, got {fwhm_arcsec}")
    x = np.asarray(k, dtype=np.float64) * moffat_alpha(fwhm_arcsec, beta)
    out = np.ones_like(x)
    nz = x > 0
    xn = x[nz]
    with np.errstate(under="ignore"):
        out[nz] = 2.0 * (xn / 2.0) ** (beta - 1.0) * kv(beta - 1.0, xn) / gamma(beta - 1.0)
    out[~np.isfinite(out)] = 0.0
    return out


def moffat_profile(r_arcsec: np.ndarray, fwhm_arcsec: float, beta: float = 3.5) -> np.ndarray:
    """Moffat surface brightness per arcsec² for unit total flux at radius ``r_arcsec``."""
    a = moffat_alpha(fwhm_arcsec, beta)
    return (beta - 1.0) / (math.pi * a * a) * (1.0 + (np.asarray(r_arcsec) / a) ** 2) ** (-beta)


@dataclass(frozen=True)
class Shape:
    """A catalogue morphology. ``kind`` is the Tractor TYPE (PSF, REX, EXP, DEV, SER); ``r_e`` the
    major-axis half-light radius (arcsec); ``e1``, ``e2`` the sky ellipticity; ``n`` the Sersic index."""

    kind: str
    r_e: float = 0.0
    e1: float = 0.0
    e2: float = 0.0
    n: float = 1.0

    @property
    def is_point(self) -> bool:
        return self.kind == "PSF"


def shape_from_catalogue(type_: str, shape_r: float, e1: float, e2: float, sersic: float) -> Shape:
    """The rendering shape of a catalogue row (TYPE, SHAPE_R [arcsec], SHAPE_E1/E2, SERSIC)."""
    t = type_.strip().upper()
    if t == "PSF":
        return Shape("PSF")
    if t == "SER":
        n = float(sersic)
    elif t in TYPE_SERSIC_N:
        n = TYPE_SERSIC_N[t]
    else:
        raise ValueError(f"unknown Tractor TYPE {type_!r}; expected PSF, REX, EXP, DEV or SER")
    if not shape_r > 0:
        raise ValueError(f"galaxy of TYPE {t} needs SHAPE_R > 0 arcsec, got {shape_r}")
    if t == "REX":
        e1 = e2 = 0.0
    return Shape(t, float(shape_r), float(e1), float(e2), n)


def stamp_half_size(shape: Shape, fwhm_max_arcsec: float, pixscale: float = PIXSCALE) -> int:
    """Half-size (pixels) of the stamp an object is drawn in: the truncated profile plus
    4 PSF FWHM (6 for point sources), rounded up to the next entry of :data:`HALF_SIZES`. The object's
    light lies within this many pixels of its centre pixel, up to < 1e-3 of its flux in the PSF wings
    (which the periodic FFT folds back into the stamp rather than losing)."""
    if shape.is_point:
        need = 6.0 * fwhm_max_arcsec / pixscale + 1.0
    else:
        need = (truncation_radius(shape.n) * shape.r_e + 4.0 * fwhm_max_arcsec) / pixscale + 1.0
    for h in HALF_SIZES:
        if h >= need:
            return h
    return HALF_SIZES[-1]


def _supersample_for(half: int, shape: Shape) -> int:
    """Odd supersampling factor of a galaxy's source grid (the cusp is refined separately)."""
    side = 2 * half + 1
    return 5 if side * 5 <= 330 else 3


@lru_cache(maxsize=512)
def _transfer(side: int, fwhm_arcsec: float, beta: float, pixscale: float) -> np.ndarray:
    """PSF × pixel transfer function on the rfft2 grid of a side² pixel stamp (side odd)."""
    fy = sfft.fftfreq(side, d=pixscale)  # cycles / arcsec
    fx = sfft.rfftfreq(side, d=pixscale)
    k = 2.0 * np.pi * np.hypot(fy[:, None], fx[None, :])
    t = moffat_transfer(k, fwhm_arcsec, beta)
    t *= np.sinc(fy * pixscale)[:, None] * np.sinc(fx * pixscale)[None, :]
    t.setflags(write=False)
    return t


_REFINE = 24  # sub-grid per side for the samples around a Sersic centre
_CORE = 3     # refine samples within ±_CORE of the centre sample


def _sersic_sb(shape: Shape, east: np.ndarray, north: np.ndarray) -> np.ndarray:
    """Truncated Sersic surface brightness (arbitrary scale, I = 1 at the half-light isophote) at
    offsets ``east``/``north`` (arcsec, broadcastable) from the centre."""
    e = min(math.hypot(shape.e1, shape.e2), 0.99)
    q = (1.0 - e) / (1.0 + e)
    theta = 0.5 * math.atan2(shape.e2, shape.e1)
    st, ct = math.sin(theta), math.cos(theta)
    a_major = east * st + north * ct
    b_minor = east * ct - north * st
    r2 = (a_major * a_major + (b_minor * (1.0 / q)) ** 2) * (1.0 / shape.r_e**2)  # (r / r_e)²
    img = np.exp((r2 ** (0.5 / shape.n) - 1.0) * -sersic_bn(shape.n))
    img[r2 > truncation_radius(shape.n) ** 2] = 0.0
    return img


def sersic_samples(shape: Shape, side: int, s: int, dx: float, dy: float,
                   pixscale: float = PIXSCALE) -> np.ndarray:
    """Truncated elliptical Sersic sampled on a (side·s)² grid, normalised to unit sum.

    The grid is centred on the stamp's centre pixel (whose centre is a sample when ``s`` is odd); the
    object centre is offset by (``dx``, ``dy``) pixels along columns and rows.
    """
    n_samp = side * s
    u = (np.arange(n_samp) - (n_samp - 1) / 2.0) / s  # pixels from the centre pixel's centre
    x = (u - dx) * pixscale   # arcsec along columns (toward West)
    y = (u - dy) * pixscale   # arcsec along rows (toward North)
    # the large grid in float32 (2× faster; the profile is normalised numerically below)
    img = _sersic_sb(shape, -x[None, :].astype(np.float32), y[:, None].astype(np.float32))
    # The cusp of a Sersic profile is badly point-sampled: replace the samples near the centre by the
    # mean over a 24×24 sub-grid of their cells (no sub-sample falls exactly on the centre).
    ic = int(np.argmin(np.abs(x)))
    jc = int(np.argmin(np.abs(y)))
    i0, i1 = max(ic - _CORE, 0), min(ic + _CORE + 1, n_samp)
    j0, j1 = max(jc - _CORE, 0), min(jc + _CORE + 1, n_samp)
    fine = ((np.arange(_REFINE) + 0.5) / _REFINE - 0.5) * (pixscale / s)  # arcsec within a cell
    e_f = -(x[i0:i1, None] + fine[None, :])          # (ni, R)
    n_f = y[j0:j1, None] + fine[None, :]             # (nj, R)
    sub = _sersic_sb(shape, e_f[None, :, None, :], n_f[:, None, :, None])  # (nj, ni, R, R)
    img[j0:j1, i0:i1] = sub.mean(axis=(2, 3))
    tot = float(img.sum(dtype=np.float64))
    if not tot > 0:
        raise ValueError(f"Sersic profile with r_e={shape.r_e}\" has no flux on a {side}-pixel stamp")
    img /= tot
    return img


def render_object(shape: Shape, fluxes: np.ndarray, fwhms_arcsec: np.ndarray, dx: float, dy: float,
                  beta: float = 3.5, pixscale: float = PIXSCALE) -> np.ndarray:
    """Stamps (nb, 2h+1, 2h+1) of one object in nanomaggies per pixel, one per band.

    ``fluxes``: total flux per band (nanomaggies); ``fwhms_arcsec``: Moffat FWHM per band;
    (``dx``, ``dy``): offset of the object's centre from the stamp's centre pixel, pixels (|·| ≤ 0.5).
    The half-size h is :func:`stamp_half_size` for the widest PSF.

    The source spectrum is computed on the supersampled grid, then only its frequencies below the
    pixel Nyquist limit are kept (the PSF × pixel transfer function is < 1e-3 beyond it for PSF FWHM
    ≥ 0.8″), shifted so that the inverse transform on the pixel grid lands on the pixel centres. Each
    stamp sums to its flux (exactly: the k = 0 term is kept).
    """
    fluxes = np.asarray(fluxes, dtype=np.float64)
    fwhms = np.asarray(fwhms_arcsec, dtype=np.float64)
    half = stamp_half_size(shape, float(np.max(fwhms)), pixscale)
    side = 2 * half + 1
    ky = np.rint(sfft.fftfreq(side) * side)[:, None]   # signed integer frequency indices
    kx = np.arange(half + 1, dtype=np.float64)[None, :]
    if shape.is_point:
        spec = np.exp(-2j * np.pi * (kx * (half + dx) + ky * (half + dy)) / side)
    else:
        s = _supersample_for(half, shape)
        n_samp = side * s
        full = sfft.rfft2(sersic_samples(shape, side, s, dx, dy, pixscale)).astype(np.complex128)
        full /= full[0, 0].real  # unit flux to float64 precision (the samples are float32)
        spec = np.concatenate([full[: half + 1, : half + 1], full[n_samp - half:, : half + 1]], axis=0)
        off = (s - 1) // 2  # supersample index of pixel 0's centre
        spec = spec * np.exp(2j * np.pi * (kx + ky) * off / n_samp)
    out = np.empty((len(fluxes), side, side), dtype=np.float64)
    for b, (f, w) in enumerate(zip(fluxes, fwhms)):
        t = _transfer(side, round(float(w), 6), float(beta), float(pixscale))
        out[b] = sfft.irfft2(spec * t, s=(side, side)) * float(f)
    return out


def add_stamp(image: np.ndarray, stamp: np.ndarray, cx: int, cy: int) -> None:
    """Add ``stamp`` (2h+1 square) into ``image`` with its centre pixel at column ``cx``, row ``cy``,
    clipping at the image edges (in place)."""
    h = stamp.shape[-1] // 2
    ny, nx = image.shape[-2:]
    x0, x1 = cx - h, cx + h + 1
    y0, y1 = cy - h, cy + h + 1
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x1, nx), min(y1, ny)
    if ix0 >= ix1 or iy0 >= iy1:
        return
    image[..., iy0:iy1, ix0:ix1] += stamp[..., iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
