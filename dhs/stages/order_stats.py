"""Exact order statistics of a Spark column without bringing the column to the driver.

:func:`order_statistics` returns the values at given 0-based ranks (ascending order) of the finite values of
a double column, exactly as ``np.sort(values)[rank]`` would, with driver memory bounded by ``bins`` and
``exact_max`` whatever the row count. Each round histograms the values inside the current interval of every
unresolved rank into ``bins`` equal-width bins (count, min, max per bin, summed by Spark), keeps the bin
holding the rank, and narrows the interval to that bin's smallest and largest value. A rank is resolved when
its bin holds one distinct value, or at most ``exact_max`` values, which are then collected and sorted.
Bins are monotone in the value, so a bin is exactly the values between its minimum and maximum; the answer
does not depend on the partitioning. Used for the stage 4a PSF and depth bin edges
(:func:`dhs.sampling.stratify.quantiles_from_order_statistics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_HIST_SCHEMA = "iv long, bin long, n long, vmin double, vmax double"


def _bin_index(v: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    if hi <= lo:
        return np.zeros(v.shape, dtype=np.int64)
    idx = np.floor((v - lo) / (hi - lo) * bins)
    return np.clip(idx, 0, bins - 1).astype(np.int64)


def _histograms(values: Any, column: str, intervals: list[tuple[float, float]], bins: int) -> dict:
    """Per interval: {bin: (count, min, max)} of the values in [lo, hi] (one Spark job)."""
    from pyspark.sql import functions as F

    ivs = list(intervals)

    def hist(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            v = batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            for i, (lo, hi) in enumerate(ivs):
                sel = v[(v >= lo) & (v <= hi)]
                if not sel.size:
                    continue
                idx = _bin_index(sel, lo, hi, bins)
                order = np.argsort(idx, kind="stable")
                idx, sel = idx[order], sel[order]
                ub, start, cnt = np.unique(idx, return_index=True, return_counts=True)
                yield pa.RecordBatch.from_arrays(
                    [pa.array(np.full(len(ub), i, np.int64)), pa.array(ub), pa.array(cnt.astype(np.int64)),
                     pa.array(np.minimum.reduceat(sel, start)), pa.array(np.maximum.reduceat(sel, start))],
                    names=["iv", "bin", "n", "vmin", "vmax"])

    rows = (values.select(column).mapInArrow(hist, _HIST_SCHEMA).groupBy("iv", "bin")
            .agg(F.sum("n").alias("n"), F.min("vmin").alias("vmin"), F.max("vmax").alias("vmax")).collect())
    out: dict[int, dict[int, tuple[int, float, float]]] = {}
    for r in rows:
        out.setdefault(int(r["iv"]), {})[int(r["bin"])] = (int(r["n"]), float(r["vmin"]), float(r["vmax"]))
    return out


def _values_between(values: Any, column: str, lo: float, hi: float) -> np.ndarray:
    from pyspark.sql import functions as F

    got = values.where((F.col(column) >= F.lit(lo)) & (F.col(column) <= F.lit(hi))).select(column).collect()
    return np.sort(np.array([r[0] for r in got], dtype=np.float64))


def order_statistics(df: Any, column: str, ranks: Sequence[int] | Callable[[int], Sequence[int]], *,
                     bins: int = 4096, exact_max: int = 100_000, max_rounds: int = 12) -> tuple[int, dict[int, float]]:
    """``(n, {rank: value})``: the number ``n`` of finite values of ``column`` and the value at each 0-based
    rank of their ascending order; ``ranks`` is a list or a function of ``n`` giving it. Ranks outside
    ``[0, n)`` raise ``ValueError``; ``n = 0`` returns ``(0, {})``. Driver memory is O(bins + exact_max)
    rows; each round is one pass over the (cached) column."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    vals = (df.select(F.col(column).cast("double").alias(column))
            .where(F.col(column).isNotNull() & ~F.isnan(column)
                   & (F.col(column) != float("inf")) & (F.col(column) != float("-inf")))
            .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        stats = vals.agg(F.count(F.lit(1)).alias("n"), F.min(column).alias("lo"), F.max(column).alias("hi")).first()
        n = int(stats["n"])
        if n == 0:
            return 0, {}
        ranks = [int(k) for k in (ranks(n) if callable(ranks) else ranks)]
        bad = [k for k in ranks if not 0 <= k < n]
        if bad:
            raise ValueError(f"ranks {bad} outside [0, {n}) for column {column!r}")
        # state per rank: (lo, hi, values strictly below lo, values in [lo, hi])
        state = {int(k): (float(stats["lo"]), float(stats["hi"]), 0, n) for k in ranks}
        result: dict[int, float] = {}
        for _ in range(max_rounds):
            todo = {}
            for k, (lo, hi, _below, count) in state.items():
                if k in result:
                    continue
                if lo == hi:
                    result[k] = lo
                elif count <= exact_max:
                    todo.setdefault(("exact", lo, hi), []).append(k)
                else:
                    todo.setdefault(("hist", lo, hi), []).append(k)
            if not todo:
                return n, result
            for (kind, lo, hi), ks in todo.items():
                if kind == "exact":
                    v = _values_between(vals, column, lo, hi)
                    for k in ks:
                        result[k] = float(v[k - state[k][2]])
            hist_ivs = [(lo, hi) for (kind, lo, hi) in todo if kind == "hist"]
            if not hist_ivs:
                continue
            hists = _histograms(vals, column, hist_ivs, bins)
            for i, (lo, hi) in enumerate(hist_ivs):
                h = hists.get(i, {})
                cum = state[todo[("hist", lo, hi)][0]][2]
                for b in sorted(h):
                    cnt, vmin, vmax = h[b]
                    for k in todo[("hist", lo, hi)]:
                        if cum <= k < cum + cnt:
                            state[k] = (vmin, vmax, cum, cnt)
                    cum += cnt
        missing = sorted(set(int(k) for k in ranks) - set(result))
        if missing:
            raise RuntimeError(f"order statistics of {column!r}: ranks {missing} unresolved after {max_rounds} rounds")
        return n, result
    finally:
        vals.unpersist()


def exact_quantiles(df: Any, column: str, probs: Sequence[float], **kw: Any) -> np.ndarray:
    """``np.quantile(finite values of column, probs)`` (default "linear" rule), computed by Spark; raises
    ``ValueError`` when the column has no finite value."""
    from dhs.sampling.stratify import quantile_ranks, quantiles_from_order_statistics

    p = np.asarray(probs, dtype=np.float64)
    n, values = order_statistics(df, column, lambda m: quantile_ranks(m, p), **kw)
    if n == 0:
        raise ValueError(f"cannot compute quantiles of {column!r}: no finite values")
    return quantiles_from_order_statistics(n, p, values)
