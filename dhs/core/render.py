"""Stamp renderer: ray shooting on a supersampled grid, source evaluation, PSF (x) pixel convolution.

Pipeline for a (size x size) stamp with pixel p and supersampling s (sub-pixel h = p / s):

1. Sub-pixel cells covering the stamp, aligned so that the lens centre (row = size//2 + offset_pix[1],
   col = size//2 + offset_pix[0]) is a cell centre, are ray-shot to the source plane (SIE + shear;
   subpixel_axes, dhs.core.lens).
2. The source surface brightness is evaluated at the cell centres and turned into cell means with a
   second-order (Laplacian) correction (interpolated templates, pre-filtered by the cell size, give cell
   means directly); cells where that is not accurate enough (compact sources,
   Sersic cusps, cells stretched by the lens near its centre) are integrated adaptively with nested
   2x2 Gauss-Legendre cells (dhs.core.refinement); at the finest level, the cells at a Sersic centre
   (singular for n != 0.5) are integrated exactly in polar coordinates about it (dhs.core.sersic_centre).
   W = mean x h^2 is the lensed flux of each cell (lensed_grid_flux).  (Sersic sources, dhs.core.batch, run
   this only inside a window around their bright or unresolved light, dhs.core.light_window; the faint,
   smooth rest takes pixel means.)  Refined cells also report the
   first and second moments of their light about the cell centre; where those differ from what the cell
   grid implies (light concentrated below the cell size: cusps, compact sources), the difference is
   carried by zero-flux patterns on the neighbouring cells (dhs.core.subcell_moments), so sub-cell
   positions survive.  Smooth (band-limited) templates take dhs.core.template_render instead.
3. The image is (source (x) PSF (x) pixel) sampled at pixel centres (dhs.core.transfer: FFT of W, analytic
   Moffat (x) pixel transfer with the cell box divided out, exact decimation, no wrap-around).  Light is
   followed only inside the stamp (as in lenstronomy); the total lensed flux regardless of the stamp is
   dhs.core.magnification, and render_lensed_bands' magnification adds the light outside the stamp
   (dhs.core.outside_flux).

What the renderer needs of a source is the protocol dhs.core.source_profile.SourceProfile.  Sersic sources
are rendered by dhs.core.batch (the same algorithm over many stamps at once; a single stamp is a batch of
one).  The float32 hot path uses Python-float scalars throughout; outputs are float64 (nanomaggies/pixel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .lens import SIELens, ray_shoot_grid
from .outside_flux import image_plane_half_width, lensed_flux_outside_box  # noqa: F401 (re-exported)
from .psf import check_moffat
from .refinement import (  # noqa: F401 (GL_TOL, stretched_window: re-exported)
    BASE_TOL,
    GL_TOL,
    MAX_REFINE_LEVELS,
    _core_radius,
    _flag_demagnified,
    refined_cell_means,
    stretched_window,
)
from .scratch import scratch_array
from .sersic import SersicSource
from .source_profile import SourceProfile
from .subcell_moments import _add_laplacian_correction, _add_subcell_moments
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


#: the default sub-pixel size, arcsec (refine_levels counts levels relative to it)
_DEFAULT_CELL_ARCSEC = 0.262 / DEFAULT_SUPERSAMPLE


def refine_levels(h: float, source: SourceProfile | None = None) -> int:
    """Refinement levels allowed below cells of side h (arcsec).

    MAX_REFINE_LEVELS for cells up to the default sub-pixel size; coarser cells get more levels, so that
    the finest cell is never larger than with the default supersampling (2.7 milliarcsec); and point-like
    sources (``source.min_scale`` below twice that) get more, so that the finest cell stays below half of
    their scale.
    """
    levels = MAX_REFINE_LEVELS + max(0, math.ceil(math.log2(h / _DEFAULT_CELL_ARCSEC) - 1e-9))
    scale = None if source is None else source.min_scale
    if scale:
        finest = h / 2 ** (levels - 1)
        levels += max(0, math.ceil(math.log2(finest / (0.5 * scale)) - 1e-9))
    return levels


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
    source: SourceProfile,
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
    if max_levels is None and source.band_limited:
        # smooth templates: per-ray footprint filtering, no refinement (dhs.core.template_render)
        w = source.band_limited_grid_flux(lens, x1, y1, h, skip)
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
    if source.wants_cell_size and bx is not xg:
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
    if not source.wants_cell_size:
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
                moments=1 if source.smooth_below_refinement else max_levels,
            )
            sb.reshape(-1)[idx] = means
            _add_subcell_moments(sb, rows, cols, mom)
        else:
            sb.reshape(-1)[idx] = refined_cell_means(lens, source, x1[cols], y1[rows], h, 1, max_levels)
    if skip is not None:
        sb[skip] = 0.0
    sb *= h * h
    return sb


def unit_lensed_subpixel_flux(
    lens: SIELens,
    source: SourceProfile,
    size: int,
    supersample: int,
    pixscale: float,
    offset_pix: Sequence[float],
) -> np.ndarray:
    """Lensed flux of ``source`` in the stamp's sub-pixel cells (nanomaggies), float32 (size*s+2, size*s+2).

    See subpixel_axes for the cell layout (lens-aligned, one partial cell on each side).
    """
    x1, y1, wx, wy, _ = subpixel_axes(size, supersample, pixscale, offset_pix)
    w = lensed_grid_flux(lens, source, x1, y1, pixscale / supersample)
    apply_edge_weights(w, wx, wy)
    return w


def apply_edge_weights(w: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> None:
    """Multiply cell fluxes w (..., rows, cols) by the coverage weights of subpixel_axes (in place).

    wx, wy: the column and row weights (cols,) and (rows,), or for a stack of grids (N, rows, cols) with
    their own weights, (N, 1, cols) and (N, rows, 1).  Only the two outermost cells on each side have
    weights other than 1, so only they are touched (the same values as w * wy[:, None] * wx[None, :]).
    """
    if wy.ndim == 1:
        wy, wx = wy[:, None], wx[None, :]
    if wy.shape[-2] < 4 or wx.shape[-1] < 4:  # (the two ends overlap)
        w *= wy
        w *= wx
        return
    for part in (slice(0, 2), slice(-2, None)):
        w[..., part, :] *= wy[..., part, :]
    for part in (slice(0, 2), slice(-2, None)):
        w[..., part] *= wx[..., part]


def _validate_psf(fwhm, beta, what: str) -> tuple[float, float]:
    try:
        return check_moffat(fwhm, beta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from None


def render_lensed_bands(
    lens: SIELens,
    source: SourceProfile,
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
        source: a SersicSource or InterpolatedSource (any SourceProfile); its shape is used, its own flux
            is ignored.
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
    w = unit_lensed_subpixel_flux(lens, unit, size, ss, pixscale, offset_pix)
    shift = subpixel_axes(size, ss, pixscale, offset_pix)[4]
    out = psf_images(
        w[None], np.array([shift]), np.array([fluxes]), np.array([[f for f, _ in psfs]]),
        np.array([[b for _, b in psfs]]), size, ss, pixscale, clip=[unit.non_negative],
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
    source: SourceProfile,
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
        lens: SIE + shear lens; source: SersicSource or InterpolatedSource (any SourceProfile; its
            ``flux`` is the total unlensed flux in nanomaggies).
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
