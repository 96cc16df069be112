"""Source-plane surface-brightness models: elliptical Sersic and interpolated images.

Every source is a surface brightness in nanomaggies per arcsec^2, normalised analytically from its
unlensed total flux (nanomaggies), so that integrating the lensed image over the image plane gives
``flux * magnification``.  Positions are arcsec in the source plane, relative to the lens centre
(x along stamp columns, y along rows).

Common interface used by the renderer (duck-typed):
    ``flux``, ``x``, ``y``, ``with_flux(f)``, ``surface_brightness(bx, by)``,
    ``extent_radius(frac)`` (arcsec from the centre holding ``frac`` of the light along any direction),
    ``min_scale`` (arcsec; smallest length on which the profile changes, for sampling decisions),
    ``non_negative`` (True when the surface brightness is >= 0 everywhere, so its images are too),
    ``needs_refinement(bx, by, h, tol, area)`` and ``evaluate(bx, by, h, tol, core_radius, area, cell)``
    (surface brightness and refinement flags in one pass; ``cell`` is the isotropic source-plane size in
    arcsec of the area each ray stands for, used by sampled images as an anti-aliasing pre-filter width;
    sources that want it set the class attribute ``wants_cell_size = True``, and their values are then
    taken as means over that area, not point samples); optionally ``refinement_levels_per_step``
    (1 or 2, default 2: how many 2x2 levels the renderer's adaptive refinement may take at once) and
    ``smooth_below_refinement`` (default False: True when the light has no structure below the refined
    cells, so the renderer need not follow its sub-cell moments down the whole refinement).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from scipy import ndimage, special

from .scratch import scratch_array

__all__ = ["InterpolatedSource", "SersicSource", "sersic_b_n", "sersic_enclosed_fraction"]


#: grids of at least this many positions take their temporaries from the scratch pool
_SCRATCH_SIZE = 16384
#: refinement is pointless for cells whose estimated error is below this fraction of the total flux
_MIN_CELL_ERROR = 1e-5
#: interpolated templates are refined where a cell is larger than this many (scaled) template pixels.
#: Rays 1.1-1.5 template pixels apart still alias the bilinear surface's kinks through the pre-filter: in
#: 0.65" seeing a compact template (Gaussian, sigma 1.5 pixels) came out 1.25 % of the peak off
#: lenstronomy's INTERPOL at 1.5 (0.83 % at 1.2, 0.43 % at 1.1) and real COSMOS templates 0.59 % (0.34 %
#: at 1.1); 2 left templates at scale ~1.5 0.7 % low at the peak.  (Refining only the bright cells would
#: be cheaper, but the pre-filter follows the cell size, and a filter width that jumps between
#: neighbouring cells does not conserve flux: +0.3-1.9 % on real, noisy cut-outs.)
_TEMPLATE_SAMPLING = 1.1
#: compact templates -- the brightest pixel holds more than _COMPACT_PEAK_FRACTION of the summed flux: a
#: single bright pixel, a few-pixel blob, a Gaussian of sigma < 1.26 pixels -- are refined further, to cells
#: of at most _COMPACT_TEMPLATE_SAMPLING template pixels, over the region where they have light.  The
#: Gaussian pre-filter (sigma 0.35 cell) does not damp the spectrum of such a template enough at the cell
#: grid's frequencies, so a grid of cells 0.3-1 template pixel apart summed a single-pixel template up to
#: 4.5 % off (a Gaussian of sigma 0.7 pixel 0.9 %); cells of <= 1/4 pixel keep both within 0.2 %.  Real galaxy
#: cut-outs (HST COSMOS: <= 0.05) are never compact by this measure and keep the cheaper sampling.
_COMPACT_PEAK_FRACTION = 0.1
_COMPACT_TEMPLATE_SAMPLING = 0.25
#: anti-aliasing: a ray whose source-plane cell has side h samples the template smoothed by a Gaussian of
#: sigma = _ALIAS_SIGMA * h.  The renderer divides the cell box's transfer function out of the cell fluxes,
#: so a filter with the box's own variance (h / sqrt(12) = 0.29 h) would add no net blur; a little more
#: damps aliasing.  Measured on real COSMOS templates (tests/core/test_antialias.py, test_render.py):
#: 0.35 h keeps the unlensed total within 0.3 % at every supersampling and scale and images in 0.65"
#: seeing within 0.6 % of the peak; 0.6 h keeps the total within 0.15 % but blurs compact templates by up
#: to 1.9 % of the peak.
_ALIAS_SIGMA = 0.35
#: Gauss-Legendre nodes per angular interval of SersicSource.integrate_centre_cells
_CENTRE_NODES = 8
_CENTRE_RULE = np.polynomial.legendre.leggauss(_CENTRE_NODES)
#: Jacobian of a cell's lens map from its 2x2 Gauss-Legendre rays (times 1/h): rays at (-,-), (+,-), (-,+),
#: (+,+) x h / (2 sqrt 3), so d/dx = sqrt(3)/2 (-b0 + b1 - b2 + b3) / h, and d/dy likewise
_CELL_JACOBIAN = 0.5 * math.sqrt(3.0) * np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
#: b0 - b1 - b2 + b3: zero when the lens map is affine over the cell
_CELL_BEND = np.array([1.0, -1.0, -1.0, 1.0])
_UNIT_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
#: Gaussian widths (template pixels) of the pre-filtered template levels; intermediate widths blend the
#: two neighbouring levels linearly in variance (level 0 is the unfiltered template).  Dense where the renderer works
#: (cells of <= 1.1 template pixels want sigma <= 0.39): a blend of two Gaussians is close to the Gaussian
#: in between only when their widths are close, and a blend with the unfiltered level barely filters.
_FILTER_SIGMAS = (0.0, 0.25, 0.35, 0.5, 0.6, 0.7071, 0.85, 1.0, 1.4142, 2.0)
_FILTER_VARIANCES = np.square(_FILTER_SIGMAS)
#: samples per template pixel (per axis) of the pre-filtered levels.  Bilinear interpolation on the level
#: grid adds spectral replicas at multiples of this many times the template's sampling frequency, which
#: cells smaller than a template pixel alias back onto the flux: on a half-pixel grid (2) a compact template
#: (Gaussian, sigma 0.7 template pixels of 0.1") summed to 2.2 % off on the renderer's cells, on a
#: quarter-pixel grid 0.3 % (the filtered surface evaluated exactly: 0.07-0.35 %).  Finer grids cost S^2 memory
#: and build time per template.
_LEVEL_STEPS = 4


def _hat_gaussian_taps(sigma: float, steps: int = _LEVEL_STEPS) -> np.ndarray:
    """Samples at 1/steps-pixel steps of the bilinear hat (x) a Gaussian of ``sigma`` (template pixels).

    The hat is the bilinear interpolation kernel, max(0, 1 - |x|); convolved with a Gaussian g it is
    F(x + 1) - 2 F(x) + F(x - 1) with F(u) = u Phi(u / sigma) + sigma phi(u / sigma), the second
    antiderivative of g.  Returns taps at x = m / steps, m = -M..M; the taps of each phase (m modulo
    steps) sum to 1 (a partition of unity: no flux is gained or lost).
    """
    m = math.ceil(steps * (1.0 + 4.0 * sigma))
    x = np.arange(-m, m + 1, dtype=np.float64) / steps
    if sigma == 0.0:
        taps = np.maximum(0.0, 1.0 - np.abs(x))
    else:

        def antiderivative2(u: np.ndarray) -> np.ndarray:
            z = u / sigma
            return u * special.ndtr(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

        taps = antiderivative2(x + 1.0) - 2.0 * antiderivative2(x) + antiderivative2(x - 1.0)
    # (renormalise each phase: the Gaussian's tails beyond 4 sigma are dropped)
    phase = np.arange(-m, m + 1) % steps
    for k in range(steps):
        taps[phase == k] /= taps[phase == k].sum()
    return taps


@functools.lru_cache(maxsize=64)
def _level_transfers(shape: tuple[int, int], lo: int, hi: int) -> np.ndarray:
    """(hi - lo + 1, H, W // 2 + 1) complex64 transfer functions (real FFT layout) of the band-limited
    levels lo..hi (template_render.LEVEL_SIGMAS) on a periodic (H, W) grid: the bilinear hat (x) Gaussian
    taps of each level, separable; read-only, cached per grid shape."""
    from .template_render import LEVEL_SIGMAS

    out = []
    for k in range(lo, hi + 1):
        taps = _hat_gaussian_taps(LEVEL_SIGMAS[k], steps=1)
        m = (taps.size - 1) // 2
        ty = np.zeros(shape[0])
        tx = np.zeros(shape[1])
        np.add.at(ty, np.arange(-m, m + 1) % shape[0], taps)
        np.add.at(tx, np.arange(-m, m + 1) % shape[1], taps)
        out.append(sfft.fft(ty)[:, None] * sfft.rfft(tx)[None, :])
    arr = np.array(out, dtype=np.complex64)
    arr.setflags(write=False)
    return arr


def _upsample_filter(a: np.ndarray, taps: np.ndarray, steps: int, axis: int, out=None) -> np.ndarray:
    """``a`` zero-inserted ``steps``-fold along ``axis`` (length steps (n - 1) + 1) and correlated with ``taps``.

    ``taps`` (odd length, centred) are on the fine grid.  Computed per output phase q (fine index
    steps i + q) from the taps that meet non-zero samples -- every steps-th one -- instead of correlating
    the zero-inserted array, which would spend (steps - 1) / steps of the work on zeros.  Samples beyond
    the ends of ``a`` count as zero.  ``out``: optional array of the result's shape to fill (any float
    dtype; the sums are formed in float64).
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[axis]
    m = (taps.size - 1) // 2
    shape = list(a.shape)
    shape[axis] = steps * (n - 1) + 1
    if out is None:
        out = np.empty(shape, dtype=np.float64)
    fine = np.moveaxis(out, axis, 0)  # a view: filling it fills ``out``
    for q in range(steps):
        # fine index steps i + q + k (k = -m..m) is coarse sample i + j when k = steps j - q: the taps of
        # this phase, as a centred odd-length filter over j = -reach..reach
        reach = (m + q) // steps + 1
        sub = np.zeros(2 * reach + 1, dtype=np.float64)
        for j in range(-reach, reach + 1):
            k = steps * j - q
            if -m <= k <= m:
                sub[j + reach] = taps[k + m]
        phase = ndimage.correlate1d(a, sub, axis=axis, mode="constant")
        count = fine[q::steps].shape[0]
        fine[q::steps] = np.moveaxis(phase, axis, 0)[:count]
    return out


def sersic_b_n(n: float) -> float:
    """Exact Sersic b_n: Gamma(2n) * P(2n, b_n) = Gamma(2n) / 2, i.e. gammaincinv(2n, 0.5)."""
    return float(special.gammaincinv(2.0 * float(n), 0.5))


def sersic_enclosed_fraction(r_over_reff: np.ndarray | float, n: float) -> np.ndarray:
    """Fraction of a Sersic profile's flux inside elliptical radius r (in units of r_eff)."""
    b = sersic_b_n(n)
    r = np.asarray(r_over_reff, dtype=np.float64)
    return special.gammainc(2.0 * n, b * r ** (1.0 / n))


def _finite(name: str, cls: str, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{cls}.{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{cls}.{name} must be finite, got {value!r}")
    return out


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
            object.__setattr__(self, name, _finite(name, "SersicSource", getattr(self, name)))
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

    def extent_radius(self, frac: float = 0.999) -> float:
        """Semi-major radius (arcsec) of the isophote enclosing ``frac`` of the flux."""
        r = self.r_eff * (float(special.gammaincinv(2.0 * self.n, frac)) / self.b_n) ** self.n
        return r / math.sqrt(self.q)

    def with_flux(self, flux: float) -> SersicSource:
        """Copy with a different total flux (nanomaggies), sharing the shape's derived constants."""
        flux = _finite("flux", "SersicSource", flux)
        if flux < 0:
            raise ValueError(f"SersicSource.flux must be >= 0 nanomaggies, got {flux}")
        new = copy.copy(self)
        object.__setattr__(new, "flux", flux)
        return new

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
        self,
        bx: np.ndarray,
        by: np.ndarray,
        h,
        tol: float,
        core_radius: float = 0.0,
        area=None,
        cell=None,
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
        """needs_refinement at elliptical radii rho = R / r_eff for cells of side h (scalar or per point).

        ``centre_reach``: cells whose nearest point lies within this many half-diagonals of the centre
        count as cells at the profile's centre (0: only the cell holding it).
        """
        n = self.n
        b = self._b
        rho_max = self._rho_max
        half_diag = 0.7072 * h / self.min_scale  # cell half-diagonal in units of the minor-axis r_eff
        rho_min = np.maximum(rho - half_diag, 0.0)
        scale = (h / self.r_eff) ** 2 / 24.0

        k = b / n
        m = 1.0 / n - 1.0

        def curvature(r: np.ndarray) -> np.ndarray:
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
        if m <= 0.0:
            # (n >= 1: the curvature decreases outwards, so the larger of the two is at the smaller radius)
            err = curvature(np.minimum(rho, nearest))
        else:
            err = np.maximum(curvature(rho), curvature(nearest))
        err *= scale
        err = np.where(rho_min > 0.0, err, np.maximum(err, 0.5 * b * (2.0 * half_diag) ** (1.0 / n)))
        # brightest possible fraction of the total flux in one cell (surface brightness at rho_min);
        # a cell's relative error cannot usefully exceed 1
        cell_frac = np.exp(self._log_unit_amp + b - b * rho_min ** (1.0 / n)) * (
            h * h if area is None else area
        )
        over = err > tol
        if n != 0.5:
            # the centre of any n != 0.5 profile is singular (exp(-b rho^(1/n)) has an unbounded second
            # derivative there: a cusp for n > 1, a kink at n = 1): the error of cells at it and next to
            # it is not of the second order that ``tol`` assumes (up to 4 % per cell).  Refine
            # them until the flux they could get wrong is negligible; at the finest level they are
            # integrated exactly (integrate_centre_cells)
            over |= rho_min <= centre_reach * half_diag
        return over & (rho_min < rho_max) & (np.minimum(err, 1.0) * cell_frac > _MIN_CELL_ERROR)

    def _refinement_table(self, h: float, tol: float, area: float | None = None) -> tuple[np.ndarray, float]:
        """needs_refinement for one cell size, tabulated on bins of rho = R / r_eff (conservative per bin)."""
        key = (h, tol, area)
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        if len(self._tables) > 64:
            self._tables.clear()
        top = self._rho_max + 0.7072 * h / self.min_scale
        n_bins = 512  # (a table per new source and cell size: 2048 bins cost 4 % of a render, no accuracy)
        step = top / (n_bins - 1)
        edges = np.arange(n_bins + 1) * step
        # (on the base grid the Laplacian-corrected cells next to the centre are off too: up to 4 %)
        flag = self._refinement_flags(edges, h, tol, area, centre_reach=1.0)
        table = flag[:-1] | flag[1:]
        table[-1] = False  # beyond rho_max + half-diagonal nothing is flagged
        table.setflags(write=False)
        self._tables[key] = (table, step)
        return table, step

    def integrate_centre_cells(self, bx: np.ndarray, by: np.ndarray, h: float, means: np.ndarray) -> None:
        """Exact mean surface brightness of the image-plane cells around the profile's centre (in place).

        Args:
            bx, by: (n, 4) source-plane positions (arcsec) of each square cell's 2x2 Gauss-Legendre
                points, at offsets (-g, -g), (+g, -g), (-g, +g), (+g, +g) with g = h / (2 sqrt 3).
            h: image-plane cell side, arcsec.
            means: (n,) cell means (nanomaggies/arcsec^2), overwritten for the cells treated.

        A Gauss-Legendre rule cannot integrate the centre of a Sersic with n != 0.5 (singular there; a cusp
        for n > 1: the profile changes by a large factor across any cell that holds it), whatever the cell
        size the refinement reaches; unlensed n = 4 sources with r_eff = 0.02-0.05 arcsec lost up to 1 %
        of their flux that way.  For cells whose lens map is affine (judged from the four rays) and whose
        centre lies within two cells (|dx| + |dy| < 2 h) of the centre's image, the integral is done in
        polar coordinates about that image: along a direction phi the profile depends on the radius r
        only through rho = r m(phi), so the radial integral is the Sersic enclosed flux,
        F / (2 pi r_eff^2) P(2n, b rho^(1/n)) / m(phi)^2 (P the regularised incomplete gamma function);
        the angular integral uses Gauss-Legendre nodes between the directions of the cell's corners, where
        the integrand is smooth.
        """
        if self.flux == 0.0 or self.n == 0.5 or bx.shape[0] == 0:
            return  # (n = 0.5, a Gaussian, is smooth at its centre)
        # skip when Gauss-Legendre is good enough: the ~9 cells treated here could get wrong at most
        # their flux (central surface brightness x h^2) times the profile's relative change across a
        # cell (its source-plane image taken <= 2 h, i.e. magnification >= 1/4), as in the refinement gate
        change = 0.5 * self._b * (2.0 * 0.7072 * 2.0 * h / self.min_scale) ** (1.0 / self.n)
        if 9.0 * math.exp(self._log_unit_amp + self._b) * h * h * min(change, 1.0) < _MIN_CELL_ERROR:
            return
        # cheap preselection: cells whose first ray lies within a few cell images of the centre
        ex = bx[:, 1] - bx[:, 0]
        ey = by[:, 1] - by[:, 0]
        fx = bx[:, 2] - bx[:, 0]
        fy = by[:, 2] - by[:, 0]
        reach = np.maximum(ex * ex + ey * ey, fx * fx + fy * fy)
        reach *= 3.5**2 * 3.0  # (3.5 cells; the ray spacing is h / sqrt 3)
        cx = bx[:, 0] - self.x
        cy = by[:, 0] - self.y
        sel = np.flatnonzero(cx * cx + cy * cy <= reach)
        if sel.size == 0:
            return
        pts = np.stack((bx[sel], by[sel]), axis=1).astype(np.float64)  # (k, 2, 4)
        jac = pts @ (_CELL_JACOBIAN / h)  # (k, 2, 2): d beta_a / d x_j
        j00, j01, j10, j11 = jac[:, 0, 0], jac[:, 0, 1], jac[:, 1, 0], jac[:, 1, 1]
        det = j00 * j11 - j01 * j10
        size = (np.abs(j00) + np.abs(j01) + np.abs(j10) + np.abs(j11)) * h
        bend = np.abs(pts @ _CELL_BEND).sum(axis=1)  # zero for an affine map
        # the centre's image in cell-local image-plane coordinates (inverse of the 2x2 Jacobian)
        dx = self.x - 0.25 * pts[:, 0].sum(axis=1)
        dy = self.y - 0.25 * pts[:, 1].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ux = (j11 * dx - j01 * dy) / det
            uy = (j00 * dy - j10 * dx) / det
        half = 0.5 * h
        near = np.flatnonzero(
            (np.abs(ux) + np.abs(uy) < 4.0 * half) & (bend < 5e-3 * size) & (det != 0.0)
        )
        if near.size == 0:
            return
        ux, uy, jac = ux[near], uy[near], jac[near]
        ox, oy, r_in, r_out, halfw = centre_cell_rays(ux, uy, half)
        weights = _CENTRE_RULE[1]
        # elliptical radius (units of r_eff) per unit image-plane distance along phi
        mat = self._ellipse_matrix() @ jac  # (k, 2, 2)
        su = mat[:, 0, 0, None, None] * ox + mat[:, 0, 1, None, None] * oy
        sv = mat[:, 1, 0, None, None] * ox + mat[:, 1, 1, None, None] * oy
        m2 = su * su + sv * sv
        x = np.stack((r_out, r_in)) * np.sqrt(m2)
        enclosed = special.gammainc(2.0 * self.n, self._b * x ** (1.0 / self.n))
        total = ((enclosed[0] - enclosed[1]) / m2 * (halfw[..., None] * weights)).sum(axis=(1, 2))
        means[sel[near]] = (self.flux / (2.0 * math.pi * self.r_eff**2 * h * h)) * total

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


@dataclass(frozen=True, eq=False)
class InterpolatedSource:
    """A source image interpolated bilinearly, treated as a surface brightness.

    Attributes:
        template: 2-D image of the source (any normalisation; only its shape matters), rows along y.
        template_pixscale: template pixel size, arcsec.
        flux: total unlensed flux to render, nanomaggies (preserved for any scale/angle/pixscale).
        x, y: source-plane position of the template centre (pixel (ny-1)/2, (nx-1)/2), arcsec.
        angle: counter-clockwise rotation (from +x towards +y), radians.
        scale: size magnification of the template (> 0); the effective pixel is scale * template_pixscale.

    Pixel values are treated as samples of the surface brightness at pixel centres with a zero border,
    exactly like lenstronomy's ``INTERPOL`` with bilinear interpolation; the integral of the bilinear
    surface is the sum of the samples times the pixel area, which fixes the normalisation.

    Anti-aliasing: the renderer samples the template at ray positions whose source-plane spacing h can be
    comparable to the template pixel, which aliases (the summed flux then drifts by up to ~1 %, more for
    compact templates).  When a cell size h is given (``evaluate``), the template's continuous bilinear
    surface is sampled after smoothing by a unit-sum Gaussian of sigma = 0.35 h (close to the variance of
    the cell's box, h / sqrt(12), which the renderer divides out; pre-filtered levels on a quarter-pixel
    grid, blended linearly in variance), so every grid of rays integrates real galaxy templates' flux to
    ~0.1 % (compact or noise-like templates to ~0.2 %, Nyquist-sampled Gaussians of sigma 1.3-1.5 pixels
    coarser than the cells to ~0.2 %).  Templates whose brightest pixel holds more than a tenth of the flux
    (a single pixel, a Gaussian of sigma < 1.26 pixels), which that filter does not damp enough, are refined
    to quarter-pixel cells where they have light (~0.3 %; up to 4.5 % off without).
    ``surface_brightness`` without a cell size samples the unfiltered surface.
    """

    template: np.ndarray
    template_pixscale: float
    flux: float
    x: float = 0.0
    y: float = 0.0
    angle: float = 0.0
    scale: float = 1.0
    _padded: np.ndarray = field(init=False, repr=False)
    #: the renderer passes each ray's source-plane cell size (``cell``) for the anti-aliasing pre-filter
    wants_cell_size = True
    #: refine one 2x2 level at a time: the criterion (cells <= 1.1 template pixels) covers the whole
    #: template, so the cost is per ray and overshooting it by a level would cost 4x the rays
    refinement_levels_per_step = 1
    #: the refinement samples the template to <= 1.1 template pixels, below which its bilinear surface is
    #: smooth: the renderer carries the sub-cell moments of its light one refinement step only
    smooth_below_refinement = True

    def __post_init__(self) -> None:
        tpl = np.asarray(self.template, dtype=np.float64)
        if tpl.ndim != 2 or min(tpl.shape) < 2:
            raise ValueError(
                f"InterpolatedSource.template must be a 2-D image at least 2x2, got shape {tpl.shape}"
            )
        if not np.all(np.isfinite(tpl)):
            raise ValueError("InterpolatedSource.template contains NaN or inf pixels")
        total = float(tpl.sum())
        if not total > 0:
            raise ValueError(f"InterpolatedSource.template must have a positive sum, got {total}")
        for name in ("template_pixscale", "flux", "x", "y", "angle", "scale"):
            object.__setattr__(self, name, _finite(name, "InterpolatedSource", getattr(self, name)))
        if self.template_pixscale <= 0:
            raise ValueError(
                f"InterpolatedSource.template_pixscale must be > 0 arcsec, got {self.template_pixscale}"
            )
        if self.scale <= 0:
            raise ValueError(f"InterpolatedSource.scale must be > 0, got {self.scale}")
        if self.flux < 0:
            raise ValueError(f"InterpolatedSource.flux must be >= 0 nanomaggies, got {self.flux}")
        # border of zeros wide enough for the widest pre-filter (4 sigma) plus the bilinear zero ring
        border = 1 + math.ceil(4.0 * _FILTER_SIGMAS[-1])
        padded = np.zeros((tpl.shape[0] + 2 * border, tpl.shape[1] + 2 * border), dtype=np.float64)
        padded[border:-border, border:-border] = tpl / total
        object.__setattr__(self, "template", tpl)
        object.__setattr__(self, "_border", border)
        object.__setattr__(self, "_padded", padded)
        object.__setattr__(self, "_padded32", padded.astype(np.float32))
        object.__setattr__(self, "_non_negative", bool(tpl.min() >= 0.0))
        # refinement: largest cell (template pixels) and, for compact templates, the distance (template
        # pixels) from the centre of the farthest pixel above 1e-6 of the brightest (None: refine anywhere
        # on the padded template)
        peak = float(np.abs(tpl).max())
        reach = None
        if peak > _COMPACT_PEAK_FRACTION * total:
            rows, cols = np.nonzero(np.abs(tpl) > 1e-6 * peak)
            reach = float(np.hypot(rows - 0.5 * (tpl.shape[0] - 1), cols - 0.5 * (tpl.shape[1] - 1)).max())
        object.__setattr__(
            self, "_sampling", _TEMPLATE_SAMPLING if reach is None else _COMPACT_TEMPLATE_SAMPLING
        )
        object.__setattr__(self, "_light_reach", reach)
        # pre-filtered levels, built on first use and shared by with_flux copies
        object.__setattr__(self, "_levels", {})

    @property
    def pixel_size(self) -> float:
        """Effective template pixel in the source plane, arcsec (scale * template_pixscale)."""
        return self.scale * self.template_pixscale

    @property
    def min_scale(self) -> float:
        """Smallest length the renderer must resolve, arcsec: the pixel, or a quarter of it for compact
        templates (see _COMPACT_PEAK_FRACTION)."""
        return self.pixel_size * min(1.0, self._sampling / _TEMPLATE_SAMPLING)

    @property
    def non_negative(self) -> bool:
        """True when no template pixel is negative (real galaxy cut-outs may carry negative noise)."""
        return self._non_negative

    def extent_radius(self, frac: float = 0.999) -> float:
        """Radius (arcsec) of the circle holding the whole (pre-filtered) template (``frac`` is ignored)."""
        ny, nx = self._padded.shape
        return 0.5 * math.hypot(nx, ny) * self.pixel_size

    def with_flux(self, flux: float) -> InterpolatedSource:
        """Copy with a different total flux (nanomaggies), sharing the template arrays."""
        flux = _finite("flux", "InterpolatedSource", flux)
        if flux < 0:
            raise ValueError(f"InterpolatedSource.flux must be >= 0 nanomaggies, got {flux}")
        new = copy.copy(self)
        object.__setattr__(new, "flux", flux)
        return new

    def needs_refinement(self, bx: np.ndarray, by: np.ndarray, h, tol: float = 0.02, area=None) -> np.ndarray:
        """Mask of positions on the template whose cells (side ``h``) exceed 1.1 template pixels.

        (Measured: coarser cells, even integrated with 2x2 Gauss-Legendre points, lose up to 0.8 % of the
        flux of real COSMOS templates.)  Compact templates (see _COMPACT_PEAK_FRACTION) ask for cells of a
        quarter pixel where they have light.  ``tol`` and ``area`` are accepted for interface compatibility.
        """
        shape = np.broadcast_shapes(np.shape(bx), np.shape(by))
        h = np.asarray(h, dtype=np.float64)
        limit = self._sampling * self.pixel_size
        if np.all(h <= limit):
            return np.zeros(shape, dtype=bool)
        dx = np.subtract(bx, self.x)
        dy = np.subtract(by, self.y)
        if self._light_reach is None:
            r = self.extent_radius() + h
        else:
            # cells farther out sample pre-filtered levels that are zero there: the light, its bilinear
            # support and a spare pixel, plus the cell's half-diagonal and its pre-filter's 4 sigma (1.4 h)
            r = (self._light_reach + 2.0) * self.pixel_size + 2.2 * h
        return (dx * dx + dy * dy < r * r) & (h > limit)

    def evaluate(
        self,
        bx: np.ndarray,
        by: np.ndarray,
        h,
        tol: float,
        core_radius: float = 0.0,
        area=None,
        cell=None,
    ):
        """(anti-aliased surface_brightness, needs_refinement(bx, by, h, tol)).

        ``h``: longest source-plane side of each position's cell (arcsec, scalar or per position), which
        decides refinement; ``cell``: the cell's isotropic size for the anti-aliasing pre-filter (arcsec,
        default ``h``), e.g. the square root of its source-plane area, so that cells stretched by the lens
        are not blurred along their short side.
        """
        flags = self.needs_refinement(bx, by, h, tol)
        # flagged positions are refined by the renderer, which discards their values: skipping them also
        # spares building the wide pre-filter levels that only such coarse cells would ask for
        skip = flags if flags.any() else None
        return self.surface_brightness(bx, by, cell=h if cell is None else cell, skip=skip), flags

    # --- band-limited templates (dhs.core.template_render) --------------------------------------------
    @property
    def band_limited(self) -> bool:
        """True when the template has no structure at its pixel scale (template_render.is_band_limited):
        its lensed cell fluxes then come from dhs.core.template_render, without adaptive refinement."""
        flag = self._levels.get("band_limited")
        if flag is None:
            from .template_render import is_band_limited

            flag = is_band_limited(self.template)
            self._levels["band_limited"] = flag
        return flag

    def band_limited_grid_flux(self, lens, x1: np.ndarray, y1: np.ndarray, h: float, skip=None):
        """Cell fluxes of dhs.core.template_render.band_limited_grid_flux, or None when the template is
        not band-limited (the renderer then refines adaptively)."""
        if not self.band_limited or self.pixel_size > h:
            # (templates coarser than the cells need levels finer than their pixels: adaptive renderer)
            return None
        from .template_render import band_limited_grid_flux

        return band_limited_grid_flux(lens, self, x1, y1, h, skip)

    def light_radius_pixels(self) -> float:
        """Distance (template pixels) from the template centre to its farthest non-zero pixel."""
        r = self._levels.get("light_radius")
        if r is None:
            rows, cols = np.nonzero(self.template)
            ny, nx = self.template.shape
            r = float(np.hypot(rows - 0.5 * (ny - 1), cols - 0.5 * (nx - 1)).max()) if rows.size else 0.0
            self._levels["light_radius"] = r
        return r

    def band_limited_levels(self, top: int) -> np.ndarray:
        """(n_levels, H, W) float32 unit-sum template on a zero border, smoothed by the Gaussians of
        template_render.LEVEL_SIGMAS (template pixels; the continuous bilinear surface convolved with each,
        sampled at the pixel centres); levels 0..``top`` are built (on first use, one inverse FFT each, and
        shared by with_flux copies)."""
        from .template_render import LEVEL_SIGMAS

        store = self._levels
        stack = store.get("bl_stack")
        if stack is None:
            border = 2 + math.ceil(4.0 * LEVEL_SIGMAS[-1])
            ny, nx = self.template.shape
            shape = (ny + 2 * border, nx + 2 * border)
            stack = np.empty((len(LEVEL_SIGMAS),) + shape, dtype=np.float32)
            stack[0] = 0.0
            stack[0, border:-border, border:-border] = self.template / self.template.sum()
            store["bl_stack"] = stack
            store["bl_spec"] = sfft.rfft2(stack[0])  # (complex64)
            store["bl_built"] = 0
        lo, top = store["bl_built"] + 1, min(top, len(LEVEL_SIGMAS) - 1)
        if top >= lo:
            spec = store["bl_spec"] * _level_transfers(stack.shape[1:], lo, top)
            stack[lo : top + 1] = sfft.irfft2(spec, s=stack.shape[1:])
            store["bl_built"] = top
        return stack

    # --- pre-filtered levels ---------------------------------------------------------------------
    def _level_stack(self, dtype, k_lo: int, k_hi: int) -> np.ndarray:
        """(n_levels, S (NY - 1) + 1, S (NX - 1) + 1) pre-filtered templates; levels k_lo..k_hi built.

        Level k holds samples, on a grid S = _LEVEL_STEPS times finer than the template's pixels (index
        S i is padded pixel i), of the continuous bilinear surface convolved with a Gaussian of
        _FILTER_SIGMAS[k] template pixels; bilinear interpolation on that finer grid reproduces it closely
        (exactly for level 0).  Filtering the pixel values instead would not do: such a filter's transfer
        function is periodic in the template's sampling frequency, so it passes the bilinear surface's
        spectral replicas around multiples of that frequency, which is where rays spaced ~1-1.5 template
        pixels alias (the summed flux of compact templates would be off by up to 3 %).  Levels are built on first
        use (the renderer's cells need only the first few) and shared by with_flux copies.
        """
        key = np.dtype(dtype).name
        built = self._levels.setdefault("built " + key, set())
        if key not in self._levels:
            ny, nx = self._padded.shape
            shape = (len(_FILTER_SIGMAS), _LEVEL_STEPS * (ny - 1) + 1, _LEVEL_STEPS * (nx - 1) + 1)
            self._levels[key] = np.empty(shape, dtype=dtype)
        stack = self._levels[key]
        for k in range(k_lo, k_hi + 1):
            if k not in built:
                self._fine_level(k, out=stack[k])
                built.add(k)
        return stack

    def _fine_level(self, k: int, out=None) -> np.ndarray:
        """Level k of _level_stack (separable: rows, then columns; sums in float64), into ``out``."""
        taps = _hat_gaussian_taps(_FILTER_SIGMAS[k])
        rows = _upsample_filter(self._padded, taps, _LEVEL_STEPS, axis=0)
        return _upsample_filter(rows, taps, _LEVEL_STEPS, axis=1, out=out)

    @staticmethod
    def _level_position(sigma_pix: np.ndarray | float):
        """Fractional index into _FILTER_SIGMAS for a wanted Gaussian sigma (template pixels).

        Linear in the variance: a blend w S_b + (1 - w) S_a of two Gaussian-smoothed surfaces equals, to
        second order, the surface smoothed by the variance w sb^2 + (1 - w) sa^2.  (Blending linearly in
        sigma smoothed small cells far too much -- between the unfiltered level and the first, a variance
        growing like sigma instead of sigma^2 -- which biased lensed totals, where cells are small and
        magnification-weighted, by an amount falling only like the cell size: -0.6 % at supersampling 3
        for a compact template.)
        """
        sig2 = np.square(sigma_pix)
        return np.interp(sig2, _FILTER_VARIANCES, np.arange(len(_FILTER_SIGMAS), dtype=np.float64))

    def surface_brightness(
        self, bx: np.ndarray, by: np.ndarray, core_radius: float = 0.0, cell=None, skip=None
    ) -> np.ndarray:
        """Surface brightness (nanomaggies/arcsec^2) at source-plane positions (arcsec).

        ``cell``: source-plane size (arcsec) of the cell each position stands for, scalar or one per
        position; the template is then smoothed by a Gaussian of sigma 0.35 * cell (anti-aliasing).
        None samples the unfiltered bilinear surface.  ``core_radius`` is accepted for interface
        compatibility and ignored (templates have no cusp).  Rays off the template, and positions where
        the boolean mask ``skip`` (broadcast like bx, by) is True -- values the caller does not need --
        are returned as zero without interpolating.
        """
        bx = np.asarray(bx)
        by = np.asarray(by)
        dtype = np.float32 if (bx.dtype == np.float32 and by.dtype == np.float32) else np.float64
        shape = np.broadcast_shapes(bx.shape, by.shape)
        out = np.zeros(shape, dtype=dtype)
        if self.flux == 0.0:
            return out
        pix = self.pixel_size
        ny, nx = self._padded.shape
        cs = math.cos(self.angle) / pix
        sn = math.sin(self.angle) / pix
        dx = np.subtract(bx, self.x, dtype=dtype)
        dy = np.subtract(by, self.y, dtype=dtype)
        # coordinates in the padded array, whose centre is at ((n - 1) / 2)
        col = dx * cs
        col += dy * sn
        col += 0.5 * (nx - 1)
        row = dy * cs
        row -= dx * sn
        row += 0.5 * (ny - 1)
        inside = (col >= 0.0) & (col < nx - 1.0) & (row >= 0.0) & (row < ny - 1.0)
        if skip is not None:
            inside &= ~np.broadcast_to(skip, shape)
        idx = np.flatnonzero(inside)
        if idx.size == 0:
            return out
        c = col.reshape(-1)[idx]
        r = row.reshape(-1)[idx]
        if cell is None:
            val = self._bilinear((self._padded32 if dtype == np.float32 else self._padded), c, r)
        else:
            # pre-filtered levels live on a grid _LEVEL_STEPS times finer
            c *= float(_LEVEL_STEPS)
            r *= float(_LEVEL_STEPS)
            top = len(_FILTER_SIGMAS) - 2
            if np.ndim(cell) == 0:
                t = float(self._level_position(_ALIAS_SIGMA * float(cell) / pix))
                k = min(int(t), top)
                w = t - k
                stack = self._level_stack(dtype, k, k + 1 if w > 0.0 else k)
                val = self._bilinear(stack[k], c, r)
                if w > 0.0:
                    val *= 1.0 - w
                    val += w * self._bilinear(stack[k + 1], c, r)
            else:
                h = np.broadcast_to(np.asarray(cell, dtype=np.float64), shape).reshape(-1)[idx]
                t = self._level_position(h * (_ALIAS_SIGMA / pix))
                k = np.minimum(t.astype(np.intp), top)
                w = (t - k).astype(dtype)
                stack = self._level_stack(dtype, int(k.min()), int(k.max()) + 1)
                v0, v1 = self._bilinear(stack, c, r, level=k, pair=True)
                v1 -= v0
                v1 *= w
                val = v0 + v1
        val *= self.flux / (pix * pix)
        out.reshape(-1)[idx] = val
        return out

    @staticmethod
    def _bilinear(img: np.ndarray, c: np.ndarray, r: np.ndarray, level=None, pair: bool = False):
        """Bilinear interpolation of ``img`` (2-D, or a stack of levels) at column c, row r (in its pixels).

        Positions must lie inside [0, width - 1) x [0, height - 1).  With a stack, ``level`` gives each
        position's level; ``pair=True`` returns the values on that level and on the next one.
        """
        height, width = img.shape[-2:]
        c0 = np.floor(c)
        r0 = np.floor(r)
        fx = c - c0
        fy = r - r0
        flat = r0.astype(np.intp)
        flat *= width
        flat += c0.astype(np.intp)
        if level is not None:
            flat += level * (height * width)
        img = img.reshape(-1)

        def at(base):
            v00 = img[base]
            v01 = img[base + 1]
            v10 = img[base + width]
            v11 = img[base + width + 1]
            v01 -= v00
            v01 *= fx
            v00 += v01
            v11 -= v10
            v11 *= fx
            v10 += v11
            v10 -= v00
            v10 *= fy
            v00 += v10
            return v00

        if pair:
            return at(flat), at(flat + height * width)
        return at(flat)
