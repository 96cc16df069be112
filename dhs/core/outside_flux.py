"""Lensed flux that lands outside a box of the image plane (e.g. a stamp), for total magnifications.

The region that can hold images of the source (image_plane_half_width, from the source's extent and the
largest SIE deflection) is tiled with cells whose edges fall on the box edges; the cells outside the box
are integrated with dhs.core.render.lensed_grid_flux (imported where it is used: dhs.core.render imports
this module for render_lensed_bands' magnification).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from .lens import SIELens, max_sie_deflection, max_sie_deflections
from .source_profile import SourceProfile

__all__ = ["image_plane_half_width", "image_plane_half_widths", "lensed_flux_outside_box"]


def image_plane_half_width(lens: SIELens, source: SourceProfile) -> float:
    """Half-width (arcsec) of a lens-centred box that holds every image of the source's 99.9 % isophote."""
    beta = math.hypot(source.x, source.y) + source.extent_radius(0.999)
    alpha = max_sie_deflection(lens.theta_e, lens.e1, lens.e2)
    return _half_width(beta, alpha, math.hypot(lens.gamma1, lens.gamma2))


def _half_width(beta, alpha, gamma):
    """Half-width (arcsec) from the source's reach |beta|, the largest SIE deflection and the shear |gamma|:
    |beta| >= |theta| (1 - |gamma|) - |alpha_SIE|  =>  |theta| <= (|beta| + alpha_max) / (1 - |gamma|), +2 %."""
    return 1.02 * (beta + alpha) / (1.0 - gamma)


def image_plane_half_widths(lenses: Sequence[SIELens], sources: Sequence) -> np.ndarray:
    """image_plane_half_width of many (lens, SersicSource) rows at once: (N,) arcsec, vectorised (each row
    by the same elementwise arithmetic whatever the other rows; extent radii as SersicSource.extent_radius)."""
    n, r_eff, b_n, q, x, y = (np.array([getattr(src, k) for src in sources], dtype=np.float64).reshape(-1)
                              for k in ("n", "r_eff", "b_n", "q", "x", "y"))
    extent = r_eff * (special.gammaincinv(2.0 * n, 0.999) / b_n) ** n / np.sqrt(q)
    beta = np.hypot(x, y) + extent
    alpha = max_sie_deflections([ln.theta_e for ln in lenses], [ln.e1 for ln in lenses], [ln.e2 for ln in lenses])
    return _half_width(beta, alpha, np.hypot([ln.gamma1 for ln in lenses], [ln.gamma2 for ln in lenses]))


def lensed_flux_outside_box(
    lens: SIELens,
    source: SourceProfile,
    x_lo: float,
    x_hi: float,
    y_lo: float,
    y_hi: float,
    n_base: int = 128,
    half: float | None = None,
) -> float:
    """Lensed flux (nanomaggies) that lands outside the box [x_lo, x_hi] x [y_lo, y_hi] (arcsec, lens frame).

    The region that can hold images (image_plane_half_width, or ``half`` when the caller has it) is tiled
    with square cells whose edges fall on the box edges; cells inside the box are skipped, the others are
    integrated adaptively.  Returns 0 when every image lies inside the box.
    """
    from .render import lensed_grid_flux  # (dhs.core.render imports this module)

    if half is None:
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
    from .render import lensed_grid_flux

    h = 2.0 * half / n_base
    centres = ((np.arange(n_base) + 0.5) * h - half).astype(np.float32)
    total = lensed_grid_flux(lens, source, centres, centres, h)
    inside_x = (centres >= x_lo) & (centres < x_hi)
    inside_y = (centres >= y_lo) & (centres < y_hi)
    return float(total.sum(dtype=np.float64) - total[np.ix_(inside_y, inside_x)].sum(dtype=np.float64))
