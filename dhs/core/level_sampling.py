"""Bilinear lookups in a stack of pre-filtered template levels, blended between two levels per sample.

The band-limited template renderer (dhs.core.template_render) samples, for every ray, the template smoothed
by a Gaussian whose width falls between two of the levels of InterpolatedSource.band_limited_levels (float32,
template pixels of the padded template).  LevelQuads packs each level's four bilinear corners per template
cell into one 16-byte element, so one gather fetches a cell's corners; sample_levels blends two levels and
interpolates bilinearly.  Positions are in template pixels, values in the levels' units (unit-sum template).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LevelQuads", "sample_levels"]


class LevelQuads:
    """The levels of one source as quads, filled on demand: a (n_levels, H - 1, W - 1) complex128 array
    whose every element holds, as four float32, the corners (r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1)
    of a template cell in a level of source.band_limited_levels (one gather fetches a bilinear
    interpolation's four values).  Built per render call, not cached on the source (16 bytes per pixel
    and level: a batch's sources would hold ~2 MB each)."""

    def __init__(self, source) -> None:
        self.source = source
        self.array: np.ndarray | None = None
        self.done: set[int] = set()

    def filled(self, top: int, lowers: np.ndarray) -> np.ndarray:
        """The quads array with levels ``lowers`` and the ones above them (the pairs a blend reads)
        filled; levels up to ``top`` exist."""
        levels = self.source.band_limited_levels(top)
        if self.array is None:
            height, width = levels.shape[1:]
            self.array = np.empty((levels.shape[0], height - 1, width - 1, 4), dtype=np.float32)
        q = self.array
        for k in np.union1d(lowers, lowers + 1):
            if int(k) in self.done:
                continue
            lev = levels[k]
            q[k, ..., 0] = lev[:-1, :-1]
            q[k, ..., 1] = lev[:-1, 1:]
            q[k, ..., 2] = lev[1:, :-1]
            q[k, ..., 3] = lev[1:, 1:]
            self.done.add(int(k))
        return q.view(np.complex128)[..., 0]


def sample_levels(quads: np.ndarray, col: np.ndarray, row: np.ndarray, lower: np.ndarray,
                  frac: np.ndarray) -> np.ndarray:
    """The template smoothed by a Gaussian at (col, row) (template pixels of the padded levels, float32
    arrays of shape (k,) or (k, T); overwritten) from the quads array of LevelQuads.filled: the blend
    (1 - frac) x level ``lower`` + frac x level ``lower + 1`` of each of the k rows ((k,) arrays; frac
    float32, the fractional level index of the wanted variance).  Positions off the levels read their
    zero border.  float32, the shape of ``col``."""
    n_lev, height, width = quads.shape
    # (the last cell's far corners are the border's zeros: clipping reads 0 for every position off the levels)
    cc = np.clip(col, 0.0, width - 1, out=col)
    rr = np.clip(row, 0.0, height - 1, out=row)
    c0 = np.floor(cc)
    cc -= c0  # the fractional offsets
    r0 = np.floor(rr)
    rr -= r0
    index = r0.astype(np.intp)
    index *= width
    index += c0.astype(np.intp)
    extra = (1,) * (index.ndim - 1)
    index += (lower * (height * width)).reshape(lower.shape + extra)
    flat = quads.reshape(-1)
    lo = flat[index].view(np.float32).reshape(index.shape + (4,))
    index += height * width
    hi = flat[index].view(np.float32).reshape(index.shape + (4,))
    hi -= lo
    hi *= frac.reshape(frac.shape + extra + (1,))
    lo += hi  # the corners blended between the two levels
    top = lo[..., 1] - lo[..., 0]
    top *= cc
    top += lo[..., 0]
    bottom = lo[..., 3] - lo[..., 2]
    bottom *= cc
    bottom += lo[..., 2]
    bottom -= top
    bottom *= rr
    bottom += top
    return bottom
