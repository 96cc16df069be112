"""Lensed cell fluxes of smooth interpolated templates, filtered per ray at the PSF's band limit.

The renderer needs, on its image-plane grid of cells of side h, the cell fluxes W = h^2 x (lensed surface
brightness (x) cell box) sampled at the cell centres; the PSF then removes everything above ~1/FWHM.  The
only error that matters is therefore aliasing: source structure at the cell grid's frequencies (k / h in the
image plane) folding onto the low frequencies the PSF passes.  Here every ray samples the template smoothed
by a Gaussian that is *isotropic in the image plane*, of sigma ``FILTER_WIDTH`` x h (transfer 0.007 at 1/h,
against ~0 at the cell box's own zeros and 0.09 for sigma 0.35 h), mapped to the source plane through the
local lens Jacobian J: an anisotropic Gaussian of covariance (FILTER_WIDTH h)^2 J J^T.  It is made of an
isotropic pre-filtered level of the template (its minor width) and, where the footprint is elongated (near
critical curves, around the lens centre), Gaussian-weighted taps along the major axis.  The extra blur over
the cell box, a Gaussian of variance (FILTER_WIDTH^2 - 1/12) h^2 in the image plane, is removed to second
order by a Laplacian step on the cell grid, so the fluxes keep the box-sample contract of
dhs.core.render (its transform divides the box's transfer function out).  No adaptive refinement: every
cell costs one level lookup per tap.

A filter of the right shape *in the image plane* is what keeps the lensed flux: an isotropic source-plane
filter sized to the footprint's area blurs the source where the magnification varies across it, which
moved 8 % of the flux of counter-images of large Einstein radii (measured on real bank templates).

Templates qualify (``InterpolatedSource.band_limited``) when their light is resolved -- rms radius >= 3
template pixels, no pixel above 10 % of the flux -- and their spectrum beyond 0.4 cycles per pixel stays
below 5 % of the total.  The builder's bank templates (redrawn at a 0.12" Gaussian PSF) always qualify,
whatever their pixel size relative to the cells.  The levels then live on the template's own pixel grid (one
inverse FFT each, built on first use) and the unfiltered template serves footprints under a pixel
(templates coarser than the cells: template scale 3-5, 3-band stamps, worst of 12 lensed ones, 0.5 % of the
peak and 0.14 % of the flux against the 16x brute force).
Other templates (single bright pixels, compact Gaussians) take the adaptive renderer of dhs.core.render, which samples pre-filtered levels on a quarter-pixel grid.

Levels reach a Gaussian sigma of 4 template pixels: cells whose footprint asks for more (around the
lens centre, where the lens demagnifies) are under-filtered, in a region of little lensed light.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FILTER_WIDTH", "band_limited_grid_flux", "is_band_limited"]

#: image-plane Gaussian sigma of each ray's filter, in cells
FILTER_WIDTH = 0.5
#: Gaussian sigmas (template pixels) of the pre-filtered levels (level 0: the bilinear template itself);
#: a width between two levels blends them linearly in variance
LEVEL_SIGMAS = (0.0, 0.5, 0.7071, 1.0, 1.4142, 2.0, 2.8284, 4.0)
_LEVEL_VARIANCES = np.square(LEVEL_SIGMAS)
#: footprints more elongated than this (ratio of the Gaussian's axes) get taps along the major axis; below
#: it, the isotropic filter of the same area.  (Both cheaper choices bias the flux: an isotropic filter of
#: the geometric-mean width blurs the source plane across the caustic, moving magnified light -- 1 % of
#: the flux at ratios up to 2 -- and one of the minor width under-filters the major axis: 1.4 %.)
_TAP_RATIO = 1.25
#: ... at most this many per side (beyond, the minor width is raised; with 8 per side that blur moved
#: 0.5 % of the flux of a fold arc, with 32 0.09 %)
_MAX_TAPS_PER_SIDE = 32
#: taps reach +-_TAP_REACH standard deviations of the major-axis Gaussian, spaced <= _TAP_SPACING minor sigmas
_TAP_REACH = 2.5
_TAP_SPACING = 2.0
#: spectrum level (relative to the total) beyond _SMOOTH_FREQ cycles per template pixel for band_limited
_SMOOTH_LEVEL = 5e-2
_SMOOTH_FREQ = 0.4
#: smallest rms radius (template pixels) of the light for this path
_MIN_RMS_PIXELS = 3.0


def is_band_limited(template: np.ndarray) -> bool:
    """True for templates this path is built for: light resolved over many pixels (rms radius >= 3
    pixels, brightest pixel <= 10 % of the total) and a spectrum beyond 0.4 cycles/pixel below 5 % of
    the total (DC)."""
    t = np.asarray(template, dtype=np.float64)
    total = t.sum()
    if not total > 0 or np.abs(t).max() > 0.1 * total:
        return False
    yy, xx = np.indices(t.shape, dtype=np.float64)
    mx, my = (t * xx).sum() / total, (t * yy).sum() / total
    rms2 = (t * ((xx - mx) ** 2 + (yy - my) ** 2)).sum() / total
    if not rms2 >= _MIN_RMS_PIXELS**2:
        return False
    spec = np.abs(np.fft.rfft2(np.asarray(template, dtype=np.float64)))
    dc = spec[0, 0]
    if not dc > 0:
        return False
    fy = np.fft.fftfreq(template.shape[0])[:, None]
    fx = np.fft.rfftfreq(template.shape[1])[None, :]
    high = fx * fx + fy * fy >= _SMOOTH_FREQ**2
    return bool(spec[high].max(initial=0.0) <= _SMOOTH_LEVEL * dc)


def _level_position(variance: np.ndarray) -> np.ndarray:
    """Fractional level index for a wanted Gaussian variance (template pixels^2), clipped to the levels."""
    return np.interp(variance, _LEVEL_VARIANCES, np.arange(len(LEVEL_SIGMAS), dtype=np.float64))


def _cell_steps(col: np.ndarray, row: np.ndarray, flat: np.ndarray):
    """Template-pixel displacement per cell step along x, (d col, d row), and along y, at the flat grid
    indices ``flat`` of the ray grids ``col``, ``row`` (template pixels): central differences of the grid
    (one-sided on its edges), float32."""
    out = []
    for grid in (col, row):
        g = grid.astype(np.float32, copy=False)
        gx = np.empty_like(g)
        np.subtract(g[:, 2:], g[:, :-2], out=gx[:, 1:-1])
        gx[:, 1:-1] *= 0.5
        np.subtract(g[:, 1], g[:, 0], out=gx[:, 0])
        np.subtract(g[:, -1], g[:, -2], out=gx[:, -1])
        gy = np.empty_like(g)
        np.subtract(g[2:], g[:-2], out=gy[1:-1])
        gy[1:-1] *= 0.5
        np.subtract(g[1], g[0], out=gy[0])
        np.subtract(g[-1], g[-2], out=gy[-1])
        out.append((gx.reshape(-1)[flat], gy.reshape(-1)[flat]))
    (a_c, b_c), (a_r, b_r) = out
    return a_c, a_r, b_c, b_r


def _deblur(w: np.ndarray, coeff: float) -> None:
    """w -= coeff x (5-point Laplacian of w), edges replicated (in place; the sum is unchanged)."""
    lap = -4.0 * w
    lap[1:] += w[:-1]
    lap[:-1] += w[1:]
    lap[0] += w[0]
    lap[-1] += w[-1]
    lap[:, 1:] += w[:, :-1]
    lap[:, :-1] += w[:, 1:]
    lap[:, 0] += w[:, 0]
    lap[:, -1] += w[:, -1]
    lap *= coeff
    w -= lap


def band_limited_grid_flux(
    lens, source, x1: np.ndarray, y1: np.ndarray, h: float, skip: np.ndarray | None = None
) -> np.ndarray:
    """Lensed flux (nanomaggies) of the square cells of side h (arcsec) centred on the grid x1 x y1.

    Same contract as dhs.core.render.lensed_grid_flux (x1 columns, y1 rows, arcsec from the lens centre;
    cells where the (rows, cols) mask ``skip`` is True hold 0) for a band-limited InterpolatedSource.
    """
    from .lens import ray_shoot_grid

    dtype = np.float32 if (x1.dtype == np.float32 and y1.dtype == np.float32) else np.float64
    shape = (y1.size, x1.size)
    if lens.theta_e > 0 or lens.gamma1 != 0 or lens.gamma2 != 0:
        bx, by = ray_shoot_grid(lens, x1, y1)
    else:
        bx = np.broadcast_to(x1[None, :], shape)
        by = np.broadcast_to(y1[:, None], shape)
    w = np.zeros(shape, dtype=dtype)
    if source.flux == 0.0:
        return w
    levels = source.band_limited_levels(0)
    pix = source.pixel_size
    cs = math.cos(source.angle) / pix
    sn = math.sin(source.angle) / pix
    ny_t, nx_t = levels.shape[1:]
    # template pixel coordinates of every ray (in the padded levels, whose centre is at (n - 1) / 2)
    dx = np.subtract(bx, source.x, dtype=dtype)
    dy = np.subtract(by, source.y, dtype=dtype)
    col = dx * cs + dy * sn + 0.5 * (nx_t - 1)
    row = dy * cs - dx * sn + 0.5 * (ny_t - 1)
    inside = (col >= 0.0) & (col < nx_t - 1.0) & (row >= 0.0) & (row < ny_t - 1.0)
    if skip is not None:
        inside &= ~skip
    flat = np.flatnonzero(inside)
    if flat.size == 0:
        return w
    # the footprint's Gaussian in template pixels: covariance (FILTER_WIDTH)^2 (a a^T + b b^T), where a and b
    # are the template-pixel displacements of one cell step along x and along y (float32: template pixels)
    a_c, a_r, b_c, b_r = _cell_steps(col, row, flat)
    c0 = col.reshape(-1)[flat].astype(np.float32, copy=False)
    r0 = row.reshape(-1)[flat].astype(np.float32, copy=False)
    k2 = np.float32(FILTER_WIDTH**2)
    cxx = a_c * a_c
    cxx += b_c * b_c
    cxx *= k2
    cyy = a_r * a_r
    cyy += b_r * b_r
    cyy *= k2
    cxy = a_c * a_r
    cxy += b_c * b_r
    cxy *= k2
    half_tr = cxx + cyy
    half_tr *= 0.5
    disc = cxx - cyy
    disc *= 0.5
    disc *= disc
    disc += cxy * cxy
    np.sqrt(disc, out=disc)
    major = half_tr + disc
    minor = np.subtract(half_tr, disc, out=half_tr)
    np.maximum(minor, 0.0, out=minor)
    # rays whose filter cannot reach the light (beyond the template's light radius + 3.5 major sigmas)
    reach = np.sqrt(major)
    reach *= 3.5
    reach += source.light_radius_pixels() + 1.0
    dc = c0 - np.float32(0.5 * (nx_t - 1))
    dr = r0 - np.float32(0.5 * (ny_t - 1))
    dc *= dc
    dr *= dr
    dc += dr
    reach *= reach
    near = np.flatnonzero(dc <= reach)
    if near.size < flat.size:
        flat, c0, r0 = flat[near], c0[near], r0[near]
        cxx, cyy, cxy, major, minor = cxx[near], cyy[near], cxy[near], major[near], minor[near]
        if flat.size == 0:
            return w
    top = int(min(np.ceil(_level_position(major.max(initial=0.0))), len(LEVEL_SIGMAS) - 1))
    quads = _level_quads(source, max(top, 1))
    values = np.empty(flat.size, dtype=np.float64)
    elongated = major > (_TAP_RATIO**2) * minor
    iso = np.flatnonzero(~elongated)
    if iso.size:
        # (nearly round footprints: the isotropic filter of the same area)
        var = np.sqrt(major[iso] * minor[iso])
        values[iso] = _sample(quads, c0[iso], r0[iso], var)
    tap = np.flatnonzero(elongated)
    if tap.size:
        maj, mnr = major[tap], minor[tap]
        base = np.maximum(mnr, maj / (_TAP_SPACING * _MAX_TAPS_PER_SIDE / _TAP_REACH) ** 2)
        resid = np.maximum(maj - base, 0.0)
        per_side = np.minimum(
            np.ceil(_TAP_REACH / _TAP_SPACING * np.sqrt(resid / base)), _MAX_TAPS_PER_SIDE
        ).astype(np.intp)
        # major-axis direction (unit vector in template pixels)
        ux = cxy[tap]
        uy = maj - cxx[tap]
        swap = np.abs(ux) + np.abs(uy) < 1e-30
        ux = np.where(swap, 1.0, ux)
        uy = np.where(swap, 0.0, uy)
        norm = 1.0 / np.hypot(ux, uy)
        ux *= norm
        uy *= norm
        sd = np.sqrt(resid)
        for m in np.unique(per_side):
            sel = np.flatnonzero(per_side == m)
            j = np.arange(-m, m + 1, dtype=np.float64) / max(int(m), 1)  # in units of the reach
            wts = np.exp(-0.5 * (_TAP_REACH * j) ** 2)
            wts /= wts.sum()
            step = (_TAP_REACH * sd[sel])[:, None] * j[None, :]  # (k, 2m+1) offsets, template pixels
            vals = _sample(quads, c0[tap[sel]], r0[tap[sel]], base[sel],
                           ux[sel, None] * step, uy[sel, None] * step)
            values[tap[sel]] = vals.astype(np.float64) @ wts
    values *= source.flux * (h / pix) ** 2
    # the de-blur step on the window of lit cells plus a margin of one (zeros replicate as zeros)
    rows, cols = np.divmod(flat, shape[1])
    r_lo, r_hi = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, shape[0])
    c_lo, c_hi = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, shape[1])
    win = np.zeros((r_hi - r_lo, c_hi - c_lo), dtype=np.float64)
    win[rows - r_lo, cols - c_lo] = values
    _deblur(win, 0.5 * (FILTER_WIDTH**2 - 1.0 / 12.0))
    w[r_lo:r_hi, c_lo:c_hi] = win
    if skip is not None:
        w[skip] = 0.0
    return w.astype(dtype, copy=False)


def _level_quads(source, top: int) -> np.ndarray:
    """(top + 1, H - 1, W - 1) complex128 array whose every element holds, as four float32, the corners
    (r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1) of a template cell in levels 0..``top`` of
    source.band_limited_levels: one gather fetches a bilinear interpolation's four values.  Built per call,
    not cached on the source (16 bytes per pixel and level: a batch's sources would hold ~2 MB each)."""
    levels = source.band_limited_levels(top)[: top + 1]
    n, height, width = levels.shape
    q = np.empty((n, height - 1, width - 1, 4), dtype=np.float32)
    q[..., 0] = levels[:, :-1, :-1]
    q[..., 1] = levels[:, :-1, 1:]
    q[..., 2] = levels[:, 1:, :-1]
    q[..., 3] = levels[:, 1:, 1:]
    return q.view(np.complex128)[..., 0]


def _sample(quads: np.ndarray, col: np.ndarray, row: np.ndarray, variance: np.ndarray,
            dcol: np.ndarray | None = None, drow: np.ndarray | None = None) -> np.ndarray:
    """The template smoothed by a Gaussian of ``variance`` (template pixels^2) at (col, row) of the padded
    levels (quads: _level_quads), blending the two nearest levels linearly in variance; 0 off the levels.

    With ``dcol``/``drow`` ((k, T) offsets, template pixels), returns (k, T) samples at (col + dcol,
    row + drow), every tap of a row at that row's variance; else (k,) samples.  float32.
    """
    n_lev, height, width = quads.shape
    t = _level_position(variance)
    k = np.minimum(t.astype(np.intp), n_lev - 2)
    frac = (t - k).astype(np.float32)
    level_base = k * (height * width)
    if dcol is None:
        cc = col.astype(np.float32)[:, None]
        rr = row.astype(np.float32)[:, None]
    else:
        cc = dcol.astype(np.float32)
        cc += col.astype(np.float32)[:, None]
        rr = drow.astype(np.float32)
        rr += row.astype(np.float32)[:, None]
    ok = (cc >= 0.0) & (cc < width) & (rr >= 0.0) & (rr < height)
    all_ok = bool(ok.all())
    if not all_ok:
        cc = np.where(ok, cc, 0.0).astype(np.float32)
        rr = np.where(ok, rr, 0.0).astype(np.float32)
    c0 = cc.astype(np.int32)  # (non-negative: truncation is the floor)
    r0 = rr.astype(np.int32)
    fx = cc - c0
    fy = rr - r0
    base = r0.astype(np.intp)
    base *= width
    base += c0
    base += level_base[:, None]
    flat = quads.reshape(-1)
    lo = flat[base].view(np.float32).reshape(base.shape + (4,))
    hi = flat[base + height * width].view(np.float32).reshape(base.shape + (4,))
    hi -= lo
    hi *= frac[:, None, None]
    lo += hi  # the corners blended between the two levels
    top = lo[..., 1] - lo[..., 0]
    top *= fx
    top += lo[..., 0]
    bottom = lo[..., 3] - lo[..., 2]
    bottom *= fx
    bottom += lo[..., 2]
    bottom -= top
    bottom *= fy
    bottom += top
    if not all_ok:
        bottom[~ok] = 0.0
    return bottom if dcol is not None else bottom[:, 0]
