"""Stamp renderer: ray shooting on a supersampled grid, source evaluation, PSF (x) pixel convolution.

Pipeline for a (size x size) stamp with pixel p and supersampling s (sub-pixel h = p / s):

1. Sub-pixel cells covering the stamp, aligned so that the lens centre (row = size//2 + offset_pix[1],
   col = size//2 + offset_pix[0]) is a cell centre, are ray-shot to the source plane (SIE + shear).
2. The source surface brightness is evaluated at the cell centres and turned into cell means with a
   second-order (Laplacian) correction (interpolated templates, pre-filtered by the cell size, give cell
   means directly); cells where that is not accurate enough (compact sources,
   Sersic cusps, cells stretched by the lens near its centre) are integrated adaptively with nested
   2x2 Gauss-Legendre cells; at the finest level, the cells at a Sersic centre (singular for n != 0.5)
   are integrated exactly in polar coordinates about it (SersicSource.integrate_centre_cells).
   W = mean x h^2 is the lensed flux of each cell.  Refined cells also report the first and second
   moments of their light about the cell centre; where those differ from what the cell grid implies
   (light concentrated below the cell size: cusps, compact sources), the difference is carried by
   zero-flux patterns on the neighbouring cells (_add_subcell_moments), so sub-cell positions survive.
3. The image is (source (x) PSF (x) pixel) sampled at pixel centres (dhs.core.transfer: FFT of W, analytic
   Moffat (x) pixel transfer with the cell box divided out, exact decimation, no wrap-around).  Light is
   followed only inside the stamp (as in lenstronomy); the total lensed flux regardless of the stamp is
   dhs.core.magnification.

Sersic sources are rendered by dhs.core.batch (the same algorithm over many stamps at once; a single
stamp is a batch of one).
The float32 hot path uses Python-float scalars throughout; outputs are float64 (nanomaggies/pixel).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from .lens import LensBatch, SIELens, max_sie_deflection, ray_shoot_grid
from .psf import check_moffat
from .scratch import scratch_array
from .sources import SersicSource
from .transfer import psf_images

__all__ = [
    "DEFAULT_SUPERSAMPLE",
    "lensed_grid_flux",
    "render_arc",
    "render_lensed_bands",
    "subpixel_axes",
    "unit_lensed_subpixel_flux",
]

#: Default sub-pixel factor per axis: the smallest that tests/core/test_convergence.py finds converged
#: (<= 0.5 % flux and <= 0.15 % of the peak change against 2x more).
DEFAULT_SUPERSAMPLE = 3
def _check_grid(size: int, supersample: int, pixscale: float, offset_pix: Sequence[float]):
    if int(size) != size or size < 2:
        raise ValueError(f"size must be an integer >= 2 pixels, got {size!r}")
    if int(supersample) != supersample or supersample < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample!r}")
    if not (math.isfinite(pixscale) and pixscale > 0):
        raise ValueError(f"pixscale must be > 0 arcsec, got {pixscale!r}")
    if len(offset_pix) != 2 or not all(math.isfinite(float(o)) for o in offset_pix):
        raise ValueError(
            f"offset_pix must be two finite numbers (dx along columns, dy along rows), got {offset_pix!r}"
        )


def subpixel_axes(
    size: int, supersample: int, pixscale: float, offset_pix: Sequence[float], dtype=np.float32
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Sub-pixel cells covering the stamp, aligned on the lens centre.

    The sub-pixel grid is shifted by less than half a sub-pixel so that the lens centre falls exactly on
    a sub-pixel centre (an impulse at the lens centre is then represented without any offset); one extra
    cell on each side, weighted by the fraction of it inside the stamp, makes the cells cover exactly the
    stamp area.  Returns (x, y, wx, wy, shift): cell centres along columns and rows in arcsec from the
    lens centre (size*supersample + 2 each), their coverage weights, and the shift (dx, dy) in pixels,
    undone exactly by the Fourier-space resampling.
    """
    s = int(supersample)
    m = size * s
    j = np.arange(-1, m + 1, dtype=np.float64)
    frac = (j + 0.5) / s - 0.5  # standard sub-pixel centres in pixel units, plus one cell each side
    axes, weights, shifts = [], [], []
    for c in (size // 2 + float(offset_pix[0]), size // 2 + float(offset_pix[1])):
        k = math.floor((c + 0.5) * s)  # index of the standard sub-pixel containing the lens centre
        delta = c - ((k + 0.5) / s - 0.5)  # in [-1/(2s), 1/(2s))
        axes.append(((frac + delta - c) * pixscale).astype(dtype))
        w = np.ones(m + 2, dtype=np.float64)
        w[0] = max(0.0, delta * s)
        w[1] = 1.0 - max(0.0, -delta * s)
        w[-2] = 1.0 - max(0.0, delta * s)
        w[-1] = max(0.0, -delta * s)
        weights.append(w.astype(dtype))
        shifts.append(delta)
    return axes[0], axes[1], weights[0], weights[1], (shifts[0], shifts[1])


#: Maximum number of 2x2 refinement levels below a base grid of the default sub-pixel size
#: (0.262 / DEFAULT_SUPERSAMPLE arcsec): cells down to 1/64 of it, 1.4 milliarcsec.
MAX_REFINE_LEVELS = 6
_DEFAULT_CELL_ARCSEC = 0.262 / DEFAULT_SUPERSAMPLE


def refine_levels(h: float, source=None) -> int:
    """Refinement levels allowed below cells of side h (arcsec).

    MAX_REFINE_LEVELS for cells up to the default sub-pixel size; coarser cells get more levels, so that
    the finest cell is never larger than with the default supersampling (2.7 milliarcsec); and point-like
    sources (``source.min_scale`` below twice that) get more, so that the finest cell stays below half of
    their scale.
    """
    levels = MAX_REFINE_LEVELS + max(0, math.ceil(math.log2(h / _DEFAULT_CELL_ARCSEC) - 1e-9))
    scale = getattr(source, "min_scale", None)
    if scale:
        finest = h / 2 ** (levels - 1)
        levels += max(0, math.ceil(math.log2(finest / (0.5 * scale)) - 1e-9))
    return levels


#: Refinement thresholds on the estimated relative midpoint error h^2/24 |d2 S| / S of one cell.  The base
#: grid carries a Laplacian correction (its own error ~0.3 x the square of that estimate), refined cells
#: use 2x2 Gauss-Legendre (~0.13 x the square): <= 1.2 % on the few cells at the thresholds, and well
#: below 0.1 % of the total flux in the tests (tests/core/test_convergence.py, test_render.py).
BASE_TOL = 0.2
GL_TOL = 0.3


def _shoot(lens, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(lens, LensBatch):
        return lens.ray_shoot(x, y)
    if lens.theta_e > 0 or lens.gamma1 != 0 or lens.gamma2 != 0:
        return lens.ray_shoot(x, y)
    return x, y


def _core_radius(h: float, level: int, max_levels: int) -> float:
    """Softening radius for cusps: a quarter of the finest cell reachable from cells of side h at ``level``."""
    return 0.25 * h / 2 ** (max_levels - level)


#: refinement steps below the base grid that carry the sub-cell moments of light (see refined_cell_means):
#: three reach the finest Sersic cells, so a point-like source off the cell centres keeps its position to
#: 0.0003 pixel (one step, with the sub-cells' light taken as smooth: 0.02 pixel).  Sources whose light is
#: smooth below the refined cells (``smooth_below_refinement``: templates) carry them one step
_MOMENT_DEPTH = 3
#: Gauss-Legendre 2-point offset in units of the cell side
_GL_UNIT = 1.0 / (2.0 * math.sqrt(3.0))


def refined_cell_means(
    lens: SIELens,
    source,
    x: np.ndarray,
    y: np.ndarray,
    h: float,
    level: int = 1,
    max_levels: int | None = None,
    moments: int = 0,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean surface brightness over square image-plane cells of side ``h`` centred on (x, y).

    Each cell is integrated with the 2x2 Gauss-Legendre rule (exact for bicubic variations).  Cells the
    source still flags as under-resolved for that rule (judged on the size of the cell's image in the
    source plane) are split 4x4 (two levels at once; 2x2 for the last level) and treated the same way,
    down to ``max_levels`` (default MAX_REFINE_LEVELS) halvings of the cell side: adaptive supersampling
    for compact sources, Sersic cusps and strongly stretched regions of the lens map.

    With ``moments`` > 0, also returns each cell's first and second moments of the light about its centre,
    from its 2x2 points or its k x k sub-cells: a (5, n) array (Mx, My, Qxx, Qyy, Qxy) with
    M = integral of (offset / h) S / h^2 and Q = integral of (offset / h)^2 S / h^2 (a uniform cell has
    M = 0 and Qxx = Qyy = mean / 12).  ``moments`` is the number of refinement steps that carry them;
    below that, sub-cells count as smooth (first moments from their neighbours' differences, exact for
    a linear gradient; _smooth_moments).
    """
    if max_levels is None:
        max_levels = MAX_REFINE_LEVELS
    g = h * _GL_UNIT
    n = x.size
    xs = np.empty((n, 4), dtype=x.dtype)
    ys = np.empty((n, 4), dtype=x.dtype)
    xs[:, 0::2] = (x - g)[:, None]
    xs[:, 1::2] = (x + g)[:, None]
    ys[:, :2] = (y - g)[:, None]
    ys[:, 2:] = (y + g)[:, None]
    bx, by = _shoot(lens, xs, ys)
    if level >= max_levels:
        sb = source.surface_brightness(bx, by, core_radius=_core_radius(h, level, max_levels))
        means = sb.sum(axis=1)
        means *= 0.25
        exact = getattr(source, "integrate_centre_cells", None)
        if exact is None:
            return (means, _gl_moments(sb, means)) if moments else means
        if not moments:
            exact(bx, by, h, means)
            return means
        gl_means = means.copy()
        exact(bx, by, h, means)
        mom = _gl_moments(sb, means)
        # cells integrated exactly (a Sersic centre): their 2x2 points do not sample the light's moments;
        # take the light as uniform there (a position error below half the finest cell, ~1 milliarcsec)
        changed = np.flatnonzero(means != gl_means)
        mom[:2, changed] = 0.0
        mom[2, changed] = mom[3, changed] = means[changed] / 12.0
        mom[4, changed] = 0.0
        return means, mom
    # side of each cell's image in the source plane (longest edge of the mapped square)
    # (squared lengths: np.hypot is ~10x slower than multiplications here)
    dx1 = bx[:, 1] - bx[:, 0]
    dy1 = by[:, 1] - by[:, 0]
    dx2 = bx[:, 2] - bx[:, 0]
    dy2 = by[:, 2] - by[:, 0]
    h_src = np.maximum(dx1 * dx1 + dy1 * dy1, dx2 * dx2 + dy2 * dy2)
    h_src *= 3.0
    np.sqrt(h_src, out=h_src)
    cell = None
    if getattr(source, "wants_cell_size", False):
        # anti-aliasing pre-filter: the area each of the cell's 2x2 points stands for, a quarter of the cell
        # (isotropic size: the square root of its source-plane area; the points' own parallelogram has a
        # third of the cell's area).  The points integrate the cell's box themselves, so a filter sized to
        # the whole cell would blur refined cells by their box a second time (templates refined near the
        # critical curve would come out up to 0.9 % of the peak low in 0.8" seeing instead of 0.2 %)
        area_src = np.abs(dx1 * dy2 - dy1 * dx2)
        cell = 0.5 * np.sqrt(3.0 * area_src.astype(np.float64))[:, None]
    # (per-cell sizes as an (n, 1) column: they broadcast against the cell's four points)
    sb, flags = source.evaluate(
        bx, by, h_src[:, None], GL_TOL, _core_radius(h, level, max_levels), area=h * h, cell=cell
    )
    means = sb.sum(axis=1)
    means *= 0.25
    mom = _gl_moments(sb, means) if moments else None
    idx = np.flatnonzero(flags.any(axis=1))
    if idx.size:
        # split k x k: two levels at once (k = 4) while that stays within max_levels -- each recursion
        # step costs mostly fixed per-call overhead on a few hundred cells, so fewer, larger steps are
        # faster, and the skipped intermediate level only made the integration coarser.  Sources whose
        # criterion is a sampling size over large areas (templates: refinement_levels_per_step = 1) are
        # split one level at a time: there the cost is per ray, and two levels would sample 2x finer
        # than the criterion asks, with 4x the rays
        two = getattr(source, "refinement_levels_per_step", 2) == 2
        k = 4 if two and level + 2 <= max_levels else 2
        offs = ((np.arange(k, dtype=np.float64) + 0.5) / k - 0.5) * h
        m = idx.size
        cx = np.empty((m, k, k), dtype=x.dtype)
        cy = np.empty((m, k, k), dtype=x.dtype)
        cx[...] = x[idx].astype(np.float64)[:, None, None] + offs[None, None, :]
        cy[...] = y[idx].astype(np.float64)[:, None, None] + offs[None, :, None]
        sub_lens, sub_source = lens, source
        if isinstance(lens, LensBatch):
            # one lens and source per cell: the sub-cells inherit their parent's
            rep = np.repeat(idx, k * k)
            sub_lens, sub_source = lens.take(rep), source.take(rep)
        sub = refined_cell_means(
            sub_lens,
            sub_source,
            cx.reshape(-1),
            cy.reshape(-1),
            h / k,
            level + (2 if k == 4 else 1),
            max_levels,
            moments=moments - 1 if moments > 1 else 0,
        )
        if moments > 1:
            sub, sub_mom = sub
            means_map, moments_map = _split_moment_maps(k)
            # (sub-cell moments as (5 k k, m): moment-major, then the sub-cell's row and column)
            flat_mom = sub_mom.reshape(5, m, k * k).transpose(0, 2, 1).reshape(5 * k * k, m)
            mom[:, idx] = _apply_map(means_map, sub.reshape(m, k * k)) + _apply_map(moments_map, flat_mom.T)
        elif moments:
            mom[:, idx] = _apply_map(_smooth_split_moments(k), sub.reshape(m, k * k))
        sub = sub.reshape(m, k * k).sum(axis=1)
        sub *= 1.0 / (k * k)
        means[idx] = sub
    if moments:
        return means, mom
    return means


def _apply_map(matrix: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix @ cols.T`` for a fixed (5, K) matrix and (m, K) cells: a (5, m) float64 array.

    Summed term by term over K in a fixed order (a reduction over the outer axis of a (K, 5, m) array of
    products), so a cell's result does not depend on how many cells are processed with it (BLAS matrix
    products may change their summation order with the matrix shape).
    """
    terms = np.ascontiguousarray(cols.T, dtype=np.float64)[:, None, :] * matrix.T[:, :, None]
    return terms.sum(axis=0)


def _gl_moments(sb: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(5, n) moments (Mx, My, Qxx, Qyy, Qxy; see refined_cell_means) of cells from their 2x2 points.

    The points sit at (-g, -g), (+g, -g), (-g, +g), (+g, +g) cell sides from the centre (g = 1/(2 sqrt 3)),
    weight 1/4 each: exact for bicubic light.
    """
    s0, s1, s2, s3 = sb.T.astype(np.float64)
    mom = np.empty((5, sb.shape[0]), dtype=np.float64)
    np.subtract(s1 + s3, s0 + s2, out=mom[0])
    mom[0] *= 0.25 * _GL_UNIT
    np.subtract(s2 + s3, s0 + s1, out=mom[1])
    mom[1] *= 0.25 * _GL_UNIT
    np.multiply(means, _GL_UNIT**2, out=mom[2])
    mom[3] = mom[2]
    np.subtract(s0 + s3, s1 + s2, out=mom[4])
    mom[4] *= 0.25 * _GL_UNIT**2
    return mom


def _smooth_moments(sub: np.ndarray) -> np.ndarray:
    """(5, m, k, k) moments of k x k sub-cells (means ``sub``, (m, k, k)) whose light is taken as smooth.

    The first moment of a cell with a linear gradient is (S[c+1] - S[c-1]) / 24 in cell units: from the
    neighbouring sub-cells of the same parent (one-sided differences, / 12, at the parent's edges);
    Qxx = Qyy = mean / 12, Qxy = 0.
    """
    w = sub.astype(np.float64)
    mom = np.zeros((5,) + w.shape, dtype=np.float64)
    for axis, (first, second) in ((2, (0, 2)), (1, (1, 3))):
        d = mom[first]
        g = np.diff(w, axis=axis)  # differences between neighbouring sub-cells
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        d[tuple(lo)] += g
        d[tuple(hi)] += g
        n_terms = np.full(w.shape[axis], 2.0)
        n_terms[[0, -1]] = 1.0
        shape = [1, 1, 1]
        shape[axis] = -1
        d *= (1.0 / 12.0) / n_terms.reshape(shape)
        mom[second] = w * (1.0 / 12.0)
    return mom


@functools.lru_cache(maxsize=8)
def _split_moment_maps(k: int) -> tuple[np.ndarray, np.ndarray]:
    """The parallel-axis sums of _combine_moments as two fixed matrices, (5, k*k) on the sub-cells' means
    and (5, 5*k*k) on their moments (ordered moment-major, then row, then column)."""
    n = k * k
    zeros_mom = np.zeros((5, n, k, k))
    on_means = _combine_moments(np.eye(n).reshape(n, k, k), zeros_mom)
    basis = np.eye(5 * n).reshape(5 * n, 5, k, k).transpose(1, 0, 2, 3)  # (5, 5n, k, k)
    on_moments = _combine_moments(np.zeros((5 * n, k, k)), basis)
    for a in (on_means, on_moments):
        a.setflags(write=False)
    return on_means, on_moments


@functools.lru_cache(maxsize=8)
def _smooth_split_moments(k: int) -> np.ndarray:
    """(5, k*k) matrix: moments of a cell split k x k from its sub-cells' means, the sub-cells' own light
    taken as smooth (_smooth_moments) -- a fixed linear map, built by applying the parallel-axis sums
    (_combine_moments) to unit sub-cell means."""
    basis = np.eye(k * k).reshape(k * k, k, k)
    out = _combine_moments(basis, _smooth_moments(basis))
    out.setflags(write=False)
    return out


def _combine_moments(sub: np.ndarray, sub_mom: np.ndarray) -> np.ndarray:
    """(5, m) moments of cells split k x k, from their sub-cells' means (m, k, k) and moments (5, m, k, k).

    Parallel-axis sums in the parent's units: a sub-cell at offset o (parent sides) with mean s and own
    moments (M, Q) in its units adds o s / k^2 + M / k^3 to the first moment and o^2 s / k^2 + 2 o M / k^3
    + Q / k^4 to the second.
    """
    k = sub.shape[1]
    o = [(i + 0.5) / k - 0.5 for i in range(k)]  # sub-cell centres, parent units
    w = sub.astype(np.float64)
    w *= 1.0 / (k * k)
    # (the k x k axes are short: sums of slices beat numpy's reductions over them)
    by_col = [w[:, :, j].sum(axis=1) for j in range(k)]  # weight of column j (x offset o[j])
    by_row = [w[:, i, :].sum(axis=1) for i in range(k)]  # weight of row i (y offset o[i])
    m_col = [sub_mom[:, :, :, j].sum(axis=2) for j in range(k)]  # (5, m) per column
    m_row = [sub_mom[:, :, i, :].sum(axis=2) for i in range(k)]  # (5, m) per row
    total = sum(m_col)
    k3, k4 = 1.0 / k**3, 1.0 / k**4
    out = total * np.array([k3, k3, k4, k4, k4])[:, None]
    for j in range(k):
        out[0] += o[j] * by_col[j]
        out[2] += (o[j] * o[j]) * by_col[j] + (2.0 * k3 * o[j]) * m_col[j][0]
        out[4] += (k3 * o[j]) * m_col[j][1] + o[j] * (w[:, :, j] @ np.array(o))
    for i in range(k):
        out[1] += o[i] * by_row[i]
        out[3] += (o[i] * o[i]) * by_row[i] + (2.0 * k3 * o[i]) * m_row[i][1]
        out[4] += (k3 * o[i]) * m_row[i][0]
    return out


def _add_laplacian_correction(sb: np.ndarray) -> None:
    """Turn point samples into cell means to second order: S + h^2/24 lap S (5-point stencil, in place).

    The stencil sums to zero, so the total flux is unchanged; it removes the per-cell bias of the
    midpoint rule (which otherwise differs between refined and unrefined cells).
    """
    lap = np.multiply(sb, -4.0, out=scratch_array("laplacian", sb.shape, sb.dtype))
    lap[..., 1:, :] += sb[..., :-1, :]
    lap[..., :-1, :] += sb[..., 1:, :]
    lap[..., 0, :] += sb[..., 0, :]
    lap[..., -1, :] += sb[..., -1, :]
    lap[..., 1:] += sb[..., :-1]
    lap[..., :-1] += sb[..., 1:]
    lap[..., 0] += sb[..., 0]
    lap[..., -1] += sb[..., -1]
    lap *= 1.0 / 24.0
    sb += lap


def _add_subcell_moments(
    sb: np.ndarray, rows: np.ndarray, cols: np.ndarray, mom: np.ndarray, planes: np.ndarray | None = None
) -> None:
    """Carry the sub-cell position of light in refined cells onto the cell grid (in place, flux kept).

    The transform treats the cell means as samples of a smooth surface: within a cell it implies the
    moments of that surface, M = (S[c+1] - S[c-1]) / 24 and Qxx = S / 12 + (S[c+1] - 2 S + S[c-1]) / 360
    (and likewise along y; Qxy from the diagonal neighbours), which hold for smooth light.  Where the light
    is concentrated below the cell size -- a Sersic cusp or a compact source -- its true position and spread
    within the cell differ from that: without a correction the cusp would be drawn at the cell centre,
    shifting compact images by up to half a cell (2-4 % of the peak in 0.65" seeing at supersampling 3).  The refined cells' own moments
    (``refined_cell_means(..., moments=_MOMENT_DEPTH)``) are compared with the implied ones and the
    differences added as zero-flux patterns on the neighbouring cells: a dipole (+d/2 at c+1, -d/2 at
    c-1) for each first moment, a (1/2, -1, 1/2) triplet for each second moment along an axis, and a
    +-1/4 quartet on the diagonals for the cross moment.  Cells on the grid's edge are left as they are.
    A stack of grids (N, ny, nx) takes the grid index of each cell in ``planes``.
    (Carrying only the deviation from smooth light keeps the unrefined cells around a refined region
    consistent with it; matching a lone point's moments exactly instead -- pattern second moment Q + mean/12
    -- draws points 0.03 % closer to GalSim but puts smooth extended sources 0.3 % of the peak off.  As it
    is, a point source at supersampling 3 in 0.65" seeing is 0.17 % of the peak too sharp, 0.01 % at 6.)
    """
    ny, nx = sb.shape[-2:]
    inner = (rows >= 1) & (rows <= ny - 2) & (cols >= 1) & (cols <= nx - 2)
    if not inner.all():
        rows, cols, mom = rows[inner], cols[inner], mom[:, inner]
        planes = None if planes is None else planes[inner]
    if rows.size == 0:
        return
    flat = rows * nx + cols
    if planes is not None:
        flat += planes * (ny * nx)
    s = sb.reshape(-1)

    def at(offset: int) -> np.ndarray:
        return s[flat + offset].astype(np.float64)

    c0, e, w, n_, s_ = at(0), at(1), at(-1), at(nx), at(-nx)
    cross = at(nx + 1) - at(nx - 1) - at(-nx + 1) + at(-nx - 1)
    d_mx = mom[0] - (e - w) / 24.0
    d_my = mom[1] - (n_ - s_) / 24.0
    d_qxx = mom[2] - c0 / 12.0 - (e - 2.0 * c0 + w) / 360.0
    d_qyy = mom[3] - c0 / 12.0 - (n_ - 2.0 * c0 + s_) / 360.0
    d_qxy = mom[4] - cross / 576.0
    half_x, half_y, quarter = 0.5 * d_mx, 0.5 * d_my, 0.25 * d_qxy
    offsets = (1, -1, nx, -nx, 0, nx + 1, -nx - 1, nx - 1, -nx + 1)
    values = (
        half_x + 0.5 * d_qxx,
        -half_x + 0.5 * d_qxx,
        half_y + 0.5 * d_qyy,
        -half_y + 0.5 * d_qyy,
        -d_qxx - d_qyy,
        quarter,
        quarter,
        -quarter,
        -quarter,
    )
    where = np.concatenate([flat + o for o in offsets])
    # (per touched cell, the contributions are summed in the order of ``offsets``, then of the cells)
    touched, slot = np.unique(where, return_inverse=True)
    delta = np.bincount(slot, weights=np.concatenate(values), minlength=touched.size)
    s[touched] += delta.astype(sb.dtype)


def stretched_window(lens: SIELens, x1, y1, bx, by, h: float):
    """The window of a ray grid where cells may map to source-plane patches larger than h (see
    _flag_demagnified), and the source-plane size of each of its cells (arcsec, measured from the
    neighbours' rays): (window slices, first row, first column, bx, by, sizes), or None when there is none.
    x1, y1 are the grid's image-plane axes and bx, by its rays (arcsec); h the cell side (arcsec)."""
    if lens.theta_e <= 0:
        return None
    c = math.hypot(lens.e1, lens.e2)
    q = (1.0 - c) / (1.0 + c)
    g = math.hypot(lens.gamma1, lens.gamma2)
    r_cut = lens.theta_e / ((2.0 - g) * math.sqrt(q)) + 2.0 * h
    cols = np.flatnonzero(np.abs(x1) < r_cut)
    rows = np.flatnonzero(np.abs(y1) < r_cut)
    if cols.size < 2 or rows.size < 2:
        return None
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    wbx, wby = bx[win], by[win]
    ex = np.diff(wbx, axis=1)
    ey = np.diff(wby, axis=1)
    ex = np.sqrt(ex * ex + ey * ey)
    ey = np.diff(wbx, axis=0)
    ty = np.diff(wby, axis=0)
    ey = np.sqrt(ey * ey + ty * ty)
    h_src = np.zeros(wbx.shape, dtype=ex.dtype)
    h_src[:, 1:] = ex
    h_src[:, :-1] = np.maximum(h_src[:, :-1], ex)
    h_src[1:] = np.maximum(h_src[1:], ey)
    h_src[:-1] = np.maximum(h_src[:-1], ey)
    return win, rows[0], cols[0], wbx, wby, h_src


def _flag_demagnified(lens: SIELens, source, x1, y1, bx, by, h: float, flags: np.ndarray) -> None:
    """Add refinement flags near the lens centre, where cells map to larger source-plane patches.

    The source-plane image of a cell of side h is longer than h only where a singular value of the
    lens Jacobian, 1 - kappa -/+ |gamma|, exceeds 1 in modulus.  For the SIE the shear modulus equals
    kappa, so with external shear g the total |gamma| <= kappa + g: the value 1 - kappa + |gamma| is at
    most 1 + g (a stretch the refinement tolerances absorb), and kappa + |gamma| - 1 > 1 needs
    kappa > 1 - g/2, i.e. an elliptical radius sqrt(q x'^2 + y'^2/q) < theta_E / (2 - g).  Inside that
    ellipse's bounding box (plus the finite-difference stencil) the source-plane size of each cell is
    measured from its neighbours' rays.
    """
    found = stretched_window(lens, x1, y1, bx, by, h)
    if found is None:
        return
    win, _, _, wbx, wby, h_src = found
    stretched = h_src > h
    if stretched.any():
        sel = np.flatnonzero(stretched)
        extra = source.needs_refinement(
            wbx.reshape(-1)[sel],
            wby.reshape(-1)[sel],
            h_src.reshape(-1)[sel].astype(np.float64),
            BASE_TOL,
            area=h * h,
        )
        add = np.zeros(wbx.size, dtype=bool)
        add[sel[extra]] = True
        flags[win] |= add.reshape(wbx.shape)


def _source_plane_cell_size(bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Square root of the source-plane area of each image-plane cell (side h) of a ray grid, arcsec.

    From the local Jacobian of the lens map by finite differences of neighbouring rays (one-sided at
    the edges; differences per grid step already carry the factor h): h * sqrt(|det A|) =
    h / sqrt(|magnification|).
    """
    dxc, dxr = np.gradient(bx)[::-1]
    dyc, dyr = np.gradient(by)[::-1]
    det = dxc * dyr
    det -= dxr * dyc
    np.abs(det, out=det)
    return np.sqrt(det, out=det)


def lensed_grid_flux(
    lens: SIELens,
    source,
    x1: np.ndarray,
    y1: np.ndarray,
    h: float,
    max_levels: int | None = None,
    skip: np.ndarray | None = None,
) -> np.ndarray:
    """Lensed flux (nanomaggies) in the square cells of side h centred on the grid x1 (columns) x y1 (rows).

    x1, y1 are 1-D image-plane cell centres in arcsec from the lens centre (float32 for the fast path).
    Point samples get a second-order (Laplacian) correction to cell means; cells the source flags as
    under-resolved, and their neighbours, are replaced by adaptively refined means (at most ``max_levels``
    2x2 levels, default refine_levels(h, source)).  Cells where the boolean (rows, cols) mask ``skip`` is True
    are not refined and return 0.
    """
    band_limited = getattr(source, "band_limited_grid_flux", None)
    if band_limited is not None and max_levels is None:
        # smooth templates: per-ray footprint filtering, no refinement (dhs.core.template_render)
        w = band_limited(lens, x1, y1, h, skip)
        if w is not None:
            return w
    if max_levels is None:
        max_levels = refine_levels(h, source)
    xg = np.broadcast_to(x1[None, :], (y1.size, x1.size))
    yg = np.broadcast_to(y1[:, None], (y1.size, x1.size))
    if lens.theta_e > 0 or lens.gamma1 != 0 or lens.gamma2 != 0:
        shape = (y1.size, x1.size)
        dtype = np.float32 if (x1.dtype == np.float32 and y1.dtype == np.float32) else np.float64
        bx, by = ray_shoot_grid(
            lens, x1, y1, out=(scratch_array("grid_bx", shape, dtype), scratch_array("grid_by", shape, dtype))
        )
    else:
        bx, by = xg, yg
    cell = None
    if getattr(source, "wants_cell_size", False) and bx is not xg:
        cell = _source_plane_cell_size(bx, by)
    sb, flags = source.evaluate(bx, by, h, BASE_TOL, _core_radius(h, 0, max_levels), cell=cell)
    _flag_demagnified(lens, source, x1, y1, bx, by, h, flags)
    # cells whose Laplacian stencil touches an under-resolved cell are refined too
    grown = flags.copy()
    grown[1:] |= flags[:-1]
    grown[:-1] |= flags[1:]
    grown[:, 1:] |= flags[:, :-1]
    grown[:, :-1] |= flags[:, 1:]
    if skip is not None:
        grown &= ~skip
    idx = np.flatnonzero(grown)
    if not getattr(source, "wants_cell_size", False):
        # (a source that pre-filters by the cell size returns cell means already: correcting its samples
        # as well would blur them by the cell's box twice)
        _add_laplacian_correction(sb)
    if idx.size:
        cols = idx % x1.size
        rows = idx // x1.size
        if skip is None:
            means, mom = refined_cell_means(
                lens,
                source,
                x1[cols],
                y1[rows],
                h,
                1,
                max_levels,
                moments=1 if getattr(source, "smooth_below_refinement", False) else _MOMENT_DEPTH,
            )
            sb.reshape(-1)[idx] = means
            _add_subcell_moments(sb, rows, cols, mom)
        else:
            sb.reshape(-1)[idx] = refined_cell_means(lens, source, x1[cols], y1[rows], h, 1, max_levels)
    if skip is not None:
        sb[skip] = 0.0
    sb *= h * h
    return sb


def image_plane_half_width(lens: SIELens, source) -> float:
    """Half-width (arcsec) of a lens-centred box that holds every image of the source's 99.9 % isophote."""
    beta = math.hypot(source.x, source.y) + source.extent_radius(0.999)
    alpha = max_sie_deflection(lens.theta_e, lens.e1, lens.e2)
    gamma = math.hypot(lens.gamma1, lens.gamma2)
    # |beta| >= |theta| (1 - |gamma|) - |alpha_SIE|  =>  |theta| <= (|beta| + alpha_max) / (1 - |gamma|)
    return 1.02 * (beta + alpha) / (1.0 - gamma)


def lensed_flux_outside_box(
    lens: SIELens, source, x_lo: float, x_hi: float, y_lo: float, y_hi: float, n_base: int = 128
) -> float:
    """Lensed flux (nanomaggies) that lands outside the box [x_lo, x_hi] x [y_lo, y_hi] (arcsec, lens frame).

    The region that can hold images (image_plane_half_width) is tiled with square cells whose edges
    fall on the box edges; cells inside the box are skipped, the others are integrated adaptively.
    Returns 0 when every image lies inside the box.
    """
    half = image_plane_half_width(lens, source)
    if x_lo <= -half and x_hi >= half and y_lo <= -half and y_hi >= half:
        return 0.0
    width = max(x_hi - x_lo, y_hi - y_lo)
    k = max(1, math.ceil(width / (2.0 * half / n_base)))
    hc = width / k
    kx = max(1, round((x_hi - x_lo) / hc))
    ky = max(1, round((y_hi - y_lo) / hc))
    hx, hy = (x_hi - x_lo) / kx, (y_hi - y_lo) / ky
    hc = max(hx, hy)

    def axis(lo, hi, step, n_in):
        n_lo = max(0, math.ceil((lo + half) / step))
        n_hi = max(0, math.ceil((half - hi) / step))
        return lo + (np.arange(-n_lo, n_in + n_hi) + 0.5) * step, n_lo

    xc, nxl = axis(x_lo, x_hi, hx, kx)
    yc, nyl = axis(y_lo, y_hi, hy, ky)
    skip = np.zeros((yc.size, xc.size), dtype=bool)
    skip[nyl : nyl + ky, nxl : nxl + kx] = True
    if hx != hy:
        # non-square cells: integrate on the finer square cells of the larger side count instead
        return _outside_by_squares(lens, source, x_lo, x_hi, y_lo, y_hi, half, n_base)
    flux = lensed_grid_flux(lens, source, xc.astype(np.float32), yc.astype(np.float32), hc, skip=skip)
    return float(flux.sum(dtype=np.float64))


def _outside_by_squares(lens, source, x_lo, x_hi, y_lo, y_hi, half, n_base) -> float:
    """Fallback for a non-square box: integrate the whole image region and subtract the box's share."""
    h = 2.0 * half / n_base
    centres = ((np.arange(n_base) + 0.5) * h - half).astype(np.float32)
    total = lensed_grid_flux(lens, source, centres, centres, h)
    inside_x = (centres >= x_lo) & (centres < x_hi)
    inside_y = (centres >= y_lo) & (centres < y_hi)
    return float(total.sum(dtype=np.float64) - total[np.ix_(inside_y, inside_x)].sum(dtype=np.float64))


def unit_lensed_subpixel_flux(
    lens: SIELens, source, size: int, supersample: int, pixscale: float, offset_pix: Sequence[float]
) -> np.ndarray:
    """Lensed flux of ``source`` in the stamp's sub-pixel cells (nanomaggies), float32 (size*s+2, size*s+2).

    See subpixel_axes for the cell layout (lens-aligned, one partial cell on each side).
    """
    x1, y1, wx, wy, _ = subpixel_axes(size, supersample, pixscale, offset_pix)
    w = lensed_grid_flux(lens, source, x1, y1, pixscale / supersample)
    w *= wy[:, None]
    w *= wx[None, :]
    return w


def _validate_psf(fwhm, beta, what: str) -> tuple[float, float]:
    try:
        return check_moffat(fwhm, beta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from None


def render_lensed_bands(
    lens: SIELens,
    source,
    fluxes: Sequence[float],
    psf_fwhm_arcsec: Sequence[float],
    *,
    psf_beta: float | Sequence[float] = 3.5,
    size: int = 64,
    pixscale: float = 0.262,
    supersample: int = DEFAULT_SUPERSAMPLE,
    offset_pix: Sequence[float] = (0.0, 0.0),
    return_magnification: bool = False,
) -> np.ndarray | tuple[np.ndarray, float]:
    """Render one lensed source in several bands, sharing the ray shooting and the forward FFT.

    Args:
        lens: the SIE + shear lens (theta_e = 0 renders the source unlensed).
        source: a SersicSource or InterpolatedSource; its shape is used, its own flux is ignored.
        fluxes: per-band total unlensed source flux, nanomaggies.
        psf_fwhm_arcsec: per-band Moffat FWHM, arcsec.
        psf_beta: Moffat index, one value or one per band.
        size: stamp side, pixels.  pixscale: arcsec/pixel.  supersample: sub-pixels per pixel per axis.
        offset_pix: lens centre minus the central pixel (size//2), (dx along columns, dy along rows).
        return_magnification: also return the total magnification (lensed / unlensed flux, not limited
            by the stamp), reusing the stamp's rays: the flux of the stamp's cells plus the lensed flux
            outside the stamp (zero, at no cost, when every image lies inside it).

    Returns:
        (n_bands, size, size) float64 image in nanomaggies per pixel [, magnification].
    """
    fluxes = [float(f) for f in fluxes]
    fw = [float(f) for f in np.atleast_1d(psf_fwhm_arcsec)]
    if len(fw) != len(fluxes):
        raise ValueError(f"render_lensed_bands: {len(fluxes)} fluxes but {len(fw)} PSF FWHM values")
    betas = [float(b) for b in np.atleast_1d(psf_beta)]
    if len(betas) == 1:
        betas = betas * len(fw)
    if len(betas) != len(fw):
        raise ValueError(f"render_lensed_bands: {len(fw)} bands but {len(betas)} psf_beta values")
    psfs = [_validate_psf(f, b, f"band {i}") for i, (f, b) in enumerate(zip(fw, betas))]
    for i, f in enumerate(fluxes):
        if not math.isfinite(f):
            raise ValueError(f"render_lensed_bands: flux of band {i} must be finite, got {f}")
    pixscale = float(pixscale)
    _check_grid(size, supersample, pixscale, offset_pix)
    size = int(size)
    ss = int(supersample)
    out = np.zeros((len(fluxes), size, size), dtype=np.float64)
    if not any(fluxes) and not return_magnification:
        return out
    if isinstance(source, SersicSource):
        # one implementation for Sersic sources: the batched renderer, with a batch of one
        from .batch import render_lensed_batch

        res = render_lensed_batch(
            [lens], [source], [fluxes], [fw], psf_beta=[betas], size=size, pixscale=pixscale,
            supersample=ss, offsets_pix=[[float(o) for o in offset_pix]],
            return_magnification=return_magnification,
        )
        return (res[0][0], float(res[1][0])) if return_magnification else res[0]
    unit = source if source.flux == 1.0 else source.with_flux(1.0)
    x1, y1, wx, wy, shift = subpixel_axes(size, ss, pixscale, offset_pix)
    w = lensed_grid_flux(lens, unit, x1, y1, pixscale / ss)
    w *= wy[:, None]
    w *= wx[None, :]
    out = psf_images(
        w[None], np.array([shift]), np.array([fluxes]), np.array([[f for f, _ in psfs]]),
        np.array([[b for _, b in psfs]]), size, ss, pixscale, clip=[getattr(unit, "non_negative", False)],
    )[0]
    if not return_magnification:
        return out
    if lens.theta_e == 0.0 and lens.gamma1 == 0.0 and lens.gamma2 == 0.0:
        return out, 1.0
    x_lo = (-0.5 - (size // 2 + float(offset_pix[0]))) * pixscale
    y_lo = (-0.5 - (size // 2 + float(offset_pix[1]))) * pixscale
    span = size * pixscale
    outside = lensed_flux_outside_box(lens, unit, x_lo, x_lo + span, y_lo, y_lo + span)
    return out, float(w.sum(dtype=np.float64)) + outside


def render_arc(
    lens: SIELens,
    source,
    *,
    psf_fwhm_arcsec: float,
    psf_beta: float = 3.5,
    size: int = 64,
    pixscale: float = 0.262,
    supersample: int = DEFAULT_SUPERSAMPLE,
    offset_pix: Sequence[float] = (0.0, 0.0),
) -> np.ndarray:
    """Lensed source convolved with a Moffat PSF and integrated over pixels.

    Args:
        lens: SIE + shear lens; source: SersicSource or InterpolatedSource (its ``flux`` is the total
            unlensed flux in nanomaggies).
        psf_fwhm_arcsec: Moffat FWHM, arcsec; psf_beta: Moffat index.
        size: stamp side, pixels; pixscale: arcsec per pixel; supersample: sub-pixels per pixel per axis.
        offset_pix: the lens centre sits at row = size//2 + offset_pix[1], col = size//2 + offset_pix[0].

    Returns:
        (size, size) float64 image, nanomaggies per pixel.
    """
    return render_lensed_bands(
        lens,
        source,
        [source.flux],
        [psf_fwhm_arcsec],
        psf_beta=psf_beta,
        size=size,
        pixscale=pixscale,
        supersample=supersample,
        offset_pix=offset_pix,
    )[0]
