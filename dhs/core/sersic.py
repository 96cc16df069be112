"""The elliptical Sersic source (lenstronomy SERSIC_ELLIPSE, exact b_n): profile, refinement criterion.

Surface brightness in nanomaggies per arcsec^2, normalised analytically from the unlensed total flux
(nanomaggies); positions in arcsec in the source plane, relative to the lens centre.  SersicSource
satisfies dhs.core.source_profile.SourceProfile; the exact integration of the cells at its (singular)
centre is dhs.core.sersic_centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .scratch import scratch_array
from .sersic_centre import centre_cell_means
from .source_profile import finite_field, replace_flux

__all__ = ["SersicSource", "sersic_b_n", "sersic_enclosed_fraction"]

#: grids of at least this many positions take their temporaries from the scratch pool
_SCRATCH_SIZE = 16384
#: refinement is pointless for cells whose estimated error is below this fraction of the total flux (the
#: estimate, the midpoint error bound times the brightest flux the cell could hold, is an upper bound: the 2x2
#: Gauss-Legendre rule's own error is ~0.13 x the relative estimate squared).  A 30x smaller cutoff refines ~28 %
#: more rays and moves images by < 1e-4 of their peak (tests/core/test_convergence.py).
_MIN_CELL_ERROR = 3e-4


def sersic_refinement_flags(
    rho: np.ndarray, h, tol: float, area, centre_reach: float, *, n, b, rho_max, min_scale, r_eff, log_unit_amp
) -> np.ndarray:
    """The Sersic refinement criterion: cells of side h (arcsec, scalar or per point) at elliptical radii
    rho = R / r_eff whose midpoint error is not within ``tol``.

    The profile constants (index n, b_n, rho_max, min_scale and r_eff in arcsec, log unit amplitude) are
    scalars or arrays broadcasting against rho (one source per row); the arithmetic is elementwise.
    ``centre_reach``: cells whose nearest point lies within this many half-diagonals of the centre count as
    cells at the profile's centre (0: only the cell holding it).  ``area``: the cell area (arcsec^2) the
    flux bound uses, default h^2.
    """
    half_diag = 0.7072 * h / min_scale  # cell half-diagonal in units of the minor-axis r_eff
    rho_min = np.maximum(rho - half_diag, 0.0)
    scale = (h / r_eff) ** 2 / 24.0

    k = b / n
    m = 1.0 / n - 1.0

    def curvature(r: np.ndarray, k=k, m=m) -> np.ndarray:
        # |S_rr| + |S_r / r| over S for exp(-b r^(1/n)), r in units of r_eff:
        # g = k r^m with k = b/n, m = 1/n - 1;  S_rr/S = g^2 - g m / r;  S_r/(r S) = -g / r
        r = np.maximum(r, 1e-6)
        g = k * r**m
        inv_r = 1.0 / r
        return g * (np.abs(g - m * inv_r) + inv_r)

    # curvature error at the centre and at the cell's nearest point (no closer than the half-diagonal,
    # where the Taylor estimate stops meaning anything); a cell holding the centre is bounded instead
    # by the profile's relative change across it, b (2 half_diag)^(1/n), the error of a cusp
    nearest = np.maximum(rho_min, half_diag)
    # (n >= 1: the curvature decreases outwards, so the larger of the two is at the smaller radius)
    if np.ndim(m) == 0:
        err = curvature(np.minimum(rho, nearest)) if m <= 0.0 else np.maximum(curvature(rho), curvature(nearest))
    else:
        # (one source per row of the arrays: the rows with n < 1 take the larger of the two)
        err = curvature(np.minimum(rho, nearest))
        rows = np.flatnonzero(np.reshape(m, -1) > 0.0)
        if rows.size:
            r_rows, near_rows, k_rows, m_rows = np.broadcast_to(rho, err.shape)[rows], nearest[rows], k[rows], m[rows]
            err[rows] = np.maximum(curvature(r_rows, k_rows, m_rows), curvature(near_rows, k_rows, m_rows))
    err *= scale
    err = np.where(rho_min > 0.0, err, np.maximum(err, 0.5 * b * (2.0 * half_diag) ** (1.0 / n)))
    # brightest possible fraction of the total flux in one cell (surface brightness at rho_min);
    # a cell's relative error cannot usefully exceed 1
    cell_frac = np.exp(log_unit_amp + b - b * rho_min ** (1.0 / n)) * (h * h if area is None else area)
    over = err > tol
    # the centre of any n != 0.5 profile is singular (exp(-b rho^(1/n)) has an unbounded second
    # derivative there: a cusp for n > 1, a kink at n = 1): the error of cells at it and next to
    # it is not of the second order that ``tol`` assumes (up to 4 % per cell).  Refine
    # them until the flux they could get wrong is negligible; at the finest level they are
    # integrated exactly (integrate_centre_cells)
    over |= (n != 0.5) & (rho_min <= centre_reach * half_diag)
    return over & (rho_min < rho_max) & (np.minimum(err, 1.0) * cell_frac > _MIN_CELL_ERROR)


#: bins of rho in a refinement table (a table per new source and cell size: 2048 bins cost 4 % of a
#: render, no accuracy)
_TABLE_BINS = 512


def sersic_flag_tables(consts: np.ndarray, h: float, tol: float, area=None) -> tuple[np.ndarray, np.ndarray]:
    """needs_refinement of cells of side h (arcsec) tabulated on bins of rho = R / r_eff, for many sources.

    consts: (N, 6) float64 rows (n, b_n, rho_max, min_scale, r_eff, log unit amplitude).  Returns (N,
    _TABLE_BINS) bool tables (a bin is flagged when either of its edges is: conservative) and the (N,) bin
    widths in rho; rho beyond rho_max + a half-diagonal is never flagged.  Row i depends on row i only.
    """
    n, b, rho_max, min_scale, r_eff, lua = (consts[:, j : j + 1] for j in range(6))
    top = rho_max + 0.7072 * h / min_scale
    step = top / (_TABLE_BINS - 1)
    edges = np.arange(_TABLE_BINS + 1) * step
    # (on the base grid the Laplacian-corrected cells next to the centre are off too: up to 4 %)
    flag = sersic_refinement_flags(
        edges, h, tol, area, 1.0, n=n, b=b, rho_max=rho_max, min_scale=min_scale, r_eff=r_eff, log_unit_amp=lua
    )
    table = flag[:, :-1] | flag[:, 1:]
    table[:, -1] = False  # beyond rho_max + half-diagonal nothing is flagged
    return table, step[:, 0]


def sersic_b_n(n: float) -> float:
    """Exact Sersic b_n: Gamma(2n) * P(2n, b_n) = Gamma(2n) / 2, i.e. gammaincinv(2n, 0.5)."""
    return float(special.gammaincinv(2.0 * float(n), 0.5))


def sersic_enclosed_fraction(r_over_reff: np.ndarray | float, n: float) -> np.ndarray:
    """Fraction of a Sersic profile's flux inside elliptical radius r (in units of r_eff)."""
    b = sersic_b_n(n)
    r = np.asarray(r_over_reff, dtype=np.float64)
    return special.gammainc(2.0 * n, b * r ** (1.0 / n))


@dataclass(frozen=True)
class SersicSource:
    """Elliptical Sersic source (lenstronomy ``SERSIC_ELLIPSE`` geometry, exact b_n).

    Attributes:
        flux: total unlensed flux, nanomaggies (>= 0).
        r_eff: half-light radius along the intermediate axis sqrt(a*b) (lenstronomy ``R_sersic``), arcsec.
        n: Sersic index (0.2 <= n <= 10).
        e1, e2: lenstronomy ellipticity components, q = (1 - |e|) / (1 + |e|).
        x, y: source-plane centre relative to the lens centre, arcsec.

    The elliptical radius is lenstronomy's R^2 = q x'^2 + y'^2 / q in the frame of the major axis,
    so the isophote R = r_eff has semi-axes r_eff / sqrt(q) and r_eff * sqrt(q) and encloses half the flux.
    """

    flux: float
    r_eff: float
    n: float = 1.0
    e1: float = 0.0
    e2: float = 0.0
    x: float = 0.0
    y: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flux", "r_eff", "n", "e1", "e2", "x", "y"):
            object.__setattr__(self, name, finite_field(name, "SersicSource", getattr(self, name)))
        if self.flux < 0:
            raise ValueError(f"SersicSource.flux must be >= 0 nanomaggies, got {self.flux}")
        if self.r_eff <= 0:
            raise ValueError(f"SersicSource.r_eff must be > 0 arcsec, got {self.r_eff}")
        if not 0.2 <= self.n <= 10.0:
            raise ValueError(f"SersicSource.n must be in [0.2, 10], got {self.n}")
        if math.hypot(self.e1, self.e2) >= 0.99:
            raise ValueError(f"SersicSource |e| must be < 0.99, got e1={self.e1}, e2={self.e2}")
        b = sersic_b_n(self.n)
        object.__setattr__(self, "_b", b)
        object.__setattr__(self, "_rho_max", (float(special.gammaincinv(2.0 * self.n, 0.999)) / b) ** self.n)
        log_norm = (
            math.log(2.0 * math.pi * self.n)
            + 2.0 * math.log(self.r_eff)
            + b
            + math.lgamma(2.0 * self.n)
            - 2.0 * self.n * math.log(b)
        )
        object.__setattr__(self, "_log_unit_amp", -log_norm)
        # refinement tables per (cell size, tolerance, area), shared by with_flux copies (same shape)
        object.__setattr__(self, "_tables", {})

    # --- derived constants ---------------------------------------------------------------------
    @property
    def b_n(self) -> float:
        """Exact b_n for this index."""
        return self._b

    @property
    def q(self) -> float:
        """Axis ratio b/a."""
        c = math.hypot(self.e1, self.e2)
        return (1.0 - c) / (1.0 + c)

    @property
    def amplitude(self) -> float:
        """Surface brightness at R = r_eff, nanomaggies / arcsec^2."""
        return math.exp(self._log_amplitude()) if self.flux > 0 else 0.0

    def _log_amplitude(self) -> float:
        return math.log(self.flux) + self._log_unit_amp

    @property
    def min_scale(self) -> float:
        """Semi-minor half-light axis, arcsec: the finest scale of the profile away from the core."""
        return self.r_eff * math.sqrt(self.q)

    #: a Sersic profile is positive everywhere (its flux is >= 0)
    non_negative = True
    #: how the renderer treats the profile (dhs.core.source_profile): point samples, not cell means;
    #: sub-cell moments followed down the whole refinement (cusps, compact sources); always the adaptive
    #: quadrature (band_limited_grid_flux gives None)
    wants_cell_size = False
    smooth_below_refinement = False
    band_limited = False

    def extent_radius(self, frac: float = 0.999) -> float:
        """Semi-major radius (arcsec) of the isophote enclosing ``frac`` of the flux."""
        r = self.r_eff * (float(special.gammaincinv(2.0 * self.n, frac)) / self.b_n) ** self.n
        return r / math.sqrt(self.q)

    def band_limited_grid_flux(self, lens, x1: np.ndarray, y1: np.ndarray, h: float, skip=None) -> None:
        """None: a Sersic profile's cell fluxes always come from the adaptive quadrature (dhs.core.render)."""
        return None

    def with_flux(self, flux: float) -> SersicSource:
        """Copy with a different total flux (nanomaggies), sharing the shape's derived constants."""
        return replace_flux(self, flux)

    # --- evaluation ----------------------------------------------------------------------------
    def _rho2(self, bx: np.ndarray, by: np.ndarray, dtype, scratch: bool = False) -> np.ndarray:
        """(R / r_eff)^2 with lenstronomy's elliptical radius R, as an array of ``dtype``.

        A new array, or with ``scratch`` a pooled one (dhs.core.scratch) that the caller must not hand on.
        """
        # (Python floats: a numpy float64 scalar would turn float32 arrays into float64)
        (a, b), (c, d) = self._ellipse_matrix().tolist()  # b == c
        if scratch:
            shape = np.broadcast_shapes(bx.shape, by.shape)
            dx = np.subtract(bx, self.x, dtype=dtype, out=scratch_array("sersic_dx", shape, dtype))
            dy = np.subtract(by, self.y, dtype=dtype, out=scratch_array("sersic_dy", shape, dtype))
            t = scratch_array("sersic_t", shape, dtype)
            u = np.multiply(dx, a, out=scratch_array("sersic_rho2", shape, dtype))
            u += np.multiply(dy, b, out=t)
            v = np.multiply(dy, d, out=dy)
            v += np.multiply(dx, c, out=t)
        else:
            dx = np.subtract(bx, self.x, dtype=dtype)
            dy = np.subtract(by, self.y, dtype=dtype)
            u = dx * a + dy * b
            v = dx * c + dy * d
        np.multiply(u, u, out=u)
        np.multiply(v, v, out=v)
        u += v
        return u

    def needs_refinement(
        self,
        bx: np.ndarray,
        by: np.ndarray,
        h,
        tol: float = 0.02,
        area: float | None = None,
    ) -> np.ndarray:
        """Mask of sample positions whose cells of side ``h`` (arcsec) are too coarse for this profile.

        ``h`` is the size of the cell in the source plane (scalar or one per position); ``area`` is the
        cell's image-plane area (arcsec^2, default h^2), which sets how much flux an error can affect.

        A cell is flagged when the midpoint-rule error estimate h^2/24 (|S_rr| + |S_r / r|) / S exceeds
        ``tol`` anywhere between its centre and its point nearest to the source centre, provided that
        point lies inside the isophote holding 99.9 % of the flux.  A cell containing the centre of a
        cuspy (n > 1) profile, or any cell overlapping a source smaller than itself, is always flagged.
        """
        bx = np.asarray(bx)
        by = np.asarray(by)
        if bx.ndim == 0 and by.ndim == 0:  # scalars: the in-place arithmetic needs arrays
            return bool(self.needs_refinement(bx.reshape(1), by.reshape(1), np.reshape(h, -1), tol, area)[0])
        dtype = np.float32 if (bx.dtype == np.float32 and by.dtype == np.float32) else np.float64
        return self._flags_from_rho2(self._rho2(bx, by, dtype), h, tol, area)

    def _flags_from_rho2(
        self, rho2: np.ndarray, h, tol: float, area: float | None, scratch: bool = False
    ) -> np.ndarray:
        if np.ndim(h) == 0:
            table, step = self._refinement_table(float(h), float(tol), area)
            if scratch:
                rho = np.sqrt(rho2, out=scratch_array("sersic_rho", rho2.shape, rho2.dtype))
                index = scratch_array("sersic_index", rho2.shape, np.intp)
            else:
                rho = np.sqrt(rho2)
                index = np.empty(rho2.shape, dtype=np.intp)
            rho *= 1.0 / step
            np.minimum(rho, float(table.size - 1), out=rho)
            np.copyto(index, rho, casting="unsafe")  # truncation, as astype
            return table[index]
        # per-position cell sizes (refined cells): float32 is ample for a refinement decision and its
        # transcendental functions are several times faster than float64 ones
        rho = np.sqrt(rho2.astype(np.float32))
        return self._refinement_flags(rho, np.asarray(h, dtype=np.float32), float(tol), area)

    def evaluate(
        self, bx: np.ndarray, by: np.ndarray, h, tol: float, core_radius: float = 0.0, area=None, cell=None
    ):
        """(surface_brightness(bx, by, core_radius), needs_refinement(bx, by, h, tol, area)) in one pass.

        ``cell`` (the anti-aliasing scale of sampled images) is accepted for interface compatibility; an
        analytic profile needs no pre-filter.
        """
        bx = np.asarray(bx)
        by = np.asarray(by)
        if bx.ndim == 0 and by.ndim == 0:  # scalars: the in-place arithmetic needs arrays
            sb, flags = self.evaluate(
                bx.reshape(1), by.reshape(1), np.reshape(h, -1), tol, core_radius, area, cell
            )
            return sb[0], bool(flags[0])
        dtype = np.float32 if (bx.dtype == np.float32 and by.dtype == np.float32) else np.float64
        # stamp-sized grids: temporaries from the scratch pool (the returned arrays are always new)
        pooled = np.ndim(h) == 0 and bx.size >= _SCRATCH_SIZE
        rho2 = self._rho2(bx, by, dtype, scratch=pooled)
        flags = self._flags_from_rho2(rho2, h, tol, area, scratch=pooled)
        if np.ndim(h) == 0 and rho2.size >= 4096 and self.flux > 0.0:
            # skip the power/exp where a cell would hold < 1e-12 of the flux (~1e-7 over a whole stamp)
            cell_area = float(h) ** 2 if area is None else float(area)
            arg = (self._log_unit_amp + self._b + math.log(cell_area) + 12.0 * math.log(10.0)) / self._b
            if arg > 0.0:
                far2 = arg ** (2.0 * self.n)
                idx = np.flatnonzero(rho2 < far2)
                if idx.size < 0.5 * rho2.size:
                    out = np.zeros(rho2.shape, dtype=rho2.dtype)
                    if idx.size:
                        out.reshape(-1)[idx] = self._sb_from_rho2(rho2.reshape(-1)[idx], core_radius)
                    return out, flags
        if pooled:
            rho2 = rho2.copy()
        return self._sb_from_rho2(rho2, core_radius), flags

    def _refinement_flags(
        self, rho: np.ndarray, h: np.ndarray | float, tol: float, area=None, centre_reach: float = 0.0
    ) -> np.ndarray:
        """needs_refinement at elliptical radii rho = R / r_eff for cells of side h (scalar or per point);
        see sersic_refinement_flags."""
        return sersic_refinement_flags(
            rho, h, tol, area, centre_reach, n=self.n, b=self._b, rho_max=self._rho_max,
            min_scale=self.min_scale, r_eff=self.r_eff, log_unit_amp=self._log_unit_amp,
        )

    def _refinement_table(self, h: float, tol: float, area: float | None = None) -> tuple[np.ndarray, float]:
        """needs_refinement for one cell size, tabulated on bins of rho = R / r_eff (conservative per bin)."""
        key = (h, tol, area)
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        if len(self._tables) > 64:
            self._tables.clear()
        tables, steps = sersic_flag_tables(
            np.array([[self.n, self._b, self._rho_max, self.min_scale, self.r_eff, self._log_unit_amp]]), h, tol, area
        )
        table = tables[0]
        table.setflags(write=False)
        self._tables[key] = (table, float(steps[0]))
        return self._tables[key]

    def integrate_centre_cells(self, bx: np.ndarray, by: np.ndarray, h: float, means: np.ndarray) -> None:
        """Exact mean surface brightness of the image-plane cells around the profile's centre (in place).

        Args:
            bx, by: (n, 4) source-plane positions (arcsec) of each square cell's 2x2 Gauss-Legendre
                points, at offsets (-g, -g), (+g, -g), (-g, +g), (+g, +g) with g = h / (2 sqrt 3).
            h: image-plane cell side, arcsec.
            means: (n,) cell means (nanomaggies/arcsec^2), overwritten for the cells treated.

        Cells whose lens map is affine and whose centre lies within two cells of the centre's image are
        integrated in polar coordinates about it (dhs.core.sersic_centre); nothing is done for n = 0.5 (a
        Gaussian, smooth at its centre) or where the 2x2 Gauss-Legendre rule cannot be off by a
        noticeable flux.
        """
        if self.flux == 0.0 or self.n == 0.5 or bx.shape[0] == 0:
            return
        # skip when Gauss-Legendre is good enough: the ~9 cells treated here could get wrong at most
        # their flux (central surface brightness x h^2) times the profile's relative change across a
        # cell (its source-plane image taken <= 2 h, i.e. magnification >= 1/4), as in the refinement gate
        change = 0.5 * self._b * (2.0 * 0.7072 * 2.0 * h / self.min_scale) ** (1.0 / self.n)
        if 9.0 * math.exp(self._log_unit_amp + self._b) * h * h * min(change, 1.0) < _MIN_CELL_ERROR:
            return
        centre_cell_means(
            bx, by, h, means, x=self.x, y=self.y, ellipse=self._ellipse_matrix(), flux=self.flux,
            r_eff=self.r_eff, n=self.n, b_n=self._b,
        )

    def _ellipse_matrix(self) -> np.ndarray:
        """E with (R / r_eff) = |E (beta - centre)|: lenstronomy's elliptical radius as a linear map."""
        mat = self.__dict__.get("_ellipse")
        if mat is None:
            e1, e2 = self.e1, self.e2
            inv = 1.0 / (self.r_eff * math.sqrt(1.0 - e1 * e1 - e2 * e2))
            mat = np.array([[1.0 - e1, -e2], [-e2, 1.0 + e1]]) * inv
            object.__setattr__(self, "_ellipse", mat)
        return mat

    def surface_brightness(self, bx: np.ndarray, by: np.ndarray, core_radius: float = 0.0) -> np.ndarray:
        """Surface brightness (nanomaggies/arcsec^2) at source-plane positions bx, by (arcsec).

        ``core_radius`` (arcsec, elliptical radius R) replaces the profile inside R < core_radius by its
        mean there, which keeps the flux exact and bounds the cusp of n > 1 profiles for point sampling
        (the renderer uses half its finest cell).  float32 inputs are evaluated in float32.
        """
        bx = np.asarray(bx)
        by = np.asarray(by)
        dtype = np.float32 if (bx.dtype == np.float32 and by.dtype == np.float32) else np.float64
        if self.flux == 0.0:
            return np.zeros(np.broadcast_shapes(bx.shape, by.shape), dtype=dtype)
        if bx.ndim == 0 and by.ndim == 0:  # scalars: the in-place arithmetic needs arrays
            return self._sb_from_rho2(self._rho2(bx.reshape(1), by.reshape(1), dtype), core_radius)[0]
        return self._sb_from_rho2(self._rho2(bx, by, dtype), core_radius)

    def _sb_from_rho2(self, u: np.ndarray, core_radius: float) -> np.ndarray:
        """Surface brightness from (R / r_eff)^2 (overwrites ``u``)."""
        if self.flux == 0.0:
            u[...] = 0.0
            return u
        b = self._b
        n = self.n
        inner = None
        if core_radius > 0.0:
            rho_c = core_radius / self.r_eff
            inner = u < rho_c * rho_c
        if n == 0.5:
            t = u
        elif n == 1.0:
            t = np.sqrt(u, out=u)
        else:
            t = np.power(u, 0.5 / n, out=u)
        t *= -b
        t += b + self._log_amplitude()
        out = np.exp(t, out=t)
        if inner is not None and inner.any():
            frac = float(special.gammainc(2.0 * n, b * rho_c ** (1.0 / n)))
            out[inner] = self.flux * frac / (math.pi * core_radius * core_radius)
        return out
