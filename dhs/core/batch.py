"""Render many lensed stamps at once: NumPy's per-call overhead is paid once per batch, not per stamp.

The algorithm is the one of dhs.core.render (lens-aligned sub-pixel grid, Laplacian-corrected cell means,
adaptive Gauss-Legendre refinement with sub-cell moments, exact Sersic-centre cells; then
dhs.core.transfer), applied to the Sersic rows of a batch together, GROUP_ROWS at a time: every row is
first sampled at its pixel centres, and the sub-pixel passes (rays, source, refinement flags, Laplacian)
run only in the row's light window (dhs.core.light_window), row by row on arrays that stay in the CPU
cache; the refined cells of all the group's rows are integrated together (each carrying its row's lens
and source constants: dhs.core.lens.LensBatch, dhs.core.sersic_batch.SersicBatch; their Gauss-Legendre
points stored point-major, dhs.core.rows.points_major), and the FFTs of CHUNK_ROWS rows and their bands
run as stacked transforms.  Rows with other sources (interpolated templates) are rendered one by one with
render_lensed_bands.

A row's result never depends on the other rows: every step is elementwise per position, reduces over a
fixed-length axis, sums in a fixed order, or is a stacked 1-D FFT (pocketfft transforms each line on its
own), so a row comes out bit-identical in a batch of one and in any batch (outputs do not change with
partitioning or batch size); dhs.core.render_lensed_bands renders Sersic sources through this module
with N = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .interpolated import InterpolatedSource
from .lens import LensBatch, SIELens
from .light_window import block_means, light_windows, spread_blocks
from .outside_flux import image_plane_half_widths, lensed_flux_outside_box
from .psf import check_moffat
from .refinement import BASE_TOL, _core_radius, refined_cell_means, stretched_bounds, stretched_window
from .render import (
    DEFAULT_SUPERSAMPLE,
    _check_grid,
    apply_edge_weights,
    refine_levels,
    render_lensed_bands,
    subpixel_axes,
)
from .scratch import scratch_array
from .sersic import SersicSource
from .sersic_batch import SersicBatch
from .source_profile import SourceProfile
from .subcell_moments import _add_laplacian_correction, _add_subcell_moments, sorted_unique
from .transfer import psf_images

__all__ = ["render_lensed_batch"]

#: rows whose sub-pixel window passes and transforms run together: their working arrays (~5 MB per row at
#: size 64, supersampling 3) stay in the CPU caches (8 rows measured a few per cent faster than 4, 16 or 32)
CHUNK_ROWS = 8
#: rows whose refined cells are integrated together (the refinement's per-call cost, ~100 NumPy calls per
#: level, is paid once for them): 64 rows measured 25 % faster than 8, 256 another 1.5 % in stage 4c's
#: batches of 256; the group's sub-pixel grids (float32 and flags, ~190 kB per row at size 64) are kept
GROUP_ROWS = 256


def _grids_flux(
    rows: list[SIELens], srcs: list[SersicSource], x1, y1, h: float, ss: int, max_levels: int
) -> np.ndarray:
    """Lensed unit-source flux in each row's sub-pixel cells: (N, ny, nx) float32 (lensed_grid_flux per row).

    Every row is sampled at its block (pixel) centres first; the sub-pixel passes (rays, source, flags,
    Laplacian) run row by row inside the row's light window only (dhs.core.light_window; cells outside
    take their block's mean), CHUNK_ROWS rows at a time on arrays that stay in the CPU cache; the refined
    cells of all N rows are integrated together.
    """
    n, ny, nx = len(rows), y1.shape[1], x1.shape[1]
    flags = np.zeros((n, ny, nx), dtype=bool)
    sb = np.empty((n, ny, nx), dtype=np.float32)
    lenses, sources = LensBatch.from_lenses(rows), SersicBatch.from_sources(srcs)
    core = _core_radius(h, 0, max_levels)
    stretched = []
    for start in range(0, n, CHUNK_ROWS):
        part = np.arange(start, min(start + CHUNK_ROWS, n))
        stretched += _window_passes(rows, lenses, sources, part, x1, y1, h, ss, core, sb, flags)
    _flag_demagnified(stretched, sources, h, flags)
    idx = _grown(np.flatnonzero(flags), ny, nx)
    if idx.size:
        planes = idx // (ny * nx)
        cells = idx - planes * (ny * nx)
        r = cells // nx
        c = cells - r * nx
        means_r, mom = refined_cell_means(
            lenses.take(planes), sources.take(planes),
            x1[planes, c], y1[planes, r], h, 1, max_levels, moments=max_levels,
        )
        sb.reshape(-1)[idx] = means_r
        _add_subcell_moments(sb, r, c, mom, planes)
    sb *= h * h
    return sb


def _grown(idx: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """The flat indices ``idx`` (ascending) of cells in (N, ny, nx) grids and their four neighbours within
    each grid, ascending and unique (the flags dilated by a cross, on the few flagged cells only)."""
    cells = idx % (ny * nx)
    r = cells // nx
    c = cells - r * nx
    return sorted_unique(
        np.concatenate((idx, idx[r < ny - 1] + nx, idx[r > 0] - nx, idx[c < nx - 1] + 1, idx[c > 0] - 1))
    )


def _window_passes(rows, lenses, sources, part, x1, y1, h: float, ss: int, core: float, sb, flags) -> list:
    """Sample rows ``part`` (indices into rows, lenses, sources and the (N, ny, nx) grids) on their sub-pixel
    cells: block means everywhere, the sub-pixel passes inside each row's light window.  Writes the surface
    brightness into sb and the refinement flags into flags; returns the rows' stretched cells
    (_stretched_cells)."""
    ny, nx = sb.shape[1:]
    # (the cells near each lens centre whose source-plane images may be larger than h)
    extras = [stretched_bounds(rows[i], x1[i], y1[i], h) for i in part]
    windows = [(slice(None), slice(None))] * part.size
    if ss > 1:
        means, block_flags = block_means(lenses.take(part), sources.take(part), x1[part], y1[part], h, ss, core)
        spread_blocks(means, ss, (ny, nx), out=sb[part[0] : part[-1] + 1])
        windows = light_windows(means, block_flags, ss, (ny, nx), extras)
    stretched = []
    for i, win, extra in zip(part.tolist(), windows, extras):
        if win is None:
            continue
        wx, wy = x1[i : i + 1, win[1]], y1[i : i + 1, win[0]]
        shape = (1, wy.shape[1], wx.shape[1])
        bx, by = lenses.row(i).ray_shoot_grids(
            wx, wy, out=(scratch_array("grid_bx", shape, np.float32), scratch_array("grid_by", shape, np.float32))
        )
        sb_i, flags[i : i + 1, win[0], win[1]] = sources.row(i).evaluate(bx, by, h, BASE_TOL, core)
        stretched.append(_stretched_cells(rows[i], wx[0], wy[0], bx[0], by[0], h, (i, win, (ny, nx)), extra))
        _add_laplacian_correction(sb_i)
        # (the window's outermost cells are there for the Laplacian stencil of the others; they keep their
        # block's mean unless they lie on the grid's edge)
        inner = tuple(_inner(p, limit) for p, limit in zip(win, (ny, nx)))
        sb[i, inner[0][0], inner[1][0]] = sb_i[0, inner[0][1], inner[1][1]]
    return stretched


def _inner(part: slice, limit: int) -> tuple[slice, slice]:
    """(grid slice, window slice) of a window's cells without its outermost ones, except at the grid edge."""
    start, stop = part.start or 0, limit if part.stop is None else part.stop
    lo = 1 if start > 0 else 0
    hi = 1 if stop < limit else 0
    return slice(start + lo, stop - hi), slice(lo, stop - start - hi)


def _stretched_cells(lens: SIELens, x1, y1, bx, by, h: float, where, bounds):
    """Cells of one row's window stretched by the lens (dhs.core.render._flag_demagnified): their flat
    indices in the (N, ny, nx) grids, source-plane rays and sizes; None when there are none.  x1, y1, bx,
    by: the window's axes and rays; where: (row, (row slice, column slice) of the window, (ny, nx));
    bounds: the row's stretched_bounds on the whole grid (inside the window), or None."""
    if bounds is None:
        return None
    plane, win, (ny, nx) = where
    top, left = win[0].start or 0, win[1].start or 0
    local = (bounds[0] - top, bounds[1] - top, bounds[2] - left, bounds[3] - left)
    found = stretched_window(lens, x1, y1, bx, by, h, bounds=local)
    if found is None:
        return None
    _, row0, col0, wbx, wby, h_src = found
    r, cc = np.nonzero(h_src > h)
    if r.size == 0:
        return None
    flat = (plane * ny + top + row0 + r) * nx + left + col0 + cc
    return flat, wbx[r, cc], wby[r, cc], h_src[r, cc]


def _flag_demagnified(stretched, sources: SersicBatch, h: float, flags: np.ndarray) -> None:
    """Flag the stretched cells of all rows whose source-plane size the source finds too coarse."""
    found = [s for s in stretched if s is not None]
    if not found:
        return
    flat, sx, sy, size = (np.concatenate(parts) for parts in zip(*found))
    extra = sources.take(flat // flags[0].size).needs_refinement(
        sx, sy, size.astype(np.float64), BASE_TOL, area=h * h
    )
    flags.reshape(-1)[flat[extra]] = True


def _render_sersic_rows(lenses, sources, fluxes, fwhm, beta, offsets, size, ss, pixscale, out, mu) -> None:
    """Render rows (all SersicSource) into out (N, B, size, size) [and mu (N,) when not None]."""
    n = len(lenses)
    h = pixscale / ss
    axes = [subpixel_axes(size, ss, pixscale, off) for off in offsets]
    x1 = np.stack([a[0] for a in axes])
    y1 = np.stack([a[1] for a in axes])
    levels = np.array([refine_levels(h, s) for s in sources])
    if (levels == levels[0]).all():  # (the usual case: one group, its grids are the result)
        w = _grids_flux(lenses, sources, x1, y1, h, ss, int(levels[0]))
    else:
        w = np.empty((n, y1.shape[1], x1.shape[1]), dtype=np.float32)
        for lv in np.unique(levels):
            sel = np.flatnonzero(levels == lv)
            w[sel] = _grids_flux(
                [lenses[i] for i in sel], [sources[i] for i in sel], x1[sel], y1[sel], h, ss, int(lv)
            )
    # (every row's edge-cell weights at once: apply_edge_weights on the stack)
    apply_edge_weights(w, np.stack([a[2] for a in axes])[:, None, :], np.stack([a[3] for a in axes])[:, :, None])
    shifts = np.array([a[4] for a in axes], dtype=np.float64)
    # (a Sersic source is non-negative, and so are its images)
    for start in range(0, n, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        psf_images(
            w[part], shifts[part], fluxes[part], fwhm[part], beta[part], size, ss, pixscale,
            clip=np.ones(w[part].shape[0], dtype=bool), out=out[part],
        )
    if mu is None:
        return
    halves = image_plane_half_widths(lenses, sources)
    span = size * pixscale
    for i in range(n):
        lens = lenses[i]
        if lens.theta_e == 0.0 and lens.gamma1 == 0.0 and lens.gamma2 == 0.0:
            mu[i] = 1.0
            continue
        x_lo = (-0.5 - (size // 2 + float(offsets[i][0]))) * pixscale
        y_lo = (-0.5 - (size // 2 + float(offsets[i][1]))) * pixscale
        half = float(halves[i])
        outside = 0.0
        if not (x_lo <= -half and x_lo + span >= half and y_lo <= -half and y_lo + span >= half):
            # (some images may fall outside the stamp: lensed_flux_outside_box integrates them)
            unit = sources[i] if sources[i].flux == 1.0 else sources[i].with_flux(1.0)
            outside = lensed_flux_outside_box(lens, unit, x_lo, x_lo + span, y_lo, y_lo + span, half=half)
        mu[i] = float(w[i].sum(dtype=np.float64)) + outside


def _as_table(value, n: int, b: int, name: str) -> np.ndarray:
    """``value`` as an (n, b) float64 array, or ValueError naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"render_lensed_batch: {name} must be numbers of shape ({n}, {b})") from None
    if arr.ndim == 0 and name == "psf_beta":
        arr = np.full((n, b), float(arr))
    if arr.shape != (n, b):
        raise ValueError(f"render_lensed_batch: {name} must have shape ({n}, {b}), got {arr.shape}")
    return arr


def _check_rows(lenses, sources, fluxes, fwhm, beta, offsets) -> None:
    for i in range(len(lenses)):
        if not isinstance(lenses[i], SIELens):
            raise ValueError(f"row {i}: lenses[{i}] must be an SIELens, got {type(lenses[i]).__name__}")
        src = sources[i]
        # (the built-in classes first: the structural check of the protocol alone costs ~40 us a row)
        if not isinstance(src, (SersicSource, InterpolatedSource, SourceProfile)):
            raise ValueError(f"row {i}: sources[{i}] must be a SersicSource or InterpolatedSource, got "
                             f"{type(src).__name__}")
        for b in range(fluxes.shape[1]):
            if not math.isfinite(fluxes[i, b]):
                raise ValueError(f"row {i}: fluxes[{i}][{b}] must be finite nanomaggies, got {fluxes[i, b]}")
            try:
                check_moffat(fwhm[i, b], beta[i, b])
            except ValueError as exc:
                raise ValueError(f"row {i}: psf_fwhm_arcsec[{i}][{b}] / psf_beta: {exc}") from None
        if not np.isfinite(offsets[i]).all():
            raise ValueError(f"row {i}: offsets_pix[{i}] must be two finite numbers, got {offsets[i].tolist()}")


def render_lensed_batch(
    lenses: Sequence[SIELens],
    sources: Sequence,
    fluxes,
    psf_fwhm_arcsec,
    *,
    psf_beta=3.5,
    size: int = 64,
    pixscale: float = 0.262,
    supersample: int = DEFAULT_SUPERSAMPLE,
    offsets_pix=None,
    return_magnification: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render N lensed sources in B bands each: render_lensed_bands for many rows at once.

    Args:
        lenses: N SIE + shear lenses (theta_e = 0 renders a row unlensed).
        sources: N SersicSource or InterpolatedSource shapes (their own fluxes are ignored).  Sersic rows
            are rendered together; interpolated rows one by one (render_lensed_bands).
        fluxes: (N, B) total unlensed source flux per row and band, nanomaggies.
        psf_fwhm_arcsec: (N, B) Moffat FWHM, arcsec.  psf_beta: Moffat index, a scalar or (N, B).
        size: stamp side, pixels.  pixscale: arcsec/pixel.  supersample: sub-pixels per pixel per axis.
        offsets_pix: (N, 2) lens centre minus the central pixel (dx along columns, dy along rows), or
            None for (0, 0).
        return_magnification: also return the (N,) total magnifications (see render_lensed_bands).

    Returns:
        (N, B, size, size) float64 images in nanomaggies per pixel [, (N,) magnifications].  Row i is
        bit-identical to the same row rendered in a batch of one, and equals render_lensed_bands(lenses[i],
        sources[i], fluxes[i], psf_fwhm_arcsec[i], ..., offset_pix=offsets_pix[i]).

    Raises:
        ValueError: naming the row and the field of a bad entry, or a bad shape or grid argument.
    """
    lenses = list(lenses)
    sources = list(sources)
    n = len(lenses)
    if len(sources) != n:
        raise ValueError(f"render_lensed_batch: {n} lenses but {len(sources)} sources")
    try:
        shape = np.shape(np.asarray(fluxes, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"render_lensed_batch: fluxes must be numbers of shape ({n}, n_bands)") from None
    if len(shape) != 2 or shape[0] != n:
        raise ValueError(f"render_lensed_batch: fluxes must have shape ({n}, n_bands), got {shape}")
    b = shape[1]
    fluxes = _as_table(fluxes, n, b, "fluxes")
    fwhm = _as_table(psf_fwhm_arcsec, n, b, "psf_fwhm_arcsec")
    beta = _as_table(psf_beta, n, b, "psf_beta")
    if offsets_pix is None:
        offsets = np.zeros((n, 2))
    else:
        offsets = _as_table(offsets_pix, n, 2, "offsets_pix")
    pixscale = float(pixscale)
    _check_grid(size, supersample, pixscale, (0.0, 0.0))
    _check_rows(lenses, sources, fluxes, fwhm, beta, offsets)
    size, ss = int(size), int(supersample)
    out = np.zeros((n, b, size, size), dtype=np.float64)
    mu = np.ones(n, dtype=np.float64) if return_magnification else None
    work = [i for i in range(n) if return_magnification or fluxes[i].any()]
    sersic = [i for i in work if isinstance(sources[i], SersicSource)]
    for i in work:
        if not isinstance(sources[i], SersicSource):
            res = render_lensed_bands(
                lenses[i], sources[i], fluxes[i], fwhm[i], psf_beta=beta[i], size=size, pixscale=pixscale,
                supersample=ss, offset_pix=offsets[i], return_magnification=return_magnification,
            )
            if return_magnification:
                out[i], mu[i] = res
            else:
                out[i] = res
    for start in range(0, len(sersic), GROUP_ROWS):
        rows = sersic[start : start + GROUP_ROWS]
        # (consecutive rows, the usual case: rendered in place)
        consecutive = rows[-1] - rows[0] == len(rows) - 1
        part = out[rows[0] : rows[-1] + 1] if consecutive else np.zeros((len(rows), b, size, size))
        part_mu = np.ones(len(rows)) if return_magnification else None
        _render_sersic_rows(
            [lenses[i] for i in rows], [sources[i] for i in rows], fluxes[rows], fwhm[rows], beta[rows],
            offsets[rows], size, ss, pixscale, part, part_mu,
        )
        if not consecutive:
            out[rows] = part
        if return_magnification:
            mu[rows] = part_mu
    return (out, mu) if return_magnification else out
