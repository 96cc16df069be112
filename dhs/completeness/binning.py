"""Binning rules shared by every completeness surface (and by stage 6).

One rule for regular bins: a value v falls in bin ``floor(v / width)`` and the bin is *labelled by its lower
edge* ``floor(v / width) * width`` (in the unit of v). A relative tolerance of 1e-9 bins is applied before
the floor so that grid values such as 0.3 with width 0.1 (0.3 / 0.1 = 2.9999999999999996 in floating point)
land in the bin whose lower edge they equal. NaN / None values get a NaN label (they are kept, not dropped).

Explicit-edge bins (for the resolution θE / PSF FWHM) use edges e_0 < e_1 < ... < e_m: bin 0 is v < e_0,
bin i is e_{i-1} <= v < e_i, bin m is v >= e_{m-1}; labels are "<e0", "e0-e1", ..., ">=e_{m-1}", and the
numeric lower edge is -inf for the first bin. NaN values get index -1 and label "nan".
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["edge_bin", "edge_bin_index", "edge_bin_labels", "floor_bin", "format_edge"]

_REL_TOL = 1e-9


def _as_float(values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype == object:
        arr = np.array([np.nan if v is None else v for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)
    return np.asarray(arr, dtype=np.float64)


def floor_bin(values: ArrayLike, width: float, decimals: int = 9) -> np.ndarray:
    """Lower edge of the regular bin of each value: ``floor(v / width) * width``.

    Parameters
    ----------
    values : array-like of numbers in any unit (None / NaN allowed → NaN label).
    width : bin width in the same unit, > 0.
    decimals : the label is rounded to this many decimals so equal bins compare equal.

    Returns
    -------
    float64 array of lower edges (same unit as ``values``).
    """
    if not (np.isfinite(width) and width > 0):
        raise ValueError(f"bin width must be a positive finite number, got {width!r}")
    v = _as_float(values)
    with np.errstate(invalid="ignore"):
        q = v / float(width)
        idx = np.floor(q + _REL_TOL * np.maximum(1.0, np.abs(q)))
        lab = np.round(idx * float(width), decimals)
    lab[~np.isfinite(v)] = np.nan
    return lab + 0.0  # no negative zeros


def _check_edges(edges: Sequence[float]) -> np.ndarray:
    e = np.asarray(list(edges), dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ValueError(f"bin edges must be a non-empty, finite, strictly increasing list, got {list(edges)!r}")
    return e


def edge_bin_index(values: ArrayLike, edges: Sequence[float]) -> np.ndarray:
    """Index of the explicit-edge bin of each value (0 .. len(edges)); -1 for NaN / None."""
    e = _check_edges(edges)
    v = _as_float(values)
    idx = np.searchsorted(e, v, side="right").astype(np.int64)
    idx[~np.isfinite(v) & ~np.isinf(v)] = -1
    return idx


def format_edge(x: float) -> str:
    """Short decimal text of a bin edge (``0.4`` → ``"0.4"``, ``1.0`` → ``"1"``)."""
    return f"{float(x):.6g}"


def edge_bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the len(edges)+1 explicit-edge bins: ``["<e0", "e0-e1", ..., ">=e_last"]``."""
    e = _check_edges(edges)
    labels = [f"<{format_edge(e[0])}"]
    labels += [f"{format_edge(a)}-{format_edge(b)}" for a, b in pairwise(e)]
    labels.append(f">={format_edge(e[-1])}")
    return labels


def edge_bin(values: ArrayLike, edges: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Explicit-edge binning: (labels as an object array of str, lower edges as float64 with -inf first).

    NaN values get the label ``"nan"`` and a NaN lower edge.
    """
    e = _check_edges(edges)
    idx = edge_bin_index(values, e)
    labels = np.array(edge_bin_labels(e) + ["nan"], dtype=object)
    lowers = np.concatenate([[-np.inf], e, [np.nan]])
    return labels[idx], lowers[idx]
