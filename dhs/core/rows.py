"""Per-row constant tables whose row selections (one row per refined cell) are gathered lazily."""

from __future__ import annotations

import numpy as np

__all__ = ["RowTable", "points_major"]


class RowTable:
    """Mixin for frozen dataclasses of per-row arrays (length N) used in batched rendering.

    ``take(rows)`` returns a selection (rows with repetition, e.g. the row of each refined cell) that
    shares the arrays and gathers a column only when it is first used (``column``); selections of
    selections compose their row indices.
    """

    def _selection(self) -> np.ndarray | None:
        return self.__dict__.get("_rows")

    def take(self, rows: np.ndarray):
        """The table of rows ``rows`` of this one (a lazy selection)."""
        base = self._selection()
        return self._select(np.asarray(rows) if base is None else base[rows])

    def row(self, i: int):
        """Row i of this table alone: a selection of one whose columns are views of this table's (no gather;
        for row-by-row passes)."""
        base = self._selection()
        return self._select(np.arange(i, i + 1) if base is None else base[i : i + 1], parent=(self, i))

    def _select(self, rows: np.ndarray, parent=None):
        new = object.__new__(type(self))
        new.__dict__.update({k: v for k, v in self.__dict__.items() if not k.startswith("_")})
        new.__dict__["_rows"] = rows
        new.__dict__["_cache"] = {}
        if parent is not None:
            new.__dict__["_parent"] = parent
        return new

    def column(self, name: str) -> np.ndarray:
        """The (selected) values of column ``name``, one per row of this table."""
        d = self.__dict__
        cache = d.get("_cache")
        if cache is None:
            return d[name]
        col = cache.get(name)
        if col is None:
            parent = d.get("_parent")
            if parent is None:
                col = cache[name] = d[name][d["_rows"]]
            else:
                col = cache[name] = parent[0].column(name)[parent[1] : parent[1] + 1]
        return col

    def _col(self, name: str, ndim: int) -> np.ndarray:
        """column(name) shaped (-1, 1, ...) to broadcast against arrays of ``ndim`` dimensions (cached)."""
        d = self.__dict__
        cache = d.get("_shaped")
        if cache is None:
            cache = d["_shaped"] = {}
        key = (name, ndim)
        col = cache.get(key)
        if col is None:
            parent = d.get("_parent")
            if parent is None:
                col = self.column(name).reshape((-1,) + (1,) * (ndim - 1))
            else:
                col = parent[0]._col(name, ndim)[parent[1] : parent[1] + 1]
            cache[key] = col
        return col


def points_major(a: np.ndarray) -> bool:
    """True for (n, k) positions stored point-major: the transposed view of a C-ordered (k, n) array, as
    dhs.core.refinement builds its cells' k = 4 Gauss-Legendre points.  Batch tables evaluate such positions
    on that (k, n) array with their row constants broadcast along its last axis (NumPy's inner loops then
    run over the n cells instead of over k points each)."""
    return a.ndim == 2 and a.strides[0] <= a.strides[1] and a.T.flags.c_contiguous
