"""Adaptive quadrature of a surface brightness over square image-plane cells.

The renderer (dhs.core.render) point-samples the source on its cell grid; cells where that is not
accurate enough are integrated here: each with the 2x2 Gauss-Legendre rule, split 2x2 where the
source still flags it as under-resolved, down to MAX_REFINE_LEVELS halvings (refined_cell_means).  Cells
are flagged by the source (its ``evaluate`` / ``needs_refinement``, see dhs.core.source_profile) and, near
the lens centre where cells map to larger source-plane patches, by stretched_window / _flag_demagnified.
Refined cells also report the first and second moments of their light (dhs.core.subcell_moments).
"""

from __future__ import annotations

import math

import numpy as np

from .lens import LensBatch, SIELens
from .source_profile import RefinableProfile
from .subcell_moments import _apply_map, _smooth_split_moments, _split_moment_maps

__all__ = ["BASE_TOL", "GL_TOL", "MAX_REFINE_LEVELS", "refined_cell_means", "stretched_bounds", "stretched_window"]

#: Maximum number of 2x2 refinement levels below a base grid of the default sub-pixel size
#: (0.262 / dhs.core.render.DEFAULT_SUPERSAMPLE arcsec): cells down to 1/64 of it, 1.4 milliarcsec.
MAX_REFINE_LEVELS = 6
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


#: Gauss-Legendre 2-point offset in units of the cell side
_GL_UNIT = 1.0 / (2.0 * math.sqrt(3.0))


def refined_cell_means(
    lens: SIELens | LensBatch,
    source: RefinableProfile,
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
    source plane) are split 2x2 and treated the same way, down to ``max_levels`` (default
    MAX_REFINE_LEVELS) halvings of the cell side: adaptive supersampling for compact sources, Sersic cusps
    and strongly stretched regions of the lens map.

    With ``moments`` > 0, also returns each cell's first and second moments of the light about its centre,
    from its 2x2 points or its 2x2 sub-cells: a (5, n) array (Mx, My, Qxx, Qyy, Qxy) with
    M = integral of (offset / h) S / h^2 and Q = integral of (offset / h)^2 S / h^2 (a uniform cell has
    M = 0 and Qxx = Qyy = mean / 12).  ``moments`` is the number of refinement levels that carry them
    (``max_levels`` follows them to the finest cells: a point-like source off the cell centres keeps its
    position to ~0.0003 pixel); below that, sub-cells count as smooth (first moments from their
    neighbours' differences, exact for a linear gradient; _smooth_moments).
    """
    if max_levels is None:
        max_levels = MAX_REFINE_LEVELS
    g = h * _GL_UNIT
    n = x.size
    # the cells' 2x2 points as (n, 4) views of point-major (4, n) arrays (dhs.core.rows.points_major)
    xs = np.empty((4, n), dtype=x.dtype)
    ys = np.empty((4, n), dtype=x.dtype)
    xs[0::2] = x - g
    xs[1::2] = x + g
    ys[:2] = y - g
    ys[2:] = y + g
    bx, by = _shoot(lens, xs.T, ys.T)
    if level >= max_levels:
        sb = source.surface_brightness(bx, by, core_radius=_core_radius(h, level, max_levels))
        means = sb.sum(axis=1)
        means *= 0.25
        if not moments:
            source.integrate_centre_cells(bx, by, h, means)
            return means
        gl_means = means.copy()
        source.integrate_centre_cells(bx, by, h, means)
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
    if source.wants_cell_size:
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
        # split 2x2, one level per step: only the sub-cells still flagged are split again (a k x k split
        # of several levels at once evaluates up to 4x the rays for the same accuracy)
        k = 2
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
            level + 1,
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


def stretched_bounds(lens: SIELens, x1: np.ndarray, y1: np.ndarray, h: float) -> tuple[int, int, int, int] | None:
    """(first row, end row, first column, end column) of the cells of the grid x1 (columns) x y1 (rows)
    (arcsec from the lens centre, cell side h) whose source-plane images may be larger than h: the bounding
    box of the ellipse where the SIE's convergence exceeds 1 - g/2 (see _flag_demagnified), plus the
    finite-difference stencil; None when there is none (no lens, or fewer than two cells across)."""
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
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def stretched_window(lens: SIELens, x1, y1, bx, by, h: float, bounds=None):
    """The window of a ray grid where cells may map to source-plane patches larger than h (see
    _flag_demagnified), and the source-plane size of each of its cells (arcsec, measured from the
    neighbours' rays): (window slices, first row, first column, bx, by, sizes), or None when there is none.
    x1, y1 are the grid's image-plane axes and bx, by its rays (arcsec); h the cell side (arcsec);
    ``bounds``: stretched_bounds(lens, x1, y1, h) when the caller has it already."""
    if bounds is None:
        bounds = stretched_bounds(lens, x1, y1, h)
    if bounds is None:
        return None
    r0, r1, c0, c1 = bounds
    win = (slice(r0, r1), slice(c0, c1))
    wbx, wby = bx[win], by[win]
    # lengths of the edges between neighbouring rays (differences by slicing: np.diff's own cost is ~5 us)
    ex = wbx[:, 1:] - wbx[:, :-1]
    ty = wby[:, 1:] - wby[:, :-1]
    ex *= ex
    ty *= ty
    ex += ty
    np.sqrt(ex, out=ex)
    ey = wbx[1:] - wbx[:-1]
    ty = wby[1:] - wby[:-1]
    ey *= ey
    ty *= ty
    ey += ty
    np.sqrt(ey, out=ey)
    h_src = np.zeros(wbx.shape, dtype=ex.dtype)
    h_src[:, 1:] = ex
    np.maximum(h_src[:, :-1], ex, out=h_src[:, :-1])
    np.maximum(h_src[1:], ey, out=h_src[1:])
    np.maximum(h_src[:-1], ey, out=h_src[:-1])
    return win, r0, c0, wbx, wby, h_src


def _flag_demagnified(
    lens: SIELens, source: RefinableProfile, x1, y1, bx, by, h: float, flags: np.ndarray
) -> None:
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
