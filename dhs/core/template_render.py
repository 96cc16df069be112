"""Lensed cell fluxes of smooth interpolated templates, filtered per ray at the PSF's band limit.

The renderer needs, on its image-plane grid of cells of side h, the cell fluxes W = h^2 x (lensed surface
brightness (x) cell box) sampled at the cell centres; the PSF then removes everything above ~1/FWHM.  The
only error that matters is therefore aliasing: source structure at the cell grid's frequencies (k / h in the
image plane) folding onto the low frequencies the PSF passes.  Here every ray samples the template smoothed
by a Gaussian that is *isotropic in the image plane*, of sigma ``FILTER_WIDTH`` x h (transfer 0.007 at 1/h,
against ~0 at the cell box's own zeros and 0.09 for sigma 0.35 h), mapped to the source plane through the
local lens Jacobian J: an anisotropic Gaussian of covariance (FILTER_WIDTH h)^2 J J^T, centred where the
mapped image-plane Gaussian has its mean (the ray moved by (FILTER_WIDTH h)^2 / 2 x the Laplacian of the lens
mapping: near the SIE centre, where it is ~theta_E / r^2, unshifted means of demagnified cells are 2-3 %
low; tests/core/test_template_centre.py).  It is made of an
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

Cells within four cells of the lens centre are each the sum of 6 x 6 point samples of the unfiltered template
(as the 16x-per-pixel brute force): there the SIE deflection is singular and a cell's source-plane image is
a curved arc of the pseudo-caustic, which neither a Gaussian footprint nor straight taps describe (without
it, a raw COSMOS cut-out in 0.8" seeing is 1.16 % of the peak off next to the lens centre; with it 0.5 %:
tests/core/test_render.py).  Elsewhere levels reach a Gaussian sigma of 4 template pixels: footprints wider
than that (demagnified rays) are under-filtered, in a region of little lensed light.  Sampling the levels: dhs.core.level_sampling.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .level_sampling import LevelQuads, sample_levels

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
#: ... and never closer than 0.5 template pixels (a minor variance below this, in template pixels^2, counts as
#: this for the spacing): the sampled surface is bilinear, smooth below its pixel, so finer taps change
#: nothing (0.04 % of the peak) and cost up to 65 per ray next to critical curves
_MIN_TAP_SPACING_VARIANCE = 0.0625
#: tap counts per side are rounded up to one of these (more taps, closer together: the same Gaussian
#: sampled more finely), so the elongated rays of a stamp form a few groups of equal tap counts
_TAP_CLASSES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
#: cells within this many of the lens centre (where the SIE deflection is singular: a cell's image there is
#: an arc of the pseudo-caustic, not a footprint) ...
_CENTRE_CELLS = 4
#: ... are each integrated as this many point-sampled sub-cells per axis (no footprint filter: the image of
#: a sub-cell next to the singular point is a curved arc, which straight taps would sample off the arc)
_CENTRE_SPLIT = 6
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
    # (the rms radius from the two marginal profiles)
    rms2 = 0.0
    for profile in (t.sum(axis=0), t.sum(axis=1)):
        x = np.arange(profile.size, dtype=np.float64)
        mean = (profile * x).sum() / total
        rms2 += (profile * (x - mean) ** 2).sum() / total
    if not rms2 >= _MIN_RMS_PIXELS**2:
        return False
    spec = np.abs(np.fft.rfft2(t))
    dc = spec[0, 0]
    if not dc > 0:
        return False
    return bool(spec[_high_frequencies(t.shape)].max(initial=0.0) <= _SMOOTH_LEVEL * dc)


@functools.lru_cache(maxsize=32)
def _high_frequencies(shape: tuple[int, int]) -> np.ndarray:
    """Mask of the real-FFT frequencies of a ``shape`` image at or beyond _SMOOTH_FREQ cycles/pixel."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    mask = fx * fx + fy * fy >= _SMOOTH_FREQ**2
    mask.setflags(write=False)
    return mask


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
    The cells next to the lens centre, where the SIE deflection is singular and a cell's image is an arc of
    the pseudo-caustic rather than a footprint, are each the sum of _CENTRE_SPLIT^2 point samples.
    """
    from .lens import ray_shoot_grid

    dtype = np.float32 if (x1.dtype == np.float32 and y1.dtype == np.float32) else np.float64
    shape = (y1.size, x1.size)
    w = np.zeros(shape, dtype=dtype)
    if source.flux == 0.0:
        return w
    if lens.theta_e > 0 or lens.gamma1 != 0 or lens.gamma2 != 0:
        bx, by = ray_shoot_grid(lens, x1, y1)
    else:
        bx = np.broadcast_to(x1[None, :], shape)
        by = np.broadcast_to(y1[:, None], shape)
    quads = LevelQuads(source)
    block = _centre_block(x1, y1, h, skip) if lens.theta_e > 0 else None
    main_skip = skip
    if block is not None:
        # (the block's cells, and with them the widest footprints, are left to _point_sampled_cells)
        (r_lo, c_lo), xs, ys = block
        n = _CENTRE_SPLIT
        main_skip = np.zeros(shape, dtype=bool) if skip is None else skip.copy()
        main_skip[r_lo : r_lo + ys.size // n, c_lo : c_lo + xs.size // n] = True
    rays = _footprints(source, bx, by, main_skip)
    scale = source.flux * (h / source.pixel_size) ** 2
    if rays is None:
        flat, values = np.zeros(0, dtype=np.intp), np.zeros(0)
    else:
        near, values = _filtered_values(*rays[1:], quads)
        flat, values = rays[0][near], values * scale
    rows, cols = np.divmod(flat, shape[1])
    if block is not None:
        cells = _point_sampled_cells(lens, source, xs, ys, quads) * (scale / n**2)
        rows = np.concatenate([rows, [r_lo - 1, r_lo + cells.shape[0]]])
        cols = np.concatenate([cols, [c_lo - 1, c_lo + cells.shape[1]]])
    if rows.size == 0:
        return w
    # the de-blur step on the window of lit cells plus a margin of one (zeros replicate as zeros)
    r_lo_w, r_hi_w = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, shape[0])
    c_lo_w, c_hi_w = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, shape[1])
    win = np.zeros((r_hi_w - r_lo_w, c_hi_w - c_lo_w), dtype=np.float64)
    win[rows[: flat.size] - r_lo_w, cols[: flat.size] - c_lo_w] = values
    if block is not None:
        # the refined cells are box integrals already: they enter the neighbours' de-blur and keep their sums
        inner = win[r_lo - r_lo_w : r_lo - r_lo_w + cells.shape[0], c_lo - c_lo_w : c_lo - c_lo_w + cells.shape[1]]
        inner[...] = cells
    _deblur(win, 0.5 * (FILTER_WIDTH**2 - 1.0 / 12.0))
    if block is not None:
        inner[...] = cells
    w[r_lo_w:r_hi_w, c_lo_w:c_hi_w] = win
    if skip is not None:
        w[skip] = 0.0
    return w.astype(dtype, copy=False)


def _centre_block(x1: np.ndarray, y1: np.ndarray, h: float, skip):
    """((row, col) of its first cell, sub-cell x, sub-cell y) of the block of cells within _CENTRE_CELLS of
    the lens centre, split _CENTRE_SPLIT times per axis (arcsec from the lens centre); None when the lens
    centre is off the grid or ``skip`` holds any of the block's cells (the filtered pass then covers them)."""
    ic, ir = int(np.abs(x1).argmin()), int(np.abs(y1).argmin())
    if abs(float(x1[ic])) > 0.5 * h or abs(float(y1[ir])) > 0.5 * h:
        return None
    c_lo, c_hi = max(ic - _CENTRE_CELLS, 0), min(ic + _CENTRE_CELLS + 1, x1.size)
    r_lo, r_hi = max(ir - _CENTRE_CELLS, 0), min(ir + _CENTRE_CELLS + 1, y1.size)
    if skip is not None and skip[r_lo:r_hi, c_lo:c_hi].any():
        return None
    n = _CENTRE_SPLIT
    sub = (np.arange(n, dtype=np.float64) - 0.5 * (n - 1)) * (h / n)
    xs = (np.asarray(x1[c_lo:c_hi], dtype=np.float64)[:, None] + sub[None, :]).reshape(-1)
    ys = (np.asarray(y1[r_lo:r_hi], dtype=np.float64)[:, None] + sub[None, :]).reshape(-1)
    return (r_lo, c_lo), xs.astype(x1.dtype), ys.astype(y1.dtype)


def _point_sampled_cells(lens, source, xs: np.ndarray, ys: np.ndarray, quads: LevelQuads) -> np.ndarray:
    """Sums over each _CENTRE_SPLIT x _CENTRE_SPLIT block of sub-cells (centres xs, ys: arcsec from the lens
    centre) of the unfiltered template (unit sum, bilinear) at their rays, in template-pixel units."""
    from .lens import ray_shoot_grid

    n = _CENTRE_SPLIT
    rays = _footprints(source, *ray_shoot_grid(lens, xs, ys), None, steps=False)
    fine = np.zeros((ys.size, xs.size), dtype=np.float64)
    if rays is not None:
        flat, c0, r0 = rays
        zero = np.zeros(flat.size, dtype=np.intp)
        fine.reshape(-1)[flat] = sample_levels(quads.filled(1, zero[:1]), c0, r0, zero, zero.astype(np.float32))
    return fine.reshape(ys.size // n, n, xs.size // n, n).sum(axis=(1, 3))


def _footprints(source, bx: np.ndarray, by: np.ndarray, skip, steps: bool = True):
    """(flat indices, col, row, a_c, a_r, b_c, b_r) of the rays of a regular grid (source-plane positions
    bx, by, arcsec; (rows, cols)) that land on the template: their template-pixel positions in the padded
    levels and (with ``steps``) the template-pixel displacements a, b of one cell step along x and along y
    (float32), or None."""
    dtype = bx.dtype
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
        return None
    c0 = col.reshape(-1)[flat].astype(np.float32, copy=False)
    r0 = row.reshape(-1)[flat].astype(np.float32, copy=False)
    if not steps:
        return flat, c0, r0
    # the mean of a footprint is off its ray where the lens mapping bends: E[beta(theta + d)] = beta +
    # sigma^2 / 2 x laplacian(beta) for the image-plane Gaussian d of sigma FILTER_WIDTH cells (second order;
    # near the SIE centre the laplacian ~ theta_E / r^2 moves the filtered means of demagnified cells 2-3 %)
    lap_c, lap_r = _cell_laplacians(col, row, flat)
    c0 = c0 + np.float32(0.5 * FILTER_WIDTH**2) * lap_c
    r0 = r0 + np.float32(0.5 * FILTER_WIDTH**2) * lap_r
    return (flat, c0, r0) + _cell_steps(col, row, flat)


def _cell_laplacians(col: np.ndarray, row: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Five-point Laplacians (template pixels per cell step^2, float32) of the ray grids ``col`` and ``row``
    at the flat grid indices ``flat``; 0 on the grid's edges."""
    height, width = col.shape
    r, c = np.divmod(flat, width)
    interior = (r > 0) & (r < height - 1) & (c > 0) & (c < width - 1)
    if height < 3 or width < 3:
        zero = np.zeros(flat.size, dtype=np.float32)
        return zero, zero
    f = np.where(interior, flat, width + 1)
    out = []
    for grid in (col, row):
        g = grid.reshape(-1)
        lap = (g[f + 1] + g[f - 1] + g[f + width] + g[f - width] - 4.0 * g[f]).astype(np.float32)
        lap[~interior] = 0.0
        out.append(lap)
    return out[0], out[1]


def _filtered_values(c0, r0, a_c, a_r, b_c, b_r, quads: LevelQuads):
    """(indices of the rays whose filter reaches the light, their values): the template (unit sum) smoothed
    by each ray's footprint Gaussian, covariance (FILTER_WIDTH)^2 (a a^T + b b^T) in template pixels, at
    (c0, r0) (template pixels of the padded levels), float64."""
    source = quads.source
    ny_t, nx_t = source.band_limited_levels(0).shape[1:]
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
    if near.size < c0.size:
        c0, r0 = c0[near], r0[near]
        cxx, cyy, cxy, major, minor = cxx[near], cyy[near], cxy[near], major[near], minor[near]
        if near.size == 0:
            return near, np.zeros(0)
    elongated = major > (_TAP_RATIO**2) * minor
    tap = np.flatnonzero(elongated)
    # the variance each ray samples at: the isotropic filter of the footprint's area for nearly round
    # footprints, the tap path's base (minor) width for elongated ones
    variance = np.sqrt(major * minor)
    if tap.size:
        maj, mnr = major[tap], minor[tap]
        base = np.maximum(mnr, maj / (_TAP_SPACING * _MAX_TAPS_PER_SIDE / _TAP_REACH) ** 2)
        variance[tap] = base
    position = _level_position(variance)
    top = int(min(max(math.ceil(float(position.max())), 1), len(LEVEL_SIGMAS) - 1))
    lower = np.minimum(position.astype(np.intp), top - 1)
    quads = quads.filled(top, np.flatnonzero(np.bincount(lower, minlength=top)))
    frac = (position - lower).astype(np.float32)
    values = np.empty(c0.size, dtype=np.float64)
    iso = np.flatnonzero(~elongated)
    if iso.size:
        # (nearly round footprints: the isotropic filter of the same area)
        values[iso] = sample_levels(quads, c0[iso], r0[iso], lower[iso], frac[iso])
    if tap.size:
        resid = np.maximum(maj - base, 0.0)
        spacing_var = np.maximum(base, np.float32(_MIN_TAP_SPACING_VARIANCE))
        # tap class of every ray (index into _TAP_CLASSES), rays then ordered by class: one slice per class
        wanted = np.ceil(_TAP_REACH / _TAP_SPACING * np.sqrt(resid / spacing_var))
        cls = np.searchsorted(_TAP_CLASSES, np.minimum(wanted, _MAX_TAPS_PER_SIDE)).astype(np.int8)
        order = np.argsort(cls, kind="stable")  # (a radix sort for int8)
        ends = np.cumsum(np.bincount(cls, minlength=len(_TAP_CLASSES)))
        tap = tap[order]
        # major-axis direction (unit vector in template pixels)
        ux = cxy[tap]
        uy = maj[order] - cxx[tap]
        swap = np.abs(ux) + np.abs(uy) < 1e-30
        ux = np.where(swap, 1.0, ux)
        uy = np.where(swap, 0.0, uy)
        norm = 1.0 / np.hypot(ux, uy)
        ux *= norm
        uy *= norm
        # the major-axis step from the centre to the outermost tap (template pixels, float32)
        reach_c = np.sqrt(resid[order])
        reach_c *= _TAP_REACH
        reach_r = reach_c * uy
        reach_c *= ux
        lower_t, frac_t, c0_t, r0_t = lower[tap], frac[tap], c0[tap], r0[tap]
        start = 0
        for m, end in zip(_TAP_CLASSES, ends):
            if end == start:
                continue
            sel = slice(start, int(end))
            start = int(end)
            j, wts = _tap_offsets(m)
            cc = np.multiply.outer(reach_c[sel], j)  # (k, 2m+1) tap positions, template pixels
            cc += c0_t[sel, None]
            rr = np.multiply.outer(reach_r[sel], j)
            rr += r0_t[sel, None]
            vals = sample_levels(quads, cc, rr, lower_t[sel], frac_t[sel])
            values[tap[sel]] = np.einsum("ij,j->i", vals, wts)  # (no BLAS: exact FP flags)
    return near, values


@functools.cache
def _tap_offsets(m: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets in units of the reach, Gaussian weights summing to 1) of 2m + 1 taps, float32 (read-only)."""
    j = np.arange(-m, m + 1, dtype=np.float64) / m
    wts = np.exp(-0.5 * (_TAP_REACH * j) ** 2)
    wts /= wts.sum()
    j, wts = j.astype(np.float32), wts.astype(np.float32)
    j.setflags(write=False)
    wts.setflags(write=False)
    return j, wts
