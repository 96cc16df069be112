"""The interpolated source: a template image (e.g. an HST COSMOS galaxy) as a surface brightness.

Surface brightness in nanomaggies per arcsec^2, normalised from the unlensed total flux (nanomaggies);
positions in arcsec in the source plane, relative to the lens centre.  InterpolatedSource satisfies
dhs.core.source_profile.SourceProfile.  Its anti-aliasing pre-filter levels are dhs.core.template_levels;
smooth (band-limited) templates are rendered by dhs.core.template_render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .source_profile import finite_field, replace_flux
from .template_levels import (
    FILTER_SIGMAS,
    LEVEL_STEPS,
    band_limited_stack,
    bilinear,
    level_position,
    level_stack,
)
from .template_render import band_limited_grid_flux, is_band_limited

__all__ = ["InterpolatedSource"]

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
    #: the renderer passes each ray's source-plane cell size (``cell``) for the anti-aliasing pre-filter
    wants_cell_size = True
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
            object.__setattr__(self, name, finite_field(name, "InterpolatedSource", getattr(self, name)))
        if self.template_pixscale <= 0:
            raise ValueError(
                f"InterpolatedSource.template_pixscale must be > 0 arcsec, got {self.template_pixscale}"
            )
        if self.scale <= 0:
            raise ValueError(f"InterpolatedSource.scale must be > 0, got {self.scale}")
        if self.flux < 0:
            raise ValueError(f"InterpolatedSource.flux must be >= 0 nanomaggies, got {self.flux}")
        # border of zeros wide enough for the widest pre-filter (4 sigma) plus the bilinear zero ring
        border = 1 + math.ceil(4.0 * FILTER_SIGMAS[-1])
        object.__setattr__(self, "template", tpl)
        object.__setattr__(self, "_border", border)
        object.__setattr__(self, "_total", total)
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
        ny, nx = self._padded_shape
        return 0.5 * math.hypot(nx, ny) * self.pixel_size

    @property
    def _padded_shape(self) -> tuple[int, int]:
        """(rows, cols) of the template on its border of zeros."""
        return self.template.shape[0] + 2 * self._border, self.template.shape[1] + 2 * self._border

    def _padded(self, dtype=np.float64) -> np.ndarray:
        """The unit-sum template on its border of zeros (float64 or float32), built on first use (the
        band-limited path never needs it) and kept with the levels."""
        key = "padded " + np.dtype(dtype).name
        arr = self._levels.get(key)
        if arr is None:
            b = self._border
            arr = np.zeros(self._padded_shape, dtype=dtype)
            arr[b:-b, b:-b] = self.template / self._total
            self._levels[key] = arr
        return arr

    def with_flux(self, flux: float) -> InterpolatedSource:
        """Copy with a different total flux (nanomaggies), sharing the template arrays."""
        return replace_flux(self, flux)

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
        self, bx: np.ndarray, by: np.ndarray, h, tol: float, core_radius: float = 0.0, area=None, cell=None
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

    def integrate_centre_cells(self, bx: np.ndarray, by: np.ndarray, h: float, means: np.ndarray) -> None:
        """Nothing to do: a template has no singular point, its 2x2 Gauss-Legendre cell means stand."""

    # --- band-limited templates (dhs.core.template_render) --------------------------------------------
    @property
    def band_limited(self) -> bool:
        """True when the template has no structure at its pixel scale (template_render.is_band_limited):
        its lensed cell fluxes then come from dhs.core.template_render, without adaptive refinement."""
        flag = self._levels.get("band_limited")
        if flag is None:
            flag = is_band_limited(self.template)
            self._levels["band_limited"] = flag
        return flag

    def band_limited_grid_flux(self, lens, x1: np.ndarray, y1: np.ndarray, h: float, skip=None):
        """Cell fluxes of dhs.core.template_render.band_limited_grid_flux, or None when the template is
        not band-limited (the renderer then refines adaptively)."""
        if not self.band_limited:
            return None
        return band_limited_grid_flux(lens, self, x1, y1, h, skip)

    def light_radius_pixels(self) -> float:
        """Distance (template pixels) from the template centre to its farthest non-zero pixel."""
        r = self._levels.get("light_radius")
        if r is None:
            # (per row, its first and last non-zero pixel: the farthest pixel is one of them)
            nz = self.template != 0
            rows = np.flatnonzero(nz.any(axis=1))
            ny, nx = self.template.shape
            if rows.size:
                first = nz[rows].argmax(axis=1)
                last = nx - 1 - nz[rows, ::-1].argmax(axis=1)
                dc = np.maximum(np.abs(first - 0.5 * (nx - 1)), np.abs(last - 0.5 * (nx - 1)))
                r = float(np.hypot(rows - 0.5 * (ny - 1), dc).max())
            else:
                r = 0.0
            self._levels["light_radius"] = r
        return r

    def band_limited_levels(self, top: int) -> np.ndarray:
        """(n_levels, H, W) float32 levels of template_render.LEVEL_SIGMAS, levels 0..``top`` built
        (template_levels.band_limited_stack; built on first use and shared by with_flux copies)."""
        return band_limited_stack(self._levels, self.template, top)

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
        ny, nx = self._padded_shape
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
            val = bilinear(self._padded(np.float32 if dtype == np.float32 else np.float64), c, r)
        else:
            # pre-filtered levels live on a grid LEVEL_STEPS times finer
            c *= float(LEVEL_STEPS)
            r *= float(LEVEL_STEPS)
            top = len(FILTER_SIGMAS) - 2
            if np.ndim(cell) == 0:
                t = float(level_position(_ALIAS_SIGMA * float(cell) / pix))
                k = min(int(t), top)
                w = t - k
                stack = level_stack(self._levels, self._padded(), dtype, k, k + 1 if w > 0.0 else k)
                val = bilinear(stack[k], c, r)
                if w > 0.0:
                    val *= 1.0 - w
                    val += w * bilinear(stack[k + 1], c, r)
            else:
                h = np.broadcast_to(np.asarray(cell, dtype=np.float64), shape).reshape(-1)[idx]
                t = level_position(h * (_ALIAS_SIGMA / pix))
                k = np.minimum(t.astype(np.intp), top)
                w = (t - k).astype(dtype)
                stack = level_stack(self._levels, self._padded(), dtype, int(k.min()), int(k.max()) + 1)
                v0, v1 = bilinear(stack, c, r, level=k, pair=True)
                v1 -= v0
                v1 *= w
                val = v0 + v1
        val *= self.flux / (pix * pix)
        out.reshape(-1)[idx] = val
        return out
