"""From sub-pixel cell fluxes to pixel images: FFT, Moffat (x) pixel transfer, exact decimation.

The cell fluxes W (nanomaggies in the lens-aligned sub-pixel cells of dhs.core.render.subpixel_axes) are
samples of (source (x) cell box).  The image is (source (x) PSF (x) pixel) at pixel centres: a zero-padded
FFT of W on the sub-pixel grid, multiplied by the analytic transfer function
OTF_moffat(|f|) * sinc(fx p) sinc(fy p) / (sinc(fx h) sinc(fy h)) * exp(2 pi i f . d) (d moves the cell grid
onto pixel centres, undoing the lens alignment exactly), brought back to the pixel grid by folding the
spectrum (exact decimation).  Only frequencies where the OTF exceeds OTF_LEVEL (1e-5) of its DC value are
kept (images move by < 4e-6 of their peak against keeping everything above 1e-10), and the padding keeps the
periodic copies of the PSF below 2e-5 of its peak: no light wraps around the stamp edges.

Many stamps and bands are transformed together (stacked 1-D FFTs: pocketfft transforms each line on its
own, so a stamp's image does not depend on the others in the call).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft

from .psf import _Z_STEP, _otf_table, moffat_alpha, moffat_otf_cutoff, moffat_radius_for_level

__all__ = ["plan", "psf_images"]

#: Spectral components of the PSF below this fraction of the DC value are dropped (the frequencies kept
#: set the transform's size; tests/core/test_transfer.py bounds the image change by this fraction of the peak).
OTF_LEVEL = 1e-5
#: Periodic copies of the PSF (FFT wrap-around) are kept below this fraction of its peak.
WRAP_LEVEL = 2e-5


@functools.lru_cache(maxsize=1024)
def plan(size: int, ss: int, pixscale: float, psfs: tuple[tuple[float, float], ...]) -> tuple[int, int]:
    """(padded period in pixels, kept frequencies per axis) of the FFT of a stamp for these (FWHM, beta)."""
    wrap = max(moffat_radius_for_level(WRAP_LEVEL, f, b) for f, b in psfs)
    # (capped at 4 stamp sizes: only reached for beta close to 1, whose wings never converge)
    pad = min(math.ceil(wrap / pixscale) + 1, 4 * size)
    l_pix = sfft.next_fast_len(size + pad)
    if l_pix % 2:
        l_pix += 1
    big = l_pix * ss
    h = pixscale / ss
    f_cut = max(moffat_otf_cutoff(float(f), float(b), OTF_LEVEL) for f, b in psfs)
    n_keep = min(big // 2, math.ceil(f_cut * big * h) + 1)
    return l_pix, n_keep


@functools.lru_cache(maxsize=16)
def _otf_table32(beta: float) -> tuple[np.ndarray, np.ndarray]:
    """psf._otf_table(beta) as float32 values and slopes per step, one zero step appended (z beyond the
    table, where the OTF is < 1e-12, reads 0)."""
    tab = np.append(_otf_table(beta), 0.0)
    slope = np.append(np.diff(tab), 0.0)
    return tab.astype(np.float32), slope.astype(np.float32)


def _otf_many(fr: np.ndarray, alphas: np.ndarray, beta: float) -> np.ndarray:
    """Moffat OTF (linear interpolation of psf._otf_table) at |f| = fr for many PSFs of one beta:
    (P,) + fr.shape float32 (fr float32, cycles/arcsec; alphas arcsec)."""
    tab, slope = _otf_table32(beta)
    z = fr[None] * (alphas * (2.0 * math.pi / _Z_STEP)).astype(np.float32).reshape((-1,) + (1,) * fr.ndim)
    np.minimum(z, float(tab.size - 1), out=z)
    i = z.astype(np.int32)
    z -= i.astype(np.float32)
    out = slope[i]
    out *= z
    out += tab[i]
    return out


@functools.lru_cache(maxsize=256)
def _transfer_half(fwhm: float, beta: float, u: int, big: int, h: float, p: float) -> np.ndarray:
    """Moffat OTF x pixel / cell-box transfer of one PSF on the (u, u) non-negative frequencies: float32,
    read-only, cached (bands and stamps that share a PSF reuse it)."""
    fx = np.arange(u, dtype=np.float64) / (big * h)
    fr = np.sqrt(fx[:, None] ** 2 + fx[None, :] ** 2).astype(np.float32)
    box = (np.sinc(fx * p) / np.sinc(fx * h)).astype(np.float32)
    half = _otf_many(fr, np.array([moffat_alpha(fwhm, beta)]), beta)[0]
    half *= box[:, None]
    half *= box[None, :]
    half.setflags(write=False)
    return half


def _transfers(fwhm, beta, keep, u: int, big: int, h: float, p: float) -> np.ndarray:
    """Moffat OTF x pixel / cell-box transfer per PSF: (P, 2u-1, u) float32, rows by signed y-frequency.

    Frequencies at or beyond a PSF's own ``keep`` (its row's pruned spectrum size) are zero.
    """
    half = np.stack([_transfer_half(float(f), float(b), u, big, h, p) for f, b in zip(fwhm, beta)])
    cut = np.arange(u)[None, :] >= np.asarray(keep)[:, None]  # (P, u)
    if cut.any():
        half[cut[:, :, None] | cut[:, None, :]] = 0.0
    return np.concatenate((half[:, :0:-1], half), axis=1)


def _fold(arr: np.ndarray, first: int, period: int, axis: int) -> np.ndarray:
    """Sum entries whose signed frequency index (starting at ``first``) agrees modulo ``period``.

    Slices of ``arr`` are added in ascending frequency order onto a zeroed (period) axis.
    """
    n = arr.shape[axis]
    shape = list(arr.shape)
    shape[axis] = period
    out = np.zeros(shape, dtype=arr.dtype)
    src = [slice(None)] * arr.ndim
    dst = [slice(None)] * arr.ndim
    i = 0
    while i < n:
        r = (first + i) % period
        m = min(n - i, period - r)
        src[axis] = slice(i, i + m)
        dst[axis] = slice(r, r + m)
        out[tuple(dst)] += arr[tuple(src)]
        i += m
    return out


def _fold_half(arr: np.ndarray, period: int) -> np.ndarray:
    """The non-negative half (frequencies 0 .. period // 2) of _fold(full, -(u - 1), period, -1), where
    ``full`` is the Hermitian spectrum whose frequencies 0 .. u - 1 are ``arr`` (..., u) along the last
    axis: what an inverse real FFT of length ``period`` reads, without building the negative half.

    Terms are added in ascending signed frequency (as _fold does): negative frequencies -j (conjugates
    of arr[j]) first, then the non-negative ones.
    """
    u = arr.shape[-1]
    half = period // 2
    out = np.zeros(arr.shape[:-1] + (half + 1,), dtype=arr.dtype)
    # negative frequencies, most negative first: -j lands on (-j) mod period, kept when that is <= half
    for start in range(((u - 1) // period) * period, -1, -period):
        j_lo, j_hi = start + period - half, min(start + period - 1, u - 1)
        if j_hi >= j_lo:  # -j for j in [j_lo, j_hi] lands on period - (j - start), descending from half
            descending = arr[..., j_hi : j_lo - 1 if j_lo else None : -1]
            out[..., period - (j_hi - start) : half + 1] += np.conj(descending)
        if 0 < start <= u - 1:  # -start lands on 0
            out[..., 0] += np.conj(arr[..., start])
    for start in range(0, u, period):
        stop = min(start + half + 1, u)
        out[..., : stop - start] += arr[..., start:stop]
    return out


def _spectra(w: np.ndarray, l_pix: int, ss: int, u: int) -> np.ndarray:
    """Pruned forward transforms  of (G, M, M) cell fluxes: (G, 2u-1, u) complex64."""
    big = l_pix * ss
    g, m, _ = w.shape
    # rows equal to the row above (outside the light windows, every block's ss rows of cells are) are
    # transformed once: the x transforms run on the distinct rows only
    new = np.ones((g, m), dtype=bool)
    np.logical_not((w[:, 1:] == w[:, :-1]).all(axis=2), out=new[:, 1:])
    flat = new.reshape(-1)
    distinct = sfft.rfft(w.reshape(g * m, -1)[flat], n=big, axis=1)[:, :u]  # (zero-padded to the period)
    a = distinct[np.cumsum(flat) - 1].reshape(g, m, u)
    b = sfft.fft(a, n=big, axis=1)
    return np.concatenate((b[:, big - u + 1 :], b[:, :u]), axis=1)


def _shift_spectra(spec: np.ndarray, shift_x, shift_y, l_pix: int, ss: int, pixscale: float) -> None:
    """Multiply (G, 2u-1, u) spectra by exp(2 pi i f . d) (in place): d moves each stamp's cell grid (sub-grid
    shifts shift_x, shift_y in pixels, subpixel_axes) onto its pixel centres."""
    u = spec.shape[2]
    k = np.arange(-(u - 1), u, dtype=np.float64) * (2.0 * math.pi / (l_pix * pixscale))
    d_x = (0.5 * (ss + 1) / ss - np.asarray(shift_x)) * pixscale
    d_y = (0.5 * (ss + 1) / ss - np.asarray(shift_y)) * pixscale
    spec *= np.exp(1j * (k[None, :] * d_y[:, None])).astype(np.complex64)[:, :, None]
    spec *= np.exp(1j * (k[None, u - 1 :] * d_x[:, None])).astype(np.complex64)[:, None, :]


def _images(spec, transfer, size: int, l_pix: int) -> np.ndarray:
    """Pixel images of P (shifted spectrum, PSF transfer) pairs: (P, size, size) float32 views."""
    u = spec.shape[2]
    prod = np.multiply(spec, transfer)
    yf = _fold(prod, -(u - 1), l_pix, axis=1)
    rows = sfft.ifft(yf, axis=1)[:, :size]
    return sfft.irfft(_fold_half(rows, l_pix), n=l_pix, axis=2)[:, :, :size]


#: stamps are transformed together when their kept spectra differ by at most this factor in size (each
#: is transformed at the largest size of its group, with the extra frequencies zero: the same image)
_GROUP_SPREAD = 1.1


def _groups(plans: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
    """Stamps (indices) grouped by padded period, and within it by similar kept-spectrum size."""
    out = []
    for l_pix in sorted({p[0] for p in plans}):
        rows = sorted((i for i in range(len(plans)) if plans[i][0] == l_pix), key=lambda i: plans[i][1])
        start = 0
        for k in range(1, len(rows) + 1):
            if k == len(rows) or plans[rows[k]][1] > _GROUP_SPREAD * plans[rows[start]][1]:
                out.append((l_pix, rows[start:k]))
                start = k
    return out


def psf_images(
    w, shifts, fluxes, fwhm, beta, size: int, ss: int, pixscale: float, clip, out: np.ndarray | None = None
) -> np.ndarray:
    """(N, B, size, size) float64 images (nanomaggies/pixel) of N stamps' unit-flux cell fluxes in B bands.

    w: (N, M, M) float32 cell fluxes; shifts: (N, 2) sub-grid shifts (pixels, subpixel_axes); fluxes,
    fwhm, beta: (N, B); clip: (N,) bool, True for non-negative sources (the transform's float32 round-off
    in far-wing pixels, within ~1e-7 of the peak of zero, is clipped at zero).  Bands of zero flux are 0.
    Each stamp's transform uses its own plan (padding and kept frequencies from its own PSFs).  Written
    into ``out`` (zeros, or the bands of zero flux are left as they are) when given.
    """
    n, n_bands = fluxes.shape
    h = pixscale / ss
    if out is None:
        out = np.zeros((n, n_bands, size, size), dtype=np.float64)
    plans = [plan(size, ss, pixscale, tuple((float(f), float(b)) for f, b in zip(fwhm[i], beta[i])))
             for i in range(n)]
    for l_pix, rows in _groups(plans):
        pairs = [(j, i, b) for j, i in enumerate(rows) for b in range(n_bands) if fluxes[i, b] != 0.0]
        if not pairs:
            continue
        u = max(plans[i][1] for i in rows)
        # (consecutive stamps, the usual case, are read and written in place)
        span = slice(rows[0], rows[0] + len(rows)) if rows == list(range(rows[0], rows[0] + len(rows))) else None
        spec = _spectra(w[rows] if span is None else w[span], l_pix, ss, u)
        # (the shifts are applied once per stamp, before its bands' transfer functions: they commute)
        _shift_spectra(spec, shifts[rows, 0], shifts[rows, 1], l_pix, ss, pixscale)
        pj, pi, pb = (np.array(col) for col in zip(*pairs))
        transfer = _transfers(fwhm[pi, pb], beta[pi, pb], [plans[i][1] for i in pi], u, l_pix * ss, h, pixscale)
        img = _images(spec[pj], transfer, size, l_pix)
        keep = np.asarray(clip)[pi]
        if keep.all():
            np.maximum(img, 0.0, out=img)
        elif keep.any():
            np.maximum(img, 0.0, out=img, where=keep[:, None, None])
        scale = fluxes[pi, pb][:, None, None]
        if span is not None and len(pairs) == len(rows) * n_bands and out.flags.c_contiguous:
            np.multiply(img, scale, out=out[span].reshape(-1, size, size))
        else:
            out[pi, pb] = img * scale
    return out
