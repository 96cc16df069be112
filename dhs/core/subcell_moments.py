"""Sub-cell moments of light: carrying where light sits inside a refined cell onto the cell grid.

Cells integrated adaptively (dhs.core.refinement.refined_cell_means) also report the first and second
moments of their light about the cell centre, combined from their sub-cells by parallel-axis sums
(_combine_moments, as fixed linear maps: _split_moment_maps, _smooth_split_moments).  Where those moments
differ from what the cell grid implies, the difference is added to the neighbouring cells as zero-flux
patterns (_add_subcell_moments), so light concentrated below the cell size keeps its position.  The
unrefined cells get the second-order correction from point samples to cell means
(_add_laplacian_correction).
"""

from __future__ import annotations

import functools

import numpy as np

from .scratch import scratch_array


def _apply_map(matrix: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix @ cols.T`` for a fixed (5, K) matrix and (m, K) cells: a (5, m) float64 array.

    Summed term by term over K in a fixed order (a reduction over the outer axis of a (K, 5, m) array of
    products), so a cell's result does not depend on how many cells are processed with it (BLAS matrix
    products may change their summation order with the matrix shape).
    """
    terms = np.ascontiguousarray(cols.T, dtype=np.float64)[:, None, :] * matrix.T[:, :, None]
    return terms.sum(axis=0)



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


def sorted_unique(values: np.ndarray, slots: bool = False):
    """The distinct values of an integer array, ascending [and each entry's index among them]: np.unique's
    result, by a stable sort (it merges pre-sorted runs, e.g. index lists shifted by a stencil's offsets,
    several times faster than np.unique's quicksort or hashing)."""
    perm = values.argsort(kind="stable") if slots else None
    ordered = values[perm] if slots else np.sort(values, kind="stable")
    first = np.empty(ordered.size, dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    if not slots:
        return ordered[first]
    slot = np.empty(ordered.size, dtype=np.intp)
    slot[perm] = np.cumsum(first) - 1
    return ordered[first], slot


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
    (``refined_cell_means(..., moments=max_levels)``) are compared with the implied ones and the
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
    touched, slot = sorted_unique(where, slots=True)
    delta = np.bincount(slot, weights=np.concatenate(values), minlength=touched.size)
    s[touched] += delta.astype(sb.dtype)
