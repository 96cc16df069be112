"""Hard negatives: the highest-scoring non-lenses of a finder, per stratum, from the negative pools.

Input: a score table from any finder — Parquet, one row per scored object, an id column holding dhs
``galaxy_id`` strings ("<brickname>_<objid>") and a numeric score (higher = more lens-like). Its schema is
checked before any work (:func:`check_score_schema`, :func:`read_score_schemas`), with errors that name the file
and the column.

Selection (:func:`hard_negative_quotas`, :func:`select_hard_negatives`; the Spark stage does the same with
windows): objects of the chosen pools (N1/N2, which already passed every pool filter) that have a finite score
(≥ ``min_score`` when set), no known lens within the exclusion radius and are no lens's matched object are
ranked per stratum (nobs_z_bin × type_bin) by score, highest first, ties by the sampling hash and then the
``galaxy_id`` (both stable, so the same inputs give the same rows whatever the order of the table); the first
``quota`` of each stratum are taken. An id scored twice keeps its highest score.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dhs.config.stage6 import HardNegativeSettings

SCORE_ID, SCORE = "galaxy_id", "hn_score"
"""Names of the id and score columns once the score table is read (the score keeps its own name in the
output as ``hn_score`` so that it never collides with a catalogue column)."""


class ScoreTableError(ValueError):
    """The score table cannot be used (missing, unreadable, or a column missing or of the wrong type)."""


def check_score_schema(schema: pa.Schema, path: str, id_column: str, score_column: str) -> None:
    """Raise :class:`ScoreTableError` naming ``path`` and the column unless ``schema`` has ``id_column`` as a
    string and ``score_column`` as an integer or floating-point number."""
    names = schema.names
    for col, what in ((id_column, "galaxy_id strings '<brickname>_<objid>'"),
                      (score_column, "numeric finder scores (higher = more lens-like)")):
        if col not in names:
            raise ScoreTableError(f"score table {path}: column {col!r} not found (columns: {names}); expected "
                                  f"{what} (set stage6.hard_negatives.id_column / score_column)")
    t = schema.field(id_column).type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise ScoreTableError(f"score table {path}: column {id_column!r} has type {t}; expected a string "
                              "galaxy_id '<brickname>_<objid>'")
    t = schema.field(score_column).type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
        raise ScoreTableError(f"score table {path}: column {score_column!r} has type {t}; expected an integer or "
                              "floating-point score")


def parquet_files(path: str) -> list[str]:
    """The Parquet files of a local file or folder (recursively, sorted; names starting with "_" or "." are
    skipped, as Spark does)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise ScoreTableError(f"score table {path}: no such file or folder; expected Parquet galaxy_id → score")
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(("_", "."))]
    if not out:
        raise ScoreTableError(f"score table {path}: folder holds no Parquet files")
    return out


def read_score_schemas(path: str, settings: HardNegativeSettings) -> list[str]:
    """Check the schema of every Parquet file of a local score table (footers only); returns the files."""
    files = parquet_files(path)
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as exc:
            raise ScoreTableError(f"score table {f}: not a readable Parquet file ({type(exc).__name__}: {exc})"
                                  ) from exc
        check_score_schema(schema, f, settings.id_column, settings.score_column)
    return files


def hard_negative_quotas(pos_counts: Mapping[str, int], eligible: Mapping[str, int],
                         settings: HardNegativeSettings) -> dict[str, dict[str, int]]:
    """Per stratum: ``target`` (round(per_positive × positives) in the strata with positives, or
    ``per_stratum`` in every stratum with eligible objects), ``eligible`` and ``take`` = min of the two."""
    if settings.count == "per_positive":
        targets = {s: round(settings.per_positive * int(n)) for s, n in pos_counts.items() if int(n) > 0}
    else:
        targets = {s: int(settings.per_stratum) for s, n in eligible.items() if int(n) > 0}
    return {s: {"target": int(t), "eligible": int(eligible.get(s, 0)), "take": int(min(t, eligible.get(s, 0)))}
            for s, t in sorted(targets.items())}


def best_scores(ids: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """One score per id: the highest finite score; ids whose scores are all null/NaN are dropped. Returns
    ``(ids, scores, counts)`` with counts ``rows``, ``null_or_nan`` (rows with a null id or a null/NaN score),
    ``duplicate_rows`` (rows with an id beyond the first of that id) and ``ids`` (distinct ids with a finite
    score). The reference of what the Spark stage does."""
    k = np.asarray(ids, dtype=object)
    v = np.asarray([np.nan if x is None else x for x in np.asarray(scores, dtype=object)], dtype=np.float64)
    ok = np.isfinite(v) & np.array([x is not None for x in k], dtype=bool)
    best: dict[str, float] = {}
    for a, b in zip(k[ok].tolist(), v[ok].tolist()):
        if a not in best or b > best[a]:
            best[a] = b
    with_id = [x for x in k.tolist() if x is not None]
    keys = np.array(sorted(best), dtype=object)
    return keys, np.array([best[x] for x in keys.tolist()], dtype=np.float64), {
        "rows": int(k.size), "null_or_nan": int((~ok).sum()), "duplicate_rows": len(with_id) - len(set(with_id)),
        "ids": len(best)}


def select_hard_negatives(stratum: Any, score: Any, order_hash: Any, keys: Any,
                          quotas: Mapping[str, Mapping[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(take, rank)``: the rows taken — per stratum the first ``take`` rows by (score descending,
    order_hash, key) — and each row's 1-based rank in its stratum. Rows must already be the eligible ones.
    The reference implementation of the Spark windows."""
    st = np.asarray(stratum).astype(str)
    sc = np.asarray(score, dtype=np.float64)
    h = np.asarray(order_hash, dtype=np.int64)
    k = np.asarray(keys).astype(str)
    order = np.lexsort((k, h, -sc, st))
    rank = np.zeros(st.size, dtype=np.int64)
    prev = None
    r = 0
    for i in order.tolist():
        r = r + 1 if st[i] == prev else 1
        prev = st[i]
        rank[i] = r
    take = np.zeros(st.size, dtype=bool)
    for s, q in quotas.items():
        take |= (st == s) & (rank <= int(q["take"]))
    return take, rank
