"""What stage 6 does with one sweep file (or row range), without Spark.

For every row read: candidate positive pairs (every known lens within the match radius of the object,
whatever its TYPE or flags — positives are matched against the full catalogue, never against a filtered
pool — each with the pool filters it fails, ``stage6.positive_filters``, in ``filter_failed``), the
negative-pool filters, and for the rows that pass them the derived columns, N2 category and
sampling hash. Returns Arrow tables with :data:`OBJECT_SCHEMA` (+ lens index and separation for candidate
pairs) and a JSON-able summary (rows read, per-filter counts, read error).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from dhs.config.stage6 import Stage6Config
from dhs.reallens.confusers import classify
from dhs.reallens.crossmatch import candidate_pairs
from dhs.reallens.derived import derive
from dhs.reallens.filters import (
    FILTER_ORDER,
    apply_filters,
    failed_filter_names,
    filter_failures,
    positive_filters,
)
from dhs.reallens.sampling import sample_hash, stratum_key

#: Sweep columns read by stage 6 (lower-case DR10 names; DR8 shapes/sersic are derived by the reader).
SWEEP_COLUMNS_6: tuple[str, ...] = (
    "brickname", "objid", "ra", "dec", "type", "flux_g", "flux_r", "flux_z", "flux_w1",
    "nobs_g", "nobs_r", "nobs_z", "maskbits", "shape_r", "shape_e1", "shape_e2", "sersic",
    "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z", "ebv",
)
_INT32 = {"nobs_g", "nobs_r", "nobs_z", "maskbits"}
_STR = {"brickname", "type"}

_DERIVED_FIELDS: list[tuple[str, pa.DataType]] = [
    ("mag_g", pa.float64()), ("mag_r", pa.float64()), ("mag_z", pa.float64()), ("mag_w1", pa.float64()),
    ("g_minus_r", pa.float64()), ("r_minus_z", pa.float64()), ("z_minus_w1", pa.float64()),
    ("ellipticity", pa.float64()), ("nobs_z_bin", pa.string()), ("type_bin", pa.string()),
    ("stratum", pa.string()), ("healpix", pa.int64()), ("region_split", pa.string()),
    ("pool", pa.string()), ("n2_category", pa.string()), ("sample_hash", pa.int64()),
    ("sweep_file", pa.string()),
]


def _sweep_field(c: str) -> pa.Field:
    if c in _STR:
        return pa.field(c, pa.string())
    if c == "objid":
        return pa.field(c, pa.int64())
    return pa.field(c, pa.int32() if c in _INT32 else pa.float64())


#: Columns of every object row stage 6 writes (catalogue values, fluxes nMgy, shape_r arcsec, psfdepth
#: nanomaggy⁻²; magnitudes AB; ``healpix`` nested at ``stage6.healpix_nside``).
OBJECT_SCHEMA = pa.schema([pa.field("galaxy_id", pa.string())] + [_sweep_field(c) for c in SWEEP_COLUMNS_6]
                          + [pa.field(n, t) for n, t in _DERIVED_FIELDS])
#: Candidate pairs: object columns + the lens index, the separation (arcsec) and the positive filters the
#: object fails ("" = passes all; names joined by "," in filter order).
CANDIDATE_SCHEMA = OBJECT_SCHEMA.append(pa.field("lens_index", pa.int64())).append(
    pa.field("sep_arcsec", pa.float64())).append(pa.field("filter_failed", pa.string()))


def object_table(cols: Mapping[str, Any], sel: np.ndarray, st: Stage6Config, seed: int, sweep_file: str,
                 classify_n2: bool) -> pa.Table:
    """Object rows (:data:`OBJECT_SCHEMA`) for the rows ``sel`` (an index array) of ``cols``."""
    sub = {k: np.asarray(v)[sel] for k, v in cols.items()}
    n = int(np.size(sel))
    out: dict[str, Any] = {}
    bricks = np.asarray(sub["brickname"]).astype(str)
    objid = np.asarray(sub["objid"]).astype(np.int64)
    out["galaxy_id"] = np.char.add(np.char.add(bricks, "_"), objid.astype(str))
    for c in SWEEP_COLUMNS_6:
        out[c] = sub[c]
    out["brickname"] = bricks
    out["type"] = np.char.upper(np.char.strip(np.asarray(sub["type"]).astype(str)))
    d = derive(sub, st.healpix_nside, seed, st.split_fractions, st.ellipticity)
    out.update(d)
    out["stratum"] = stratum_key(d["nobs_z_bin"], d["type_bin"])
    if classify_n2:
        feats = {**sub, **d}
        pool, cat = classify(feats, st.n2_rules)
    else:
        pool, cat = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    out["pool"], out["n2_category"] = pool, cat
    out["sample_hash"] = sample_hash(out["galaxy_id"].tolist(), seed)
    out["sweep_file"] = np.full(n, sweep_file, dtype=object)
    arrays = []
    for f in OBJECT_SCHEMA:
        v = out[f.name]
        if pa.types.is_string(f.type):
            arrays.append(pa.array(np.asarray(v).astype(str).tolist(), type=f.type))
        else:
            arrays.append(pa.array(np.asarray(v).astype(f.type.to_pandas_dtype()), type=f.type))
    return pa.Table.from_arrays(arrays, schema=OBJECT_SCHEMA)


def process_columns(cols: Mapping[str, Any], lens_ra: np.ndarray, lens_dec: np.ndarray, st: Stage6Config,
                    seed: int, sweep_file: str) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """``(candidates, negatives, summary)`` for one block of sweep rows (module docstring)."""
    ra = np.asarray(cols["ra"], dtype=np.float64)
    dec = np.asarray(cols["dec"], dtype=np.float64)
    n = ra.size
    il, io, sep = candidate_pairs(lens_ra, lens_dec, ra, dec, st.match_radius_arcsec)
    cand = object_table(cols, io, st, seed, sweep_file, classify_n2=False)
    sub = {k: np.asarray(v)[io] for k, v in cols.items()}
    pos_fails = filter_failures(sub, positive_filters(st.filters, st.positive_filters), np.zeros(0), np.zeros(0))
    cand = cand.append_column("lens_index", pa.array(il, pa.int64())).append_column(
        "sep_arcsec", pa.array(sep, pa.float64())).append_column(
        "filter_failed", pa.array(failed_filter_names(pos_fails).tolist(), pa.string()))
    keep, failed, first = apply_filters(cols, st.filters, lens_ra, lens_dec)
    neg = object_table(cols, np.flatnonzero(keep), st, seed, sweep_file, classify_n2=True)
    summary = {"rows_read": int(n), "pool_rows": int(keep.sum()), "candidate_pairs": int(il.size),
               "failed": failed, "first_failed": first}
    return cand, neg, summary


def process_sweep(path: str, lens_ra: np.ndarray, lens_dec: np.ndarray, st: Stage6Config, seed: int,
                  s3: Any = None, rows: tuple[int, int] | None = None
                  ) -> tuple[pa.Table | None, pa.Table | None, dict[str, Any]]:
    """Read one sweep file (or row range) with :func:`dhs.survey.sweeps.read_sweep` and process it. A file
    that cannot be read gives ``(None, None, summary with "error")`` instead of raising."""
    from dhs.survey.sweeps import read_sweep

    summary: dict[str, Any] = {"path": path, "rows": list(rows) if rows else None, "error": None,
                               "rows_read": 0, "pool_rows": 0, "candidate_pairs": 0,
                               "failed": {k: 0 for k in FILTER_ORDER}, "first_failed": {k: 0 for k in FILTER_ORDER}}
    try:
        kw: dict[str, Any] = {"columns": list(SWEEP_COLUMNS_6), "s3": s3}
        if rows is not None:
            kw["rows"] = rows
        t = read_sweep(path, **kw)
    except Exception as exc:  # noqa: BLE001 - reported by name in _stage_config.json
        summary["error"] = f"{type(exc).__name__}: {exc}"
        return None, None, summary
    cols = {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
    cand, neg, s = process_columns(cols, lens_ra, lens_dec, st, seed, os.path.basename(path))
    summary.update(s)
    return cand, neg, summary
