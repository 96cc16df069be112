"""What stage 3 does with one sweep file (or row range), without Spark: read it, evaluate every LRG variant,
keep the parent rows and summarise the file (rows read/kept, failures per cut, per-brick counts).

:func:`merge_sweep_summaries` adds the summaries of all files up on the driver.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa

from dhs.io.paths import S3Options
from dhs.sampling.lrg import LRGVariant, evaluate_cuts
from dhs.survey.photometry import flux_to_mag, psfdepth_ivar_to_mag5

BANDS = ("g", "r", "z", "w1")

#: Sweep columns copied into the parent table (lower-case DR10 names) besides the variants' inputs.
PARENT_SWEEP_COLUMNS: tuple[str, ...] = (
    "brickname", "objid", "ra", "dec", "type",
    "flux_g", "flux_r", "flux_z", "flux_w1",
    "nobs_g", "nobs_r", "nobs_z", "maskbits",
    "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z",
    "ebv", "shape_r", "fracmasked_g",
)
_INT_COLS = {"objid": pa.int64(), "nobs_g": pa.int32(), "nobs_r": pa.int32(), "nobs_z": pa.int32(),
             "maskbits": pa.int32()}
_STR_COLS = {"galaxy_id", "brickname", "type", "sweep_file"}

#: Per-file summary keys copied into ``_stage_config.json`` (``per_file``).
PER_FILE_KEYS = ("path", "rows", "error", "rows_read", "rows_kept", "failed_cut", "passed")


def parent_schema(variants: list[LRGVariant]) -> pa.Schema:
    """Arrow schema of the parent rows produced by :func:`process_sweep` (before region columns).
    Fluxes nanomaggies, magnitudes AB (float64), psfsize arcsec, psfdepth nanomaggy⁻², psfdepth_r_mag5 AB mag."""
    fields = [pa.field("galaxy_id", pa.string())]
    for c in PARENT_SWEEP_COLUMNS:
        if c in _STR_COLS:
            fields.append(pa.field(c, pa.string()))
        else:
            fields.append(pa.field(c, _INT_COLS.get(c, pa.float64())))
    fields += [pa.field(f"mag_{b}", pa.float64()) for b in BANDS]
    fields.append(pa.field("psfdepth_r_mag5", pa.float64()))
    fields += [pa.field(f"is_lrg_{v.name}", pa.bool_()) for v in variants]
    fields.append(pa.field("sweep_file", pa.string()))
    return pa.schema(fields)


def sweep_columns(variants: list[LRGVariant]) -> list[str]:
    """The sweep columns to read: the parent columns and every variant's inputs (in that order, once each)."""
    return list(dict.fromkeys(list(PARENT_SWEEP_COLUMNS) + [c for v in variants for c in v.columns()]))


def parent_mask(flags: dict[str, np.ndarray], n_rows: int, parent_rule: str, run_variant: str) -> np.ndarray:
    """Rows kept as parents: those passing the run variant (``parent_rule`` "variant") or any variant."""
    if parent_rule == "variant":
        return flags[f"is_lrg_{run_variant}"]
    keep = np.zeros(n_rows, dtype=bool)
    for f in flags.values():
        keep |= f
    return keep


def brick_counts(bricknames: np.ndarray, types: np.ndarray, flags: dict[str, np.ndarray],
                 variants: list[LRGVariant]) -> dict[str, list[int]]:
    """{brickname: [n_gal, n_lrg per variant…]} with n_gal the non-PSF rows of the brick."""
    uniq, inv = np.unique(bricknames, return_inverse=True)
    per = [np.bincount(inv, weights=(types != "PSF"), minlength=len(uniq))]
    per += [np.bincount(inv, weights=flags[f"is_lrg_{v.name}"], minlength=len(uniq)) for v in variants]
    stacked = np.rint(np.vstack(per)).astype(np.int64)
    return {str(b): stacked[:, k].tolist() for k, b in enumerate(uniq.tolist())}


def parent_table(cols: dict[str, np.ndarray], flags: dict[str, np.ndarray], keep: np.ndarray,
                 types: np.ndarray, bricknames: np.ndarray, variants: list[LRGVariant], path: str) -> pa.Table:
    """The kept rows as a table of :func:`parent_schema` (magnitudes and 5σ depth derived from the fluxes)."""
    schema = parent_schema(variants)
    out: dict[str, Any] = {}
    objid = np.asarray(cols["objid"]).astype(np.int64)[keep]
    out["galaxy_id"] = np.char.add(np.char.add(bricknames[keep], "_"), objid.astype(str))
    for c in PARENT_SWEEP_COLUMNS:
        v = cols[c][keep]
        out[c] = v.astype(str) if c in _STR_COLS else v
    out["type"] = types[keep]
    for b in BANDS:
        out[f"mag_{b}"] = flux_to_mag(np.asarray(cols[f"flux_{b}"], dtype=np.float64)[keep])
    out["psfdepth_r_mag5"] = psfdepth_ivar_to_mag5(np.asarray(cols["psfdepth_r"], dtype=np.float64)[keep])
    for v in variants:
        out[f"is_lrg_{v.name}"] = flags[f"is_lrg_{v.name}"][keep]
    out["sweep_file"] = np.full(int(keep.sum()), os.path.basename(path))
    arrays = []
    for f in schema:
        vals = out[f.name]
        if pa.types.is_floating(f.type):
            vals = np.asarray(vals, dtype=np.float64)  # float32 catalogue values widen exactly
        arrays.append(pa.array(vals, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def process_sweep(
    path: str,
    variants: list[LRGVariant],
    parent_rule: str,
    run_variant: str,
    s3: S3Options | None = None,
    rows: tuple[int, int] | None = None,
) -> tuple[pa.Table | None, dict[str, Any]]:
    """Read one sweep file (or a row range of it) and select parent rows.

    Returns ``(parent_table or None, summary)``; ``summary`` holds ``path``, ``rows`` (range or None),
    ``error`` (None or the reason), ``rows_read``, ``rows_kept``, ``failed_cut`` {variant: {cut: n}},
    ``passed`` {variant: n} and ``bricks`` {brickname: [n_gal, n_lrg per variant…]} (n_gal = non-PSF rows).
    A file that cannot be read gives ``(None, summary with error)`` rather than raising.
    """
    from dhs.survey.sweeps import read_sweep

    summary: dict[str, Any] = {"path": path, "rows": list(rows) if rows else None, "error": None,
                               "rows_read": 0, "rows_kept": 0, "failed_cut": {}, "passed": {}, "bricks": {}}
    try:
        t = read_sweep(path, columns=sweep_columns(variants), s3=s3, **({"rows": rows} if rows is not None else {}))
    except Exception as exc:  # noqa: BLE001 - reported by name in _stage_config.json
        summary["error"] = f"{type(exc).__name__}: {exc}"
        return None, summary
    cols = {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
    flags, fails = evaluate_cuts(cols, variants)
    types = np.char.upper(np.char.strip(np.asarray(cols["type"]).astype(str)))
    bricknames = np.asarray(cols["brickname"]).astype(str)
    keep = parent_mask(flags, t.num_rows, parent_rule, run_variant)
    summary.update(rows_read=t.num_rows, rows_kept=int(keep.sum()), failed_cut=fails,
                   passed={v.name: int(flags[f"is_lrg_{v.name}"].sum()) for v in variants},
                   bricks=brick_counts(bricknames, types, flags, variants))
    return parent_table(cols, flags, keep, types, bricknames, variants, path), summary


def merge_sweep_summaries(summaries: list[dict[str, Any]], variant_names: list[str]) -> dict[str, Any]:
    """The file summaries of :func:`process_sweep` added up: ``rows_read``, ``rows_kept``, ``passed``
    {variant: n}, ``failed_cut`` {variant: {cut: n}}, ``bricks`` {brickname: [n_gal, n_lrg per variant…]}."""
    bricks: dict[str, list[int]] = {}
    failed_cut: dict[str, dict[str, int]] = {}
    for s in summaries:
        for b, c in s["bricks"].items():
            acc = bricks.setdefault(b, [0] * len(c))
            for i, x in enumerate(c):
                acc[i] += x
        for v, cuts in s["failed_cut"].items():
            dst = failed_cut.setdefault(v, {})
            for c, n in cuts.items():
                dst[c] = dst.get(c, 0) + n
    return {"rows_read": sum(s["rows_read"] for s in summaries),
            "rows_kept": sum(s["rows_kept"] for s in summaries),
            "passed": {v: sum(s["passed"].get(v, 0) for s in summaries) for v in variant_names},
            "failed_cut": failed_cut, "bricks": bricks}
