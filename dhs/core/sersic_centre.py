"""Exact integration of image-plane cells at a Sersic profile's centre.

A Gauss-Legendre rule cannot integrate the centre of a Sersic with n != 0.5 (singular there; a cusp for
n > 1: the profile changes by a large factor across any cell that holds it), whatever the cell size the
adaptive refinement reaches; unlensed n = 4 sources with r_eff = 0.02-0.05 arcsec lost up to 1 % of their
flux that way.  At the finest refinement level the renderer therefore integrates the cells around the
centre's image in polar coordinates about it (SersicSource.integrate_centre_cells, and
dhs.core.sersic_batch.SersicBatch for many rows): along a direction phi the profile depends on the radius r
only through rho = r m(phi), so the radial integral is the Sersic enclosed flux,
F / (2 pi r_eff^2) P(2n, b rho^(1/n)) / m(phi)^2 (P the regularised incomplete gamma function); the angular
integral uses Gauss-Legendre nodes between the directions of the cell's corners, where the integrand is
smooth.  Positions are arcsec; surface brightness nanomaggies/arcsec^2.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["centre_cell_means", "centre_cell_rays"]

#: Gauss-Legendre nodes per angular interval of centre_cell_rays
_CENTRE_NODES = 8
_CENTRE_RULE = np.polynomial.legendre.leggauss(_CENTRE_NODES)
#: Jacobian of a cell's lens map from its 2x2 Gauss-Legendre rays (times 1/h): rays at (-,-), (+,-), (-,+),
#: (+,+) x h / (2 sqrt 3), so d/dx = sqrt(3)/2 (-b0 + b1 - b2 + b3) / h, and d/dy likewise
_CELL_JACOBIAN = 0.5 * math.sqrt(3.0) * np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
#: b0 - b1 - b2 + b3: zero when the lens map is affine over the cell
_CELL_BEND = np.array([1.0, -1.0, -1.0, 1.0])
_UNIT_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])


def centre_near_cells(j00, j01, j10, j11, dx, dy, bend, h: float):
    """Cells (side h, arcsec) whose lens map is affine (``bend`` < 5e-3 of their source-plane size) and whose
    centre lies within two cells (|ux| + |uy| < 2 h) of the profile centre's image: (indices, ux, uy of
    those cells), (ux, uy) the centre's image in cell-local image-plane coordinates (arcsec), from the cells'
    2x2 Jacobians j and the source-plane offsets (dx, dy) of the centre from the cells' centres."""
    det = j00 * j11 - j01 * j10
    size = (np.abs(j00) + np.abs(j01) + np.abs(j10) + np.abs(j11)) * h
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (j11 * dx - j01 * dy) / det
        uy = (j00 * dy - j10 * dx) / det
    half = 0.5 * h
    near = np.flatnonzero((np.abs(ux) + np.abs(uy) < 4.0 * half) & (bend < 5e-3 * size) & (det != 0.0))
    return near, ux[near], uy[near]


def centre_cell_rays(ux: np.ndarray, uy: np.ndarray, half: float):
    """Polar quadrature of square cells about a point: for cells of half-width ``half`` (arcsec, image plane)
    whose centres lie at (-ux, -uy) from the point, the Gauss-Legendre directions (cos, sin of phi: (k, 4, N)),
    the radii where each ray enters and leaves its cell (r_in, r_out, arcsec) and the half-widths of the four
    angular intervals (k, 4). Used to integrate a Sersic profile exactly about its centre's image."""
    # directions from the centre's image to the four corners: inside the cell they split the full
    # turn into four intervals, outside it the cell's angular span into three (plus an empty one)
    inside = (np.abs(ux) < half) & (np.abs(uy) < half)
    ref = np.where(inside, 0.0, np.arctan2(-uy, -ux))
    ang = np.arctan2(half * _UNIT_CORNERS[:, 1] - uy[:, None], half * _UNIT_CORNERS[:, 0] - ux[:, None])
    ang -= ref[:, None]
    two_pi = 2.0 * math.pi
    ang = np.where(inside[:, None], np.mod(ang, two_pi), np.mod(ang + math.pi, two_pi) - math.pi)
    ang.sort(axis=1)
    last = np.where(inside, ang[:, 0] + two_pi, ang[:, 3])
    top = np.concatenate((ang[:, 1:], last[:, None]), axis=1)
    halfw = 0.5 * (top - ang)
    nodes, weights = _CENTRE_RULE
    phi = (0.5 * (top + ang) + ref[:, None])[..., None] + halfw[..., None] * nodes  # (k, 4, N)
    ox = np.cos(phi)
    oy = np.sin(phi)
    # the ray from the centre's image along phi against the cell [-h/2, h/2]^2 (slab method)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ix = 1.0 / ox
        iy = 1.0 / oy
        ax = (-half - ux)[:, None, None] * ix
        bx_ = (half - ux)[:, None, None] * ix
        ay = (-half - uy)[:, None, None] * iy
        by_ = (half - uy)[:, None, None] * iy
    # (fmin/fmax skip the NaN of 0 * inf, from a ray running exactly along a cell edge)
    r_in = np.fmax(np.fmax(np.fmin(ax, bx_), np.fmin(ay, by_)), 0.0)
    r_out = np.fmin(np.fmax(ax, bx_), np.fmax(ay, by_))
    np.fmax(r_out, r_in, out=r_out)
    return ox, oy, r_in, r_out, halfw


def centre_cell_means(
    bx: np.ndarray,
    by: np.ndarray,
    h: float,
    means: np.ndarray,
    *,
    x: float,
    y: float,
    ellipse: np.ndarray,
    flux: float,
    r_eff: float,
    n: float,
    b_n: float,
) -> None:
    """Exact mean surface brightness of the image-plane cells around a Sersic profile's centre (in place).

    Args:
        bx, by: (n, 4) source-plane positions (arcsec) of each square cell's 2x2 Gauss-Legendre
            points, at offsets (-g, -g), (+g, -g), (-g, +g), (+g, +g) with g = h / (2 sqrt 3).
        h: image-plane cell side, arcsec.
        means: (n,) cell means (nanomaggies/arcsec^2), overwritten for the cells treated.
        x, y: the profile's centre (arcsec); ellipse: its matrix E, R / r_eff = |E (beta - centre)|;
        flux: total flux (nanomaggies); r_eff: half-light radius (arcsec); n, b_n: index and exact b_n.

    Treated are the cells whose lens map is affine (judged from the four rays) and whose centre lies within
    two cells (|dx| + |dy| < 2 h) of the centre's image.
    """
    # cheap preselection: cells whose first ray lies within a few cell images of the centre
    ex = bx[:, 1] - bx[:, 0]
    ey = by[:, 1] - by[:, 0]
    fx = bx[:, 2] - bx[:, 0]
    fy = by[:, 2] - by[:, 0]
    reach = np.maximum(ex * ex + ey * ey, fx * fx + fy * fy)
    reach *= 3.5**2 * 3.0  # (3.5 cells; the ray spacing is h / sqrt 3)
    cx = bx[:, 0] - x
    cy = by[:, 0] - y
    sel = np.flatnonzero(cx * cx + cy * cy <= reach)
    if sel.size == 0:
        return
    pts = np.stack((bx[sel], by[sel]), axis=1).astype(np.float64)  # (k, 2, 4)
    jac = pts @ (_CELL_JACOBIAN / h)  # (k, 2, 2): d beta_a / d x_j
    j00, j01, j10, j11 = jac[:, 0, 0], jac[:, 0, 1], jac[:, 1, 0], jac[:, 1, 1]
    bend = np.abs(pts @ _CELL_BEND).sum(axis=1)  # zero for an affine map
    dx = x - 0.25 * pts[:, 0].sum(axis=1)
    dy = y - 0.25 * pts[:, 1].sum(axis=1)
    near, ux, uy = centre_near_cells(j00, j01, j10, j11, dx, dy, bend, h)
    if near.size == 0:
        return
    half = 0.5 * h
    jac = jac[near]
    ox, oy, r_in, r_out, halfw = centre_cell_rays(ux, uy, half)
    weights = _CENTRE_RULE[1]
    # elliptical radius (units of r_eff) per unit image-plane distance along phi
    mat = ellipse @ jac  # (k, 2, 2)
    su = mat[:, 0, 0, None, None] * ox + mat[:, 0, 1, None, None] * oy
    sv = mat[:, 1, 0, None, None] * ox + mat[:, 1, 1, None, None] * oy
    m2 = su * su + sv * sv
    rho = np.stack((r_out, r_in)) * np.sqrt(m2)
    enclosed = special.gammainc(2.0 * n, b_n * rho ** (1.0 / n))
    total = ((enclosed[0] - enclosed[1]) / m2 * (halfw[..., None] * weights)).sum(axis=(1, 2))
    means[sel[near]] = (flux / (2.0 * math.pi * r_eff**2 * h * h)) * total
